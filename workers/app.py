"""The Celery app, built from :class:`srservice.config.Settings` (no broker URL in code).

- Broker: ``settings.broker_url`` (``redis://`` for several hosts) or, as the embedded default,
  Celery's filesystem transport under ``data_dir/broker/`` (``out`` is the queue folder both
  producer and consumer use, ``processed`` keeps nothing). The filesystem transport has no
  broadcast, so remote control, gossip, mingle and worker heartbeats are off.
- JSON only; ``task_acks_late`` + ``task_reject_on_worker_lost`` (a killed worker's message is
  redelivered; tasks are idempotent); ``worker_prefetch_multiplier = 1``; hard and soft time
  limits from ``settings.task_time_limit``; Redis ``visibility_timeout`` longer than the hard
  limit, so a running task is never handed to a second worker while the first still runs;
  no result backend (``task_ignore_result``).

``create_app(settings)`` is used by ``srservice worker`` / ``serve``; ``celery -A workers.app
worker`` also works: the module-level :data:`app` loads the settings with
:func:`srservice.config.load_settings` when Celery first reads its configuration (worker
start), never at import time.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery

from srservice.config import Settings, load_settings

LOGGER = logging.getLogger(__name__)

#: Queue every srservice task goes to.
QUEUE = "srservice"
ANALYZE_TASK = "workers.tasks.analyze_job"
DELIVER_TASK = "workers.tasks.deliver"

#: Publishing must not hang an association thread when the broker is down: a failed publish
#: leaves the job in the store and the sweeper sends it later.
PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5,
                        "interval_max": 1.0}

_settings: Settings | None = None
_lock = threading.Lock()


def current_settings() -> Settings:
    """Return the settings of this worker process (loaded once on first use)."""
    global _settings
    with _lock:
        if _settings is None:
            _settings = load_settings()
        return _settings


def celery_config(settings: Settings) -> dict[str, Any]:
    """Return the Celery configuration for ``settings``."""
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
        for sub in ("out", "processed"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        conf["broker_url"] = "filesystem://localhost//"
        conf["broker_transport_options"] = {
            "data_folder_in": str(base / "out"), "data_folder_out": str(base / "out"),
            "processed_folder": str(base / "processed"), "store_processed": False,
        }
        conf["worker_enable_remote_control"] = False
    return conf


def create_app(settings: Settings) -> Celery:
    """Build a Celery app configured from ``settings`` with the srservice tasks registered."""
    global _settings
    with _lock:
        _settings = settings
    celery = Celery("srservice", set_as_current=False)
    celery.conf.update(celery_config(settings))
    import workers.tasks as tasks

    tasks.register(celery)
    return celery


def _configure_from_environment(sender: Celery, **_: Any) -> None:
    sender.conf.update(celery_config(current_settings()))


#: App for ``celery -A workers.app worker``: configured lazily from the environment.
app = Celery("srservice", set_as_current=False)
app.on_configure.connect(_configure_from_environment)


def _register_default() -> None:
    import workers.tasks as tasks

    tasks.register(app)


_register_default()


class Dispatcher:
    """Sends tasks (ids only) to the broker; used by intake, the sweeper and ``retry``.

    Every send returns False instead of raising when the broker cannot be reached: the job
    store still has the row, and the sweeper re-sends it.
    """

    def __init__(self, settings: Settings) -> None:
        self._app = create_app(settings)
        self._lock = threading.Lock()

    def _send(self, name: str, item_id: int) -> bool:
        try:
            with self._lock:
                self._app.send_task(name, args=[item_id], queue=QUEUE, retry=True,
                                    retry_policy=PUBLISH_RETRY_POLICY)
        except Exception as exc:  # kombu raises many types; the sweeper re-sends later
            from srservice.errors import reason_for

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
