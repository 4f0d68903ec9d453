"""Delivering a job's reports: to each configured PACS, or to the local outbox.

One attempt of one delivery (one job to one destination) is :func:`deliver_one`. Failures are
mapped with :func:`srservice.errors.outcome_for`: a transient failure (PACS down, failure
status, time-out) is retried with exponential backoff until the delivery deadline, then the
delivery is ``dead``; a permanent one (the outputs cannot be read) is ``failed`` at once.
Destinations are independent rows, so one destination's outage never delays another's.
With no destination configured, the single pseudo-destination ``outbox`` copies the files to
``settings.outbox_dir/job-<id>/`` atomically.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydicom import dcmread

from srservice import pacs
from srservice.config import Settings
from srservice.errors import DeliveryError, Outcome, outcome_for, reason_for
from srservice.jobs import JobStore
from srservice.outputs import SUMMARY_NAME, copy_to_outbox

LOGGER = logging.getLogger(__name__)

#: Destination name of the local outbox (used when ``settings.destinations`` is empty).
OUTBOX = "outbox"


def destinations_for(settings: Settings) -> list[str]:
    """Return the delivery destinations: every configured PACS, or the outbox."""
    return [str(d) for d in settings.destinations] or [OUTBOX]


def lease_seconds(settings: Settings) -> float:
    """How long one attempt may take before the sweeper may send the delivery again."""
    return max(60.0, settings.acse_timeout + 3 * settings.dimse_timeout)


def _send(settings: Settings, destination: str, job_id: int, output_dir: str, sr_path: str,
          pdf_path: str) -> None:
    if destination == OUTBOX:
        files = [Path(sr_path), Path(pdf_path)]
        summary = Path(output_dir) / SUMMARY_NAME
        if summary.exists():
            files.append(summary)
        for f in files:
            if not f.is_file():
                raise FileNotFoundError(f"output {f.name} of job {job_id} is missing")
        try:
            copy_to_outbox(settings.outbox_dir, job_id, files)
        except OSError as exc:  # disk full or permissions: retry until the deadline
            raise DeliveryError(f"outbox: {exc}") from exc
        return
    datasets = [dcmread(sr_path), dcmread(pdf_path)]
    pacs.store(pacs.parse_destination(destination), datasets, settings)


def deliver_one(settings: Settings, store: JobStore, delivery_id: int) -> str:
    """Make one attempt of delivery ``delivery_id``.

    Returns
    -------
    str
        ``"skipped"`` (not due, not pending, or another worker has it), ``"delivered"``,
        ``"retry"`` (will be re-sent by the sweeper when due), ``"dead"`` or ``"failed"``.
    """
    work = store.claim_delivery(delivery_id, lease_seconds(settings))
    if work is None:
        return "skipped"
    dest = work.delivery.destination
    try:
        _send(settings, dest, work.job_id, work.output_dir, work.sr_path, work.pdf_path)
    except Exception as exc:  # every failure is mapped in one place: errors.outcome_for
        reason = reason_for(exc)
        permanent = outcome_for(exc) is Outcome.FAIL
        LOGGER.warning("delivery %s of job %s to %s attempt %s failed: %s", delivery_id,
                       work.job_id, dest, work.delivery.attempts, reason)
        view = store.delivery_failed(delivery_id, reason, permanent=permanent,
                                     backoff_first=settings.delivery_backoff_seconds,
                                     backoff_cap=settings.delivery_backoff_max_seconds)
        if view is None:
            return "skipped"
        return "retry" if view.state == "pending" else view.state
    store.delivery_succeeded(delivery_id)
    LOGGER.info("delivery %s of job %s to %s done", delivery_id, work.job_id, dest)
    return "delivered"
