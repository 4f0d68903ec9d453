"""What an ``analyze_job`` task does: claim, load, analyse, report, write, record, hand over.

Exactly::

    load_pullback(path, default_pixel_spacing_mm=..., default_frame_spacing_mm=...)
      -> analyze_pullback(loaded.pullback) -> produce_outputs(loaded, analysis, revision=...)
      -> write outputs atomically to data_dir/outputs/<job>/ -> state reported
      -> one pending delivery per destination (or the outbox), each sent as its own task

Idempotent: a redelivered task for a job already reported does nothing (the claim says DONE);
a job whose worker died is taken over (same host: the owner pid is gone; otherwise the
heartbeat is older than ``settings.job_stuck_seconds``). Failures are mapped only through
:func:`srservice.errors.outcome_for` and :func:`srservice.errors.reason_for`.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from types import TracebackType

from srservice.config import Settings
from srservice.dicomheader import ReadLimits
from srservice.dicomio import LoadedPullback, load_pullback, load_series
from srservice.errors import Outcome, TransientError, outcome_for, reason_for
from srservice.jobs.dispatch import Enqueuer, enqueue_deliveries
from srservice.jobs.models import JobKind, JobState
from srservice.jobs.store import Claim, JobStore, ReportRecord
from srservice.jobs.views import InstanceView, JobView
from srservice.reporting.outputs import produce_outputs, write_outputs

LOGGER = logging.getLogger(__name__)


def heartbeat_interval(settings: Settings) -> float:
    """Seconds between heartbeats of a running job (a quarter of the stuck timeout, <= 30 s)."""
    return max(0.5, min(30.0, settings.job_stuck_seconds / 4))


class Heartbeat:
    """Context manager refreshing a running job's heartbeat from a daemon thread."""

    def __init__(self, store: JobStore, job_id: int, owner: str, interval: float) -> None:
        self._store, self._job_id, self._owner, self._interval = store, job_id, owner, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}",
                                        daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if not self._store.heartbeat(self._job_id, self._owner):
                    LOGGER.warning("job %s: no longer owned by %s", self._job_id, self._owner)
                    return
            except TransientError as exc:
                LOGGER.warning("job %s: heartbeat failed: %s", self._job_id, exc)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def load_job_input(settings: Settings, job: JobView, inputs: list[InstanceView]) -> LoadedPullback:
    """Load a job's pullback (one multi-frame instance, or a single-frame series)."""
    if job.kind == JobKind.SERIES:
        return load_series([Path(i.path) for i in inputs],
                           default_pixel_spacing_mm=settings.default_pixel_spacing_mm,
                           default_frame_spacing_mm=settings.default_frame_spacing_mm,
                         limits=ReadLimits.from_settings(settings))
    if not inputs:
        raise FileNotFoundError(f"job {job.id} has no input instance")
    return load_pullback(inputs[0].path,
                         default_pixel_spacing_mm=settings.default_pixel_spacing_mm,
                         default_frame_spacing_mm=settings.default_frame_spacing_mm,
                         limits=ReadLimits.from_settings(settings))


def _analyze_and_write(settings: Settings, store: JobStore, job: JobView) -> ReportRecord:
    from srservice.analysis.pipeline import analyze_pullback

    loaded = load_job_input(settings, job, store.job_inputs(job.id))
    analysis = analyze_pullback(loaded.pullback)
    # The first job of an instance has no revision (plain derived UIDs); a superseding job's
    # revision (content hash prefix) gives its report new UIDs (srservice.reporting.uids).
    outputs = produce_outputs(loaded, analysis, revision=job.revision or None)
    written = write_outputs(settings.outputs_dir / str(job.id), outputs)
    summary = dict(outputs.summary)
    total = summary.get("ivus_calcium_score")
    return ReportRecord(
        output_dir=str(written.directory), sr_path=str(written.sr_path),
        pdf_path=str(written.pdf_path), sr_sop_instance_uid=written.sr_sop_instance_uid,
        pdf_sop_instance_uid=written.pdf_sop_instance_uid,
        score_total=total if isinstance(total, int) else None, summary=summary)


def run_analysis(settings: Settings, store: JobStore, job_id: int, *, owner: str,
                 enqueuer: Enqueuer | None) -> str:
    """Run one analyze task for ``job_id``.

    Parameters
    ----------
    settings : Settings
        Site defaults, time-outs, destinations and the outputs directory.
    store : JobStore
        The job store.
    job_id : int
        The job to run.
    owner : str
        This worker's identity (:func:`srservice.jobs.store.worker_identity`).
    enqueuer : Enqueuer or None
        Sends the deliver tasks of the new deliveries; None leaves them to the sweeper.

    Returns
    -------
    str
        ``"reported"``, ``"failed"``, ``"retry"`` (transient error: job back to queued, the
        caller re-sends the task later), or the claim's value (``"done"``, ``"busy"``) when
        there was nothing to do, or ``"lost"`` when another worker took the job over.
    """
    claim, job = store.claim_job(job_id, owner, stale_after_seconds=settings.job_stuck_seconds)
    if claim is not Claim.RUN or job is None:
        LOGGER.info("job %s: %s, nothing to do", job_id, claim.value)
        return claim.value
    LOGGER.info("job %s: running (attempt %s) as %s", job_id, job.attempts, owner)
    try:
        with Heartbeat(store, job_id, owner, heartbeat_interval(settings)):
            record = _analyze_and_write(settings, store, job)
    except Exception as exc:  # every failure is mapped in one place: errors.outcome_for
        reason = reason_for(exc)
        if outcome_for(exc) is Outcome.RETRY:
            LOGGER.warning("job %s: transient failure, will retry: %s", job_id, reason)
            store.release_job(job_id, owner, reason)
            return "retry"
        LOGGER.error("job %s: failed: %s", job_id, reason)
        store.fail_job(job_id, owner, reason)
        return JobState.FAILED
    ids = store.finish_report(job_id, owner, record, settings.delivery_destinations,
                              settings.delivery_deadline_seconds)
    if ids is None:
        LOGGER.warning("job %s: lost ownership before reporting; outputs left as written",
                       job_id)
        return "lost"
    LOGGER.info("job %s: reported (%s), %d deliveries", job_id,
                record.summary.get("result", f"score {record.score_total}"), len(ids))
    if enqueuer is not None:
        enqueue_deliveries(store, enqueuer, ids)
    return JobState.REPORTED
