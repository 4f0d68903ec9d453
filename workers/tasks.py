"""Thin Celery tasks: ids in, :mod:`srservice` does the work, retries declared here.

- ``workers.tasks.analyze_job(job_id)``: load -> analyse -> report -> write -> ``reported`` ->
  one ``deliver`` per destination (:func:`srservice.jobs.runner.run_analysis`).
- ``workers.tasks.deliver(delivery_id)``: one C-STORE attempt of the SR + PDF to one
  destination, or the outbox copy (:func:`srservice.delivery.attempt.deliver_one`). Backoff and
  the deadline are kept in the job store and applied by the sweeper, so a PACS outage never
  re-runs the analysis.

A :class:`srservice.errors.TransientError` raised before the job store could record anything
(database briefly unavailable) retries the task with exponential backoff.

The process's settings are given by :func:`configure` (``workers.app.create_app``) or loaded
from the environment on first use (``celery -A workers.app worker``).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from celery import Celery, Task

from srservice.config import Settings, load_settings
from srservice.delivery.attempt import deliver_one
from srservice.errors import TransientError
from srservice.jobs.dispatch import ANALYZE_TASK, DELIVER_TASK, Dispatcher
from srservice.jobs.runner import run_analysis
from srservice.jobs.store import JobStore, worker_identity

#: Retries of a task whose job store was unreachable (then the sweeper takes over).
TRANSIENT_RETRIES = 20

_settings: Settings | None = None
_lock = threading.Lock()
_stores: dict[tuple[int, str], JobStore] = {}


def configure(settings: Settings) -> None:
    """Use ``settings`` for the tasks of this process."""
    global _settings
    with _lock:
        _settings = settings


def current_settings() -> Settings:
    """Return the settings of this worker process (loaded once on first use)."""
    global _settings
    with _lock:
        if _settings is None:
            _settings = load_settings()
        return _settings


def job_store() -> JobStore:
    """Return this process's job store (created after fork, never shared with a parent)."""
    key = (os.getpid(), current_settings().effective_database_url)
    with _lock:
        store = _stores.get(key)
        if store is None:
            for old_key in [k for k in _stores if k[0] != key[0]]:
                del _stores[old_key]  # inherited from a parent: never used after fork
            store = JobStore(key[1])
            _stores[key] = store
        return store


def analyze_job(job_id: int, celery: Celery | None = None) -> str:
    """Body of the ``analyze_job`` task (see :func:`srservice.jobs.runner.run_analysis`).

    ``celery`` publishes the deliver tasks of the new deliveries; without it they are left
    to the sweeper.
    """
    settings = current_settings()
    enqueuer = Dispatcher(settings, celery) if celery is not None else None
    return run_analysis(settings, job_store(), job_id, owner=worker_identity(),
                        enqueuer=enqueuer)


def deliver(delivery_id: int) -> str:
    """Body of the ``deliver`` task (see :func:`srservice.delivery.attempt.deliver_one`)."""
    return deliver_one(current_settings(), job_store(), delivery_id)


def _retry_delay(task: Task[Any, Any]) -> float:
    return float(min(60.0, 2.0 ** min(task.request.retries, 6)))


def register(celery: Celery) -> None:
    """Register the two tasks on ``celery`` under their stable names."""
    options: dict[str, Any] = {"bind": True, "shared": False, "acks_late": True,
                               "reject_on_worker_lost": True, "ignore_result": True,
                               "max_retries": TRANSIENT_RETRIES}

    def analyze_job_task(self: Task[Any, Any], job_id: int) -> str:
        try:
            result = analyze_job(int(job_id), self.app)
        except TransientError as exc:
            raise self.retry(exc=exc, countdown=_retry_delay(self)) from exc
        if result == "retry":
            raise self.retry(countdown=_retry_delay(self))
        return result

    def deliver_task(self: Task[Any, Any], delivery_id: int) -> str:
        try:
            return deliver(int(delivery_id))
        except TransientError as exc:
            raise self.retry(exc=exc, countdown=_retry_delay(self)) from exc

    celery.task(name=ANALYZE_TASK, **options)(analyze_job_task)
    celery.task(name=DELIVER_TASK, **options)(deliver_task)
