"""The broker side of the jobs: task names, queue, Celery configuration and the client.

:func:`enqueue_jobs` and :func:`enqueue_deliveries` are the one way to send work and record
that it was sent.

Messages carry row ids only (never pixels or paths): the job store is the source of truth and
Celery the transport. Publishing never raises and never hangs an association thread: a send
that fails returns False, the row keeps its state, and the sweeper sends it later
(:mod:`srservice.jobs.sweeper`).

- Broker: ``settings.broker_url`` (``redis://`` for several hosts) or, as the embedded default,
  Celery's filesystem transport under ``data_dir/broker/`` (``out`` is the queue folder both
  producer and consumer use, ``processed`` keeps nothing, ``control`` holds the exchange
  table). The filesystem transport has no broadcast, so remote control, gossip, mingle and
  worker heartbeats are off.
- JSON only; ``task_acks_late`` + ``task_reject_on_worker_lost`` (a killed worker's message is
  redelivered; tasks are idempotent); ``worker_prefetch_multiplier = 1``; hard and soft time
  limits from ``settings.task_time_limit``; Redis ``visibility_timeout`` longer than the hard
  limit, so a running task is never handed to a second worker while the first still runs;
  no result backend (``task_ignore_result``).

The worker process (the Celery app and the task bodies) is the ``workers`` package, which
imports this module; nothing in :mod:`srservice` imports ``workers``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from celery import Celery

from srservice.config import Settings
from srservice.errors import TransientError, reason_for
from srservice.jobs.store import JobStore

LOGGER = logging.getLogger(__name__)

#: Queue every srservice task goes to.
QUEUE = "srservice"
#: Stable task names (the ``workers.tasks`` functions registered under them).
ANALYZE_TASK = "workers.tasks.analyze_job"
DELIVER_TASK = "workers.tasks.deliver"

#: Publishing must not hang an association thread when the broker is down: a failed publish
#: leaves the job in the store and the sweeper sends it later.
PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5,
                        "interval_max": 1.0}


def celery_config(settings: Settings) -> dict[str, Any]:
    """Return the Celery configuration for ``settings`` (see the module docstring)."""
    conf: dict[str, Any] = {
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "event_serializer": "json",
        "task_ignore_result": True,
        "task_store_errors_even_if_ignored": False,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": settings.task_time_limit,
        "task_soft_time_limit": max(1.0, settings.task_time_limit * 0.9),
        "task_default_queue": QUEUE,
        "task_create_missing_queues": True,
        "worker_concurrency": settings.worker_concurrency,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 5.0,
        "broker_heartbeat": 0,
        "timezone": "UTC",
        "enable_utc": True,
    }
    if settings.broker_url:
        conf["broker_url"] = settings.broker_url
        conf["broker_transport_options"] = {
            "visibility_timeout": int(2 * settings.task_time_limit + 60),
            "socket_timeout": 10, "socket_connect_timeout": 5,
        }
    else:
        base = settings.data_dir.resolve() / "broker"
        for sub in ("out", "processed", "control"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        conf["broker_url"] = "filesystem://localhost//"
        conf["broker_transport_options"] = {
            "data_folder_in": str(base / "out"), "data_folder_out": str(base / "out"),
            "processed_folder": str(base / "processed"), "store_processed": False,
            # the exchange table; kombu's default is ./control in the working directory
            "control_folder": str(base / "control"),
        }
        conf["worker_enable_remote_control"] = False
    return conf


class Enqueuer(Protocol):
    """Sends tasks to the broker; returns False (never raises) when it cannot."""

    def analyze(self, job_id: int) -> bool:
        """Send an analyze task."""
        ...

    def deliver(self, delivery_id: int) -> bool:
        """Send a deliver task."""
        ...


class Dispatcher:
    """The broker client: sends ``analyze_job`` / ``deliver`` tasks by name, ids only.

    Parameters
    ----------
    settings : Settings
        Broker settings (:func:`celery_config`).
    app : celery.Celery, optional
        An app to publish with (a worker passes its own); default: a client-only app
        configured from ``settings`` (the tasks need not be registered to be sent by name).
    """

    def __init__(self, settings: Settings, app: Celery | None = None) -> None:
        if app is None:
            app = Celery("srservice", set_as_current=False)
            app.conf.update(celery_config(settings))
        self._app = app
        self._lock = threading.Lock()

    def _send(self, name: str, item_id: int) -> bool:
        try:
            with self._lock:
                self._app.send_task(name, args=[item_id], queue=QUEUE, retry=True,
                                    retry_policy=PUBLISH_RETRY_POLICY)
        except Exception as exc:  # kombu raises many types; the sweeper re-sends later
            LOGGER.warning("could not send %s(%s) to the broker: %s", name, item_id,
                           reason_for(exc))
            return False
        return True

    def analyze(self, job_id: int) -> bool:
        """Send ``analyze_job(job_id)``."""
        return self._send(ANALYZE_TASK, job_id)

    def deliver(self, delivery_id: int) -> bool:
        """Send ``deliver(delivery_id)``."""
        return self._send(DELIVER_TASK, delivery_id)


def _send_then_record(ids: Sequence[int], send: Callable[[int], bool],
                      record: Callable[[Sequence[int]], None], what: str) -> list[int]:
    sent = [i for i in ids if send(i)]
    try:
        record(sent)
    except TransientError as exc:
        LOGGER.warning("%s %s sent but not recorded as sent: %s", what, sent, exc)
    return sent


def enqueue_jobs(store: JobStore, enqueuer: Enqueuer, job_ids: Sequence[int]) -> list[int]:
    """Send an analyze task per job, then record the sent ones as queued; return those.

    A job whose task could not be sent stays as it was (the sweeper sends it later). When the
    job store cannot record the sending, the jobs stay ``received`` and the sweeper sends them
    once more: harmless, every task claims its job with a compare-and-set first.
    """
    return _send_then_record(job_ids, enqueuer.analyze, store.mark_queued, "jobs")


def enqueue_deliveries(store: JobStore, enqueuer: Enqueuer,
                       delivery_ids: Sequence[int]) -> list[int]:
    """Send a deliver task per delivery, then record when they were sent; return the sent.

    As :func:`enqueue_jobs`: what could not be sent or recorded is sent again by the sweeper
    when due, and a duplicate deliver task finds the delivery claimed or done.
    """
    return _send_then_record(delivery_ids, enqueuer.deliver, store.mark_deliveries_enqueued,
                             "deliveries")
