"""The job store (SQLAlchemy 2): instances, jobs, deliveries and their guarded transitions.

It is the source of truth of the service; Celery only carries row ids. See
:mod:`srservice.jobs.store` for the state machine.
"""

from srservice.jobs.deliveries import DeliveryWork, backoff_seconds
from srservice.jobs.models import DeliveryState, JobState
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
    "Claim",
    "DeliveryState",
    "DeliveryView",
    "DeliveryWork",
    "InstanceView",
    "IntakeResult",
    "JobState",
    "JobStore",
    "JobView",
    "ReportRecord",
    "SweepResult",
    "backoff_seconds",
    "owner_alive",
    "worker_identity",
]
