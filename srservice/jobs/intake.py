"""From a stored instance to a job: record it in the job store and trigger the analysis.

Triggering rules (also in ``docs/configuration.md``):

- Only Modality ``IVUS`` (PS3.3 C.7.3.1.1.1) triggers an analysis. An Ultrasound Multi-frame
  instance (:data:`srservice.sopclasses.MULTI_FRAME_IVUS`, or any ultrasound instance with
  more than one frame) starts a job at once.
- An Ultrasound Image Storage instance (:data:`srservice.sopclasses.SINGLE_FRAME_IVUS`) with
  one frame belongs to a single-frame series: one
  series job per Series Instance UID starts after ``settings.single_frame_quiet_seconds``
  without a new instance of that series (each new instance pushes the start back).
- Anything else (IVOCT, other modalities, other classes stored by ``non_ivus_policy=store``)
  is recorded, not analysed.
- The same SOP Instance UID with the same bytes (sha256) again: nothing new (idempotent).
  The same UID with new bytes: a new job that supersedes the earlier one; its report gets new
  UIDs (see :mod:`srservice.reporting.uids`).

The job store write happens before the SCP answers Success; if it fails the SCP answers
0xA700 (:class:`srservice.errors.TransientError`) and the sender retries. A broker that
cannot be reached is not an error here: the job stays ``received`` and the sweeper sends it.

The listener knows nothing of this module: ``srservice serve`` passes :func:`make_on_stored`'s
callback to :func:`srservice.listener.scp.start_scp`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from srservice import sopclasses
from srservice.config import Settings
from srservice.errors import TransientError, reason_for
from srservice.jobs.dispatch import Dispatcher, Enqueuer, enqueue_jobs
from srservice.jobs.models import Trigger
from srservice.jobs.store import JobStore
from srservice.listener.spool import StoredInstance

LOGGER = logging.getLogger(__name__)


def trigger_for(stored: StoredInstance) -> Trigger:
    """Return what a stored instance starts (the rules of the module docstring)."""
    return trigger_of(stored.modality, stored.sop_class_uid, stored.number_of_frames)


def trigger_of(modality: str, sop_class_uid: str, number_of_frames: int) -> Trigger:
    """Return what an instance with these attributes starts (the backfill asks the same)."""
    if modality.strip().upper() != "IVUS":
        return Trigger.NONE
    if sop_class_uid in sopclasses.MULTI_FRAME_IVUS or (
            sop_class_uid in sopclasses.SINGLE_FRAME_IVUS and number_of_frames > 1):
        return Trigger.JOB
    if sop_class_uid in sopclasses.SINGLE_FRAME_IVUS:
        return Trigger.SERIES
    return Trigger.NONE


def make_on_stored(settings: Settings, store: JobStore | None = None,
                   enqueuer: Enqueuer | None = None) -> Callable[[StoredInstance], None]:
    """Return the SCP's ``on_stored`` callback: record the instance, trigger its job.

    Parameters
    ----------
    settings : Settings
        ``single_frame_quiet_seconds`` and the job store URL.
    store : JobStore, optional
        Job store (default: one on ``settings.effective_database_url``).
    enqueuer : Enqueuer, optional
        Broker client (default: a :class:`srservice.jobs.dispatch.Dispatcher`).

    Raises
    ------
    TransientError
        From the callback, when the job store cannot record the instance (status 0xA700).
    """
    job_store = store if store is not None else JobStore(settings.effective_database_url)
    sender = enqueuer if enqueuer is not None else Dispatcher(settings)

    def on_stored(stored: StoredInstance) -> None:
        trigger = trigger_for(stored)
        try:
            result = job_store.add_instance(stored, trigger=trigger,
                                            quiet_seconds=settings.single_frame_quiet_seconds)
        except SQLAlchemyError as exc:
            raise TransientError(f"job store write failed: {reason_for(exc)}") from exc
        LOGGER.info("instance %s recorded (trigger %s, job %s%s)", result.instance_id, trigger,
                    result.job_id, ", duplicate" if result.duplicate else "")
        if result.job_id is not None and result.enqueue_now:
            enqueue_jobs(job_store, sender, [result.job_id])

    return on_stored
