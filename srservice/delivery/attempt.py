"""One attempt of one delivery (one job's reports to one destination): what a ``deliver`` task does.

:func:`deliver_one` claims the delivery in the job store, sends the SR, the PDF and the
presentation state when there is one (:func:`report_files`; C-STORE,
:mod:`srservice.delivery.scu`) or publishes the outputs in the outbox
(:mod:`srservice.delivery.outbox`), and records the result. Failures are mapped with
:func:`srservice.errors.outcome_for`: a transient failure (PACS down, failure status,
time-out, outbox not writable) is retried with exponential backoff until the delivery
deadline, then the delivery is ``dead`` (the dead letter, visible in ``srservice jobs``); a
permanent one (the outputs cannot be read) is ``failed`` at once. The backoff and the
deadline are kept in the job store (:mod:`srservice.jobs.deliveries`) and applied by the
sweeper, so a PACS outage never re-runs the analysis. Destinations are independent rows:
one destination's outage never delays another's.

Re-sending after a lost acknowledgement: every attempt after the first (and the first after
``srservice retry`` of a delivery that had failed) may follow one whose C-STORE reached the
PACS although its response never got recorded (the worker was killed while the PACS held the
C-STORE; the sweeper sent the delivery again after its lease). Before
such an attempt the destination is asked, by a Study Root C-FIND at IMAGE level with the
report's Study, Series and SOP Instance UIDs (:func:`srservice.delivery.query.held_instances`),
which of the reports it already holds; those are not sent again. A destination that cannot
answer (no Query/Retrieve FIND context, a failure status, no response) gets the reports
again, as before: a PACS that replaces or ignores a known SOP Instance UID keeps one copy, an
archive that keeps versions may keep two (docs/reliability.md).
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset

from srservice.config import OUTBOX, Destination, Settings
from srservice.delivery import query, scu
from srservice.delivery.outbox import deliver_to_outbox
from srservice.errors import Outcome, QueryError, outcome_for, reason_for
from srservice.jobs.deliveries import DeliveryWork
from srservice.jobs.models import DeliveryState
from srservice.jobs.store import JobStore
from srservice.reporting.outputs import PR_NAME, SUMMARY_NAME

LOGGER = logging.getLogger(__name__)


def lease_seconds(settings: Settings) -> float:
    """How long one attempt may take before the sweeper may send the delivery again."""
    return max(60.0, settings.acse_timeout + 3 * settings.dimse_timeout)


def report_files(work: DeliveryWork) -> list[Path]:
    """Return the DICOM reports of a job: SR, PDF and its presentation state when it has one.

    The presentation state lives beside the SR in the job's output directory
    (:data:`srservice.reporting.outputs.PR_NAME`); a pullback without a frame to annotate
    has none.
    """
    files = [Path(work.sr_path), Path(work.pdf_path)]
    pr = Path(work.output_dir) / PR_NAME
    if pr.is_file():
        files.append(pr)
    return files


def _send(settings: Settings, work: DeliveryWork) -> None:
    if work.delivery.destination == OUTBOX:
        files = report_files(work)
        summary = Path(work.output_dir) / SUMMARY_NAME
        if summary.exists():
            files.append(summary)
        deliver_to_outbox(settings.outbox_dir, work.job_id, files)
        return
    datasets: list[Dataset] = [dcmread(f) for f in report_files(work)]
    dest = scu.parse_destination(work.delivery.destination)
    if work.delivery.attempts > 1 or work.delivery.last_error:
        datasets = _not_yet_held(settings, work, dest, datasets)
        if not datasets:
            return
    scu.c_store(dest, datasets, settings)


def _not_yet_held(settings: Settings, work: DeliveryWork, dest: Destination,
                  datasets: list[Dataset]) -> list[Dataset]:
    """Return the reports ``dest`` does not hold yet (all of them when it cannot say)."""
    refs = [query.InstanceRef(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID),
                              str(ds.SOPInstanceUID)) for ds in datasets]
    try:
        held = query.held_instances(dest, settings, refs)
    except QueryError as exc:
        LOGGER.warning("delivery %s of job %s: %s cannot say whether it holds the reports "
                       "(%s); sending them again", work.delivery.id, work.job_id, dest,
                       reason_for(exc))
        return datasets
    for ds in datasets:
        if str(ds.SOPInstanceUID) in held:
            LOGGER.info("delivery %s of job %s: %s already holds %s; not sent again",
                        work.delivery.id, work.job_id, dest, ds.SOPInstanceUID)
    return [ds for ds in datasets if str(ds.SOPInstanceUID) not in held]


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
