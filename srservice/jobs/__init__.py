"""Jobs: from a stored instance to delivered reports, with the job store as the source of truth.

- :mod:`~srservice.jobs.models`, :mod:`~srservice.jobs.db`: the tables (instances, jobs,
  deliveries), their states and the engine (SQLite or PostgreSQL).
- :mod:`~srservice.jobs.store`: every state transition, a guarded compare-and-set
  (:mod:`~srservice.jobs.deliveries` for the delivery rows; :mod:`~srservice.jobs.views` for
  the snapshots handed out).
- :mod:`~srservice.jobs.intake`: a stored instance becomes a job (the listener's callback).
- :mod:`~srservice.jobs.dispatch`: the broker client, task names and Celery configuration.
- :mod:`~srservice.jobs.runner`: what an analyze task does.
- :mod:`~srservice.jobs.sweeper`: re-sends what the broker lost or delayed.

Celery only carries row ids. The names below are the ones most callers need.
"""

from srservice.jobs.deliveries import DeliveryWork, backoff_seconds
from srservice.jobs.models import TERMINAL_JOB_STATES, DeliveryState, JobKind, JobState, Trigger
from srservice.jobs.store import (
    MAX_ANALYSIS_ATTEMPTS,
    Claim,
    JobStore,
    ReportRecord,
    owner_alive,
    worker_identity,
)
from srservice.jobs.views import DeliveryView, InstanceView, IntakeResult, JobView, SweepResult

__all__ = [
    "MAX_ANALYSIS_ATTEMPTS",
    "TERMINAL_JOB_STATES",
    "Claim",
    "DeliveryState",
    "DeliveryView",
    "DeliveryWork",
    "InstanceView",
    "IntakeResult",
    "JobKind",
    "JobState",
    "JobStore",
    "JobView",
    "ReportRecord",
    "SweepResult",
    "Trigger",
    "backoff_seconds",
    "owner_alive",
    "worker_identity",
]
