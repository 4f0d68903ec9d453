"""One attempt of one delivery (one job's reports to one destination): what a ``deliver`` task does.

:func:`deliver_one` claims the delivery in the job store, sends the SR and the PDF (C-STORE,
:mod:`srservice.delivery.scu`) or publishes the outputs in the outbox
(:mod:`srservice.delivery.outbox`), and records the result. Failures are mapped with
:func:`srservice.errors.outcome_for`: a transient failure (PACS down, failure status,
time-out, outbox not writable) is retried with exponential backoff until the delivery
deadline, then the delivery is ``dead`` (the dead letter, visible in ``srservice jobs``); a
permanent one (the outputs cannot be read) is ``failed`` at once. The backoff and the
deadline are kept in the job store (:mod:`srservice.jobs.deliveries`) and applied by the
sweeper, so a PACS outage never re-runs the analysis. Destinations are independent rows:
one destination's outage never delays another's.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydicom import dcmread

from srservice.config import OUTBOX, Settings
from srservice.delivery import scu
from srservice.delivery.outbox import deliver_to_outbox
from srservice.errors import Outcome, outcome_for, reason_for
from srservice.jobs.deliveries import DeliveryWork
from srservice.jobs.models import DeliveryState
from srservice.jobs.store import JobStore
from srservice.reporting.outputs import SUMMARY_NAME

LOGGER = logging.getLogger(__name__)


def lease_seconds(settings: Settings) -> float:
    """How long one attempt may take before the sweeper may send the delivery again."""
    return max(60.0, settings.acse_timeout + 3 * settings.dimse_timeout)


def _send(settings: Settings, work: DeliveryWork) -> None:
    if work.delivery.destination == OUTBOX:
        files = [Path(work.sr_path), Path(work.pdf_path)]
        summary = Path(work.output_dir) / SUMMARY_NAME
        if summary.exists():
            files.append(summary)
        deliver_to_outbox(settings.outbox_dir, work.job_id, files)
        return
    datasets = [dcmread(work.sr_path), dcmread(work.pdf_path)]
    scu.c_store(scu.parse_destination(work.delivery.destination), datasets, settings)


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
        _send(settings, work)
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
        return "retry" if view.state == DeliveryState.PENDING else str(view.state)
    store.delivery_succeeded(delivery_id)
    LOGGER.info("delivery %s of job %s to %s done", delivery_id, work.job_id, dest)
    return DeliveryState.DELIVERED
