"""Operator commands: ``echo``, ``jobs``, ``check`` (readiness) and ``retry``.

Each sub-command registers itself in :func:`add_parser` and runs as ``func(args, settings)``
(see :mod:`srservice.cli.main`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from srservice.cli.args import positive_int
from srservice.config import Settings
from srservice.errors import JobStoreDamagedError
from srservice.jobs.models import DeliveryState, JobState
from srservice.jobs.views import JobView


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
    damaged: JobStoreDamagedError | None = None
    try:
        store.check_integrity()
    except JobStoreDamagedError as exc:
        damaged = exc
        print(f"srservice: warning: {exc}; the jobs listed may be incomplete", file=sys.stderr)
    jobs = store.list_jobs(state=args.state, limit=args.limit)
    if args.json:
        print(json.dumps([j.as_dict() for j in jobs], indent=2))
        return 1 if damaged else 0
    if args.backfill:
        from srservice.backfill.progress import progress_text
        from srservice.jobs.store import owner_alive

        for run in store.list_backfills():
            gone = run.state == "running" and not owner_alive(run.owner)
            print(progress_text(run) + f" (updated {run.updated_at:%Y-%m-%d %H:%M:%S} UTC"
                  + ("; interrupted: run the same 'srservice backfill' to resume)" if gone
                     else ")"))
    print(f"{'JOB':>6} {'STATE':<10} {'KIND':<8} {'TRY':>3} {'SCORE':>5} {'DELIVERY':<14} "
          f"{'UPDATED (UTC)':<19} REASON")
    for j in jobs:
        # A pullback that cannot be scored is a reported answer, not a failure: SCORE "n/a"
        # and the reason ("not assessable: ...") in the REASON column.
        score = ("n/a" if j.assessable is False
                 else "-" if j.score_total is None else str(j.score_total))
        reason = j.reason or (j.result if j.assessable is False else "") or ""
        print(f"{j.id:>6} {j.state:<10} {j.kind:<8} {j.attempts:>3} {score:>5} "
              f"{_delivery_text(j):<14} {j.updated_at:%Y-%m-%d %H:%M:%S} {reason}")
    return 1 if damaged else 0


def cmd_check(_args: argparse.Namespace, settings: Settings) -> int:
    """Readiness check: the job store opens and is sound (SQLite ``PRAGMA quick_check``).

    Prints ``ready`` and exits 0, or exits 2 with the one-line reason (:mod:`srservice.cli.main`
    prints it): a damaged store, an unreachable database, an invalid setting.
    """
    from srservice.jobs.store import JobStore

    store = JobStore(settings.effective_database_url)
    try:
        store.check_integrity()
    finally:
        store.dispose()
    print("ready: job store sound")
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


def add_parser(sub: Any) -> None:
    """Register ``echo``, ``jobs``, ``check`` and ``retry``."""
    p = sub.add_parser("echo", help="C-ECHO a DICOM destination",
                       description="Send a C-ECHO to DEST and print the status.")
    p.add_argument("dest", metavar="DEST", help="AE@host:port[+tls]")
    p.set_defaults(func=cmd_echo)

    p = sub.add_parser("jobs", help="list jobs and their states",
                       description="List jobs (newest first) from the job store.")
    p.add_argument("--state", choices=[s.value for s in JobState])
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--limit", type=positive_int, default=200)
    p.add_argument("--no-backfill", dest="backfill", action="store_false",
                   help="do not show the progress of backfill runs above the table")
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("check", help="readiness check: the job store is sound",
                       description="Open the job store and check it (SQLite: PRAGMA "
                       "quick_check). Exit 0 when ready, 2 with the reason otherwise.")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("retry", help="re-queue a failed or dead job",
                       description="Re-queue a failed or dead job: a job with a report only "
                       "re-sends its undelivered reports; otherwise the analysis runs again.")
    p.add_argument("job", metavar="JOB", type=int, help="job id (see 'srservice jobs')")
    p.set_defaults(func=cmd_retry)

