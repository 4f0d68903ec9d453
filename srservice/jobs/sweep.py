"""The sweeper's query: which jobs and deliveries must be (re-)sent to the broker now.

The job store, not the broker, is the source of truth, so anything a lost message, a restarted
Redis, a killed worker or a failed publish left behind is found here and sent again:

- ``received`` jobs that are due (series quiet period over) and were not sent within
  ``grace_seconds`` (the publish at intake failed, or a series job became due);
- ``queued`` jobs whose message was sent more than ``stuck_seconds`` ago (message lost);
- ``running`` jobs whose owner is known dead (same host) or whose heartbeat is older than
  ``stuck_seconds`` (worker lost): they go back to ``queued``;
- ``pending`` deliveries that are due and were not sent since they became due.

Duplicated messages are harmless: every task claims its row with a compare-and-set first.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import Engine, or_, select, update

from srservice.jobs.db import transaction
from srservice.jobs.models import Delivery, DeliveryState, Job, JobState, utcnow
from srservice.jobs.views import SweepResult


class SweepMixin:
    """Sweeper query of :class:`srservice.jobs.JobStore`."""

    engine: Engine

    def sweep(self, *, stuck_seconds: float, grace_seconds: float,
              alive: Callable[[str | None], bool]) -> SweepResult:
        """Return (and mark as sent) the jobs and deliveries to send to the broker now."""
        now = utcnow()
        grace = now - timedelta(seconds=grace_seconds)
        stuck = now - timedelta(seconds=stuck_seconds)
        jobs: list[int] = []
        with transaction(self.engine) as s:
            received = s.scalars(select(Job.id).where(
                Job.state == JobState.RECEIVED,
                or_(Job.not_before.is_(None), Job.not_before <= now),
                or_(Job.not_before.is_not(None), Job.created_at <= grace),
                or_(Job.queued_at.is_(None), Job.queued_at <= grace)))
            jobs.extend(received)
            jobs.extend(s.scalars(select(Job.id).where(Job.state == JobState.QUEUED,
                                                       Job.queued_at <= stuck)))
            for job in s.scalars(select(Job).where(Job.state == JobState.RUNNING)):
                lost = not alive(job.owner) or job.heartbeat_at is None or \
                    job.heartbeat_at <= stuck
                if not lost:
                    continue
                result = s.execute(update(Job).where(
                    Job.id == job.id, Job.state == JobState.RUNNING, Job.owner == job.owner,
                    Job.attempts == job.attempts).values(
                    state=JobState.QUEUED, owner=None, updated_at=now,
                    reason=f"worker {job.owner} lost; re-queued"))
                if int(getattr(result, "rowcount", 0)) == 1:
                    jobs.append(job.id)
            if jobs:
                s.execute(update(Job).where(Job.id.in_(jobs)).values(queued_at=now))
            deliveries = list(s.scalars(select(Delivery.id).where(
                Delivery.state == DeliveryState.PENDING, Delivery.next_attempt_at <= now,
                or_(Delivery.enqueued_at.is_(None),
                    Delivery.enqueued_at < Delivery.next_attempt_at,
                    Delivery.enqueued_at <= stuck))))
            if deliveries:
                s.execute(update(Delivery).where(Delivery.id.in_(deliveries))
                          .values(enqueued_at=now))
        return SweepResult(tuple(jobs), tuple(deliveries))
