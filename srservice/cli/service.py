"""Running the service: ``serve`` (listener, sweeper, embedded workers) and ``worker``.

Each sub-command registers itself in :func:`add_parser` and runs as ``func(args, settings)``
(see :mod:`srservice.cli.main`). Settings come from ``SRSERVICE_*`` variables
(``docs/configuration.md``); the few flags here override them for one run.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

from srservice.cli.args import positive_int
from srservice.config import Settings
from srservice.durable import restrict_new_files
from srservice.errors import JobStoreDamagedError, TransientError
from srservice.jobs.dispatch import QUEUE

if TYPE_CHECKING:
    from srservice.listener.spool import StoredInstance
    from srservice.viewer import ViewerServer

LOGGER = logging.getLogger(__name__)

class WorkerPool:
    """Embedded Celery worker subprocesses of ``serve``, restarted when they exit."""

    def __init__(self, settings: Settings, count: int = 1) -> None:
        self._settings, self._count = settings, count
        self.procs: list[subprocess.Popen[bytes]] = []
        self._restarts: list[float] = []

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "srservice.cli", "--data-dir",
                str(self._settings.data_dir.resolve()), "--log-level",
                self._settings.log_level, "worker"]

    def start(self) -> None:
        """Start the worker processes."""
        for _ in range(self._count):
            self.procs.append(subprocess.Popen(self._command()))
        LOGGER.info("embedded worker pids %s", [p.pid for p in self.procs])

    def check(self) -> None:
        """Restart any worker that exited (at most 5 restarts a minute)."""
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < 60]
        for i, proc in enumerate(self.procs):
            if proc.poll() is not None and len(self._restarts) < 5:
                LOGGER.warning("embedded worker %s exited with %s; restarting", proc.pid,
                               proc.returncode)
                self._restarts.append(now)
                self.procs[i] = subprocess.Popen(self._command())

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the workers (Celery warm shutdown), SIGKILL after ``timeout``."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Run the listener, the sweeper and (embedded mode) the workers until SIGTERM/SIGINT."""
    from srservice.jobs.dispatch import Dispatcher
    from srservice.jobs.intake import make_on_stored
    from srservice.jobs.store import JobStore
    from srservice.jobs.sweeper import Sweeper
    from srservice.listener.scp import start_scp

    restrict_new_files()  # before the job store, spool or audit.log is created
    updates = {k: v for k, v in (("port", args.port), ("host", args.host)) if v is not None}
    if updates:
        settings = settings.model_copy(update=updates)
    store = JobStore(settings.effective_database_url)
    store.check_integrity()  # a damaged store refuses to start, with the reason
    dispatcher = Dispatcher(settings)
    pool = WorkerPool(settings) if settings.embedded_worker and not args.no_worker else None
    stop = threading.Event()
    damaged: list[JobStoreDamagedError] = []
    record = make_on_stored(settings, store, dispatcher)

    def on_stored(stored: StoredInstance) -> None:
        try:
            record(stored)
        except JobStoreDamagedError as exc:
            # this C-STORE gets 0xA700 (the instance stays in the spool); then serve stops
            LOGGER.error("%s: stopping", exc)
            damaged.append(exc)
            stop.set()
            raise

    def _stop(signum: int, _frame: FrameType | None) -> None:
        LOGGER.info("signal %s: shutting down", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    viewer = start_viewer(settings)
    server = start_scp(settings, on_stored)
    sweeper = Sweeper(settings, store, dispatcher)
    try:
        if pool is not None:
            pool.start()
        sweeper.start()
        host, port = server.server_address[:2]
        print(f"srservice: listening on {host}:{port} as {settings.ae_title} "
              f"(broker {'redis' if settings.broker_url else 'filesystem'}, "
              f"{'embedded workers' if pool else 'external workers'})", flush=True)
        while not stop.wait(1.0):
            if sweeper.damaged is not None:  # the store failed under the sweeper
                damaged.append(sweeper.damaged)
                break
            if pool is not None:
                pool.check()
    finally:
        server.shutdown()
        if viewer is not None:
            viewer.shutdown()
        sweeper.stop()
        if pool is not None:
            pool.stop()
        store.dispose()
        LOGGER.info("stopped")
    if damaged:
        raise damaged[0]
    return 0


def start_viewer(settings: Settings) -> ViewerServer | None:
    """Start the built-in OHIF viewer when ``viewer_port`` is set (:mod:`srservice.viewer`)."""
    if settings.viewer_port is None or settings.viewer_dicomweb_url is None:
        return None
    from srservice.viewer import ViewerConfig, ViewerServer

    viewer = ViewerServer(ViewerConfig(settings.viewer_dist, settings.viewer_dicomweb_url),
                          settings.viewer_host, settings.viewer_port)
    viewer.serve_in_thread()
    print(f"srservice: viewer on {viewer.url} (DICOMweb {settings.viewer_dicomweb_url})",
          flush=True)
    return viewer


def worker_command(settings: Settings, concurrency: int | None = None) -> list[str]:
    """Return the Celery worker program for ``settings`` (``celery -A workers.app worker``)."""
    return [sys.executable, "-m", "celery", "-A", "workers.app", "worker",
            "--loglevel", settings.log_level,
            "--concurrency", str(concurrency or settings.worker_concurrency),
            "-Q", QUEUE, "-n", f"srservice-{os.getpid()}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat"]


def worker_environment(settings: Settings) -> dict[str, str]:
    """Return our environment plus the settings the command line changed (for the worker)."""
    return {**os.environ, "SRSERVICE_DATA_DIR": str(settings.data_dir.resolve()),
            "SRSERVICE_LOG_LEVEL": settings.log_level}


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Become a Celery worker consuming the srservice queue (blocks until shut down).

    The worker program is the ``workers`` package (the Celery app and its thin tasks), run
    with Celery's own command line in this process (``exec``: same pid, same signals), so
    :mod:`srservice` never imports ``workers``.
    """
    from srservice.jobs.store import JobStore

    restrict_new_files()  # kept across exec: outputs and the outbox are 0640
    try:
        store = JobStore(settings.effective_database_url)
        try:
            store.check_integrity()  # a damaged store refuses to start, with the reason
        finally:
            store.dispose()
    except TransientError as exc:  # e.g. PostgreSQL still starting: the tasks retry
        LOGGER.warning("job store not checked at start: %s", exc)
    os.execvpe(sys.executable, worker_command(settings, args.concurrency),
               worker_environment(settings))


def add_parser(sub: Any) -> None:
    """Register ``serve`` and ``worker``."""
    p = sub.add_parser("serve", help="run the DICOM listener, sweeper and embedded workers",
                       description="Run the Storage SCP, the job sweeper and (when "
                       "SRSERVICE_EMBEDDED_WORKER is true) Celery worker processes. Stops "
                       "cleanly on SIGTERM or SIGINT.")
    p.add_argument("--port", type=int, help="override SRSERVICE_PORT (0: any free port)")
    p.add_argument("--host", help="override SRSERVICE_HOST")
    p.add_argument("--no-worker", action="store_true",
                   help="do not start embedded workers (run 'srservice worker' elsewhere)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("worker", help="run a Celery worker process",
                       description="Run a Celery worker on the configured broker "
                       "(SRSERVICE_BROKER_URL, or the filesystem broker in the data dir).")
    p.add_argument("--concurrency", type=positive_int,
                   help="worker processes (default SRSERVICE_WORKER_CONCURRENCY)")
    p.set_defaults(func=cmd_worker)


__all__ = ["WorkerPool", "add_parser"]
