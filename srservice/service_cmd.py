"""Operator commands: ``serve``, ``worker``, ``echo``, ``jobs``, ``retry``, ``demo``.

Each sub-command registers itself in :func:`add_parser` and runs as ``func(args, settings)``
(see :mod:`srservice.cli`). Settings come from ``SRSERVICE_*`` variables
(docs/configuration.md); the few flags here override them for one run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from srservice.config import Settings
from srservice.jobs.dispatch import QUEUE
from srservice.jobs.models import DeliveryState, JobState
from srservice.jobs.views import JobView

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

    updates = {k: v for k, v in (("port", args.port), ("host", args.host)) if v is not None}
    if updates:
        settings = settings.model_copy(update=updates)
    store = JobStore(settings.effective_database_url)
    dispatcher = Dispatcher(settings)
    pool = WorkerPool(settings) if settings.embedded_worker and not args.no_worker else None
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        LOGGER.info("signal %s: shutting down", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server = start_scp(settings, make_on_stored(settings, store, dispatcher))
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
            if pool is not None:
                pool.check()
    finally:
        server.shutdown()
        sweeper.stop()
        if pool is not None:
            pool.stop()
        store.dispose()
        LOGGER.info("stopped")
    return 0


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
    os.execvpe(sys.executable, worker_command(settings, args.concurrency),
               worker_environment(settings))


def cmd_echo(args: argparse.Namespace, settings: Settings) -> int:
    """C-ECHO a destination and print the status."""
    from srservice.delivery import scu

    dest = scu.parse_destination(args.dest)
    status = scu.c_echo(dest, settings)
    print(f"{dest}: C-ECHO status 0x{status:04X} ({'Success' if status == 0 else 'Failure'})")
    return 0 if status == 0 else 1


def _delivery_text(job: JobView) -> str:
    if not job.deliveries:
        return "-"
    done = sum(d.state == DeliveryState.DELIVERED for d in job.deliveries)
    return f"{done}/{len(job.deliveries)} delivered"


def cmd_jobs(args: argparse.Namespace, settings: Settings) -> int:
    """List jobs (newest first) as a table or JSON."""
    from srservice.jobs.store import JobStore

    store = JobStore(settings.effective_database_url)
    jobs = store.list_jobs(state=args.state, limit=args.limit)
    if args.json:
        print(json.dumps([j.as_dict() for j in jobs], indent=2))
        return 0
    print(f"{'JOB':>6} {'STATE':<10} {'KIND':<8} {'TRY':>3} {'SCORE':>5} {'DELIVERY':<14} "
          f"{'UPDATED (UTC)':<19} REASON")
    for j in jobs:
        score = "-" if j.score_total is None else str(j.score_total)
        print(f"{j.id:>6} {j.state:<10} {j.kind:<8} {j.attempts:>3} {score:>5} "
              f"{_delivery_text(j):<14} {j.updated_at:%Y-%m-%d %H:%M:%S} {j.reason or ''}")
    return 0


def cmd_retry(args: argparse.Namespace, settings: Settings) -> int:
    """Re-queue a failed or dead job (analysis again, or only its undelivered reports)."""
    from srservice.jobs.dispatch import Dispatcher, enqueue_deliveries, enqueue_jobs
    from srservice.jobs.store import JobStore

    store = JobStore(settings.effective_database_url)
    try:
        what = store.retry_job(args.job, settings.delivery_deadline_seconds)
    except (LookupError, ValueError) as exc:
        print(f"srservice: error: {exc}", file=sys.stderr)
        return 1
    dispatcher = Dispatcher(settings)
    job = store.get_job(args.job)
    if what == "analysis":
        enqueue_jobs(store, dispatcher, [args.job])
    elif what == "deliveries" and job is not None:
        enqueue_deliveries(store, dispatcher, [d.id for d in job.deliveries
                                               if d.state == DeliveryState.PENDING])
    print(f"job {args.job}: re-queued ({'analysis' if what == 'analysis' else 'delivery only'})")
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Send a phantom pullback to a running service and print the score when it is done."""
    from srservice.demo import run_demo

    return run_demo(settings, host=args.host, port=args.port or settings.port, aec=args.aec
                    or settings.ae_title, aet=args.aet, timeout=args.timeout,
                    out_dir=Path(args.keep) if args.keep else None)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def add_parser(sub: Any) -> None:
    """Register the service sub-commands."""
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
    p.add_argument("--concurrency", type=_positive_int,
                   help="worker processes (default SRSERVICE_WORKER_CONCURRENCY)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("echo", help="C-ECHO a DICOM destination",
                       description="Send a C-ECHO to DEST and print the status.")
    p.add_argument("dest", metavar="DEST", help="AE@host:port[+tls]")
    p.set_defaults(func=cmd_echo)

    p = sub.add_parser("jobs", help="list jobs and their states",
                       description="List jobs (newest first) from the job store.")
    p.add_argument("--state", choices=[s.value for s in JobState])
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--limit", type=_positive_int, default=200)
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("retry", help="re-queue a failed or dead job",
                       description="Re-queue a failed or dead job: a job with a report only "
                       "re-sends its undelivered reports; otherwise the analysis runs again.")
    p.add_argument("job", metavar="JOB", type=int, help="job id (see 'srservice jobs')")
    p.set_defaults(func=cmd_retry)

    p = sub.add_parser("demo", help="send a phantom pullback to a running service",
                       description="Write a synthetic IVUS pullback, C-STORE it to a running "
                       "service, wait for its job to finish (polling the job store, so run it "
                       "on the service's host with the same settings) and print the score.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, help="service port (default SRSERVICE_PORT)")
    p.add_argument("--aec", help="called AE title (default SRSERVICE_AE_TITLE)")
    p.add_argument("--aet", default="SRDEMO", help="our calling AE title")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait")
    p.add_argument("--keep", metavar="DIR", help="keep the phantom file in DIR")
    p.set_defaults(func=cmd_demo)


__all__ = ["WorkerPool", "add_parser"]
