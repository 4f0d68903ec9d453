"""``srservice backfill``: score the IVUS studies already archived in a PACS.

See :mod:`srservice.backfill` and docs/backfill.md. The command runs in the foreground, shows
its progress on standard error and prints a report at the end; ``--follow`` repeats the run
every ``backfill_follow_interval_seconds`` until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from types import FrameType
from typing import Any

from srservice.cli.args import positive_int
from srservice.config import Settings, Source
from srservice.errors import ConfigError


def _source(settings: Settings, name: str) -> Source:
    for source in settings.backfill_sources:
        if source.ae_title == name:
            return source
    if "@" in name:
        try:
            return Source.parse(name)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    known = ", ".join(s.ae_title for s in settings.backfill_sources) or "none configured"
    raise ConfigError(f"--source {name!r}: not in SRSERVICE_BACKFILL_SOURCES ({known})")


def _date(text: str | None, flag: str) -> str | None:
    from srservice.backfill.finder import dicom_date

    try:
        return dicom_date(text)
    except ValueError as exc:
        raise ConfigError(f"{flag}: {exc}") from None


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    """Find, retrieve and score the IVUS studies of a PACS; print a report."""
    from srservice.backfill.progress import ProgressLine, report_text
    from srservice.backfill.run import Backfill, Limits, dry_run
    from srservice.durable import restrict_new_files
    from srservice.jobs.backfills import BackfillBusyError
    from srservice.jobs.models import BackfillState
    from srservice.jobs.store import JobStore

    restrict_new_files()  # instances retrieved with C-GET go into the spool: 0640
    updates = {k: v for k, v in (("backfill_max_in_flight", args.max_in_flight),
                                 ("backfill_max_studies_per_minute", args.rate),
                                 ("backfill_window", args.window)) if v is not None}
    if updates:
        from srservice.config import load_settings

        settings = load_settings(**{**settings.model_dump(), **updates})
    source = _source(settings, args.source)
    since, until = _date(args.since, "--since"), _date(args.until, "--until")
    store = JobStore(settings.effective_database_url)
    if args.dry_run:
        counts = dry_run(settings, store, source, since=since, until=until,
                         emit=lambda line: print(line, flush=True))
        print("dry run: " + (", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
                             or "no IVUS study found") + "; nothing retrieved or recorded")
        return 0
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    line = ProgressLine()
    status = 0
    while True:
        engine = Backfill(settings, store, source, Limits.of(settings), stop=stop,
                          on_progress=line.show)
        try:
            run = engine.run(since=since, until=until, max_studies=args.limit)
        except BackfillBusyError as exc:
            line.done()
            print(f"srservice: error: {exc}", file=sys.stderr)
            return 1
        line.done()
        studies = store.backfill_studies(run.id)
        if args.json:
            print(json.dumps({"run": run.id, "source": run.source, "state": run.state,
                              "counts": run.counts,
                              "retrieved": sum(1 for s in studies if s.retrieved_at),
                              "failed": {s.study_instance_uid: s.reason for s in studies
                                         if s.state == "failed"}}, indent=2), flush=True)
        else:
            print(report_text(run, studies), flush=True)
        if run.state != "finished":
            print(f"interrupted: 'srservice backfill --source {args.source}' resumes run "
                  f"{run.id}", file=sys.stderr)
            return 0 if args.follow else 130
        status = 1 if run.count(BackfillState.FAILED) else 0
        if not args.follow or stop.wait(settings.backfill_follow_interval_seconds):
            return 0 if args.follow else status


def add_parser(sub: Any) -> None:
    """Register ``backfill``."""
    p = sub.add_parser("backfill", help="score the IVUS studies already in a PACS",
                       description="Find the IVUS studies of a PACS (C-FIND), skip those "
                       "already scored (job store) or holding our SR (PACS), retrieve the "
                       "rest (C-MOVE to our AE title, or C-GET) under the throttle so the "
                       "running service scores them, and report. Resumes an interrupted run. "
                       "See docs/backfill.md.")
    p.add_argument("--source", required=True, metavar="PACS",
                   help="AE title of a SRSERVICE_BACKFILL_SOURCES entry (or AE@host:port"
                   "[+tls][+series][+get])")
    p.add_argument("--since", metavar="DATE", help="studies on or after DATE (YYYY-MM-DD)")
    p.add_argument("--until", metavar="DATE", help="studies on or before DATE (YYYY-MM-DD)")
    p.add_argument("--limit", type=positive_int, metavar="N",
                   help="retrieve at most N studies in this run")
    p.add_argument("--dry-run", action="store_true",
                   help="query and print what would be done; retrieve and record nothing")
    p.add_argument("--follow", action="store_true",
                   help="run again every SRSERVICE_BACKFILL_FOLLOW_INTERVAL_SECONDS until "
                   "stopped (new studies that reached the PACS without being sent to us)")
    p.add_argument("--max-in-flight", type=positive_int, metavar="N",
                   help="override SRSERVICE_BACKFILL_MAX_IN_FLIGHT")
    p.add_argument("--rate", type=float, metavar="PER_MINUTE",
                   help="override SRSERVICE_BACKFILL_MAX_STUDIES_PER_MINUTE")
    p.add_argument("--window", metavar="HH:MM-HH:MM", help="override SRSERVICE_BACKFILL_WINDOW")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_backfill)
