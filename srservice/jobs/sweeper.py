"""The sweeper: a thread in ``srservice serve`` that re-sends what the broker lost or delayed.

Every ``interval`` seconds it asks the job store (:meth:`srservice.jobs.store.JobStore.sweep`) for
jobs that were never sent, whose message was lost, or whose worker died, and for deliveries
that are due (their exponential backoff elapsed), and sends them to the broker. Celery beat is
not needed. The job store stays the source of truth, so a restarted Redis, a killed worker or
a database that was briefly unavailable only delays work, never loses it.
"""

from __future__ import annotations

import logging
import threading

from srservice.config import Settings
from srservice.errors import JobStoreDamagedError, TransientError
from srservice.jobs.dispatch import Enqueuer, enqueue_deliveries, enqueue_jobs
from srservice.jobs.store import JobStore, owner_alive
from srservice.jobs.views import SweepResult

LOGGER = logging.getLogger(__name__)


def sweep_interval(settings: Settings) -> float:
    """Seconds between sweeps: half the shortest delay the sweeper must honour, 0.5-10 s."""
    shortest = min(settings.delivery_backoff_seconds, settings.job_stuck_seconds,
                   settings.single_frame_quiet_seconds or 10.0)
    return max(0.5, min(10.0, shortest / 2))


def sweep_once(settings: Settings, store: JobStore, enqueuer: Enqueuer) -> SweepResult:
    """Run one sweep and send what it found; return what was found."""
    interval = sweep_interval(settings)
    found = store.sweep(stuck_seconds=settings.job_stuck_seconds,
                        grace_seconds=min(10.0, 2 * interval), alive=owner_alive)
    enqueue_jobs(store, enqueuer, found.jobs)
    enqueue_deliveries(store, enqueuer, found.deliveries)
    if found.jobs or found.deliveries:
        LOGGER.info("sweeper re-sent jobs %s deliveries %s", list(found.jobs),
                    list(found.deliveries))
    return found


class Sweeper(threading.Thread):
    """Daemon thread running :func:`sweep_once` until :meth:`stop`."""

    def __init__(self, settings: Settings, store: JobStore, enqueuer: Enqueuer,
                 interval: float | None = None) -> None:
        super().__init__(name="sweeper", daemon=True)
        self._settings, self._store, self._enqueuer = settings, store, enqueuer
        self.interval = interval if interval is not None else sweep_interval(settings)
        self._stop_event = threading.Event()
        self.sweeps = 0
        #: Set when the job store turned out damaged; the sweeper then stops (serve too).
        self.damaged: JobStoreDamagedError | None = None

    def run(self) -> None:
        """Sweep every ``interval`` seconds; job-store outages are logged and retried."""
        while not self._stop_event.is_set():
            try:
                sweep_once(self._settings, self._store, self._enqueuer)
            except TransientError as exc:
                LOGGER.warning("sweep skipped: %s", exc)
            except JobStoreDamagedError as exc:
                LOGGER.error("sweeper stopped: %s", exc)
                self.damaged = exc
                return
            self.sweeps += 1
            self._stop_event.wait(self.interval)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop and join the thread."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)
