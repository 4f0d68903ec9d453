"""Delivery transitions: claim, success, failure with exponential backoff, deadline, settle.

A delivery is one job's SR + PDF to one destination. Each is independent: one destination's
failure never changes another's row. The backoff doubles from
``delivery_backoff_seconds`` up to ``delivery_backoff_max_seconds``; an attempt that would
start after the delivery's ``deadline`` makes it ``dead`` (visible in ``srservice jobs``).
When every delivery of a job is settled the job becomes ``delivered`` (all delivered) or
``dead`` (some dead/failed, reason names them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from srservice.jobs.db import transaction
from srservice.jobs.models import Delivery, DeliveryState, Job, JobState, utcnow
from srservice.jobs.views import DeliveryView


def backoff_seconds(attempts: int, first: float, cap: float) -> float:
    """Delay before the retry that follows ``attempts`` failed attempts (doubling, capped)."""
    return float(min(cap, first * (2 ** max(0, attempts - 1))))


@dataclass(frozen=True)
class DeliveryWork:
    """What one claimed delivery has to send."""

    delivery: DeliveryView
    job_id: int
    output_dir: str
    sr_path: str
    pdf_path: str


class DeliveryMixin:
    """Delivery transitions of :class:`srservice.jobs.JobStore`."""

    engine: Engine

    def claim_delivery(self, delivery_id: int, lease_seconds: float) -> DeliveryWork | None:
        """Take a due pending delivery for one attempt (compare-and-set on ``attempts``).

        While the attempt runs, ``next_attempt_at`` is pushed ``lease_seconds`` ahead so the
        sweeper does not send a duplicate; if the worker dies, the delivery becomes due again
        after the lease. Returns None when not due, not pending, or claimed by another worker.
        """
        now = utcnow()
        with transaction(self.engine) as s:
            row = s.get(Delivery, delivery_id)
            if row is None or row.state != DeliveryState.PENDING:
                return None
            if row.next_attempt_at > now + timedelta(seconds=1):
                return None
            job = s.get(Job, row.job_id)
            if job is None or not job.sr_path or not job.pdf_path or not job.output_dir:
                return None
            result = s.execute(update(Delivery).where(
                Delivery.id == delivery_id, Delivery.state == DeliveryState.PENDING,
                Delivery.attempts == row.attempts
            ).values(attempts=row.attempts + 1,
                     next_attempt_at=now + timedelta(seconds=lease_seconds)))
            if int(getattr(result, "rowcount", 0)) != 1:
                return None
            s.refresh(row)
            return DeliveryWork(DeliveryView.of(row), job.id, job.output_dir, job.sr_path,
                                job.pdf_path)

    def delivery_succeeded(self, delivery_id: int) -> None:
        """Move pending -> delivered; settle the job when it was the last one."""
        now = utcnow()
        with transaction(self.engine) as s:
            row = s.get(Delivery, delivery_id)
            if row is None or row.state == DeliveryState.DELIVERED:
                return
            row.state, row.delivered_at, row.last_error = DeliveryState.DELIVERED, now, None
            s.flush()
            _settle(s, row.job_id)

    def delivery_failed(self, delivery_id: int, error: str, *, permanent: bool,
                        backoff_first: float, backoff_cap: float) -> DeliveryView | None:
        """Record a failed attempt: retry later with backoff, or dead past the deadline."""
        now = utcnow()
        with transaction(self.engine) as s:
            row = s.get(Delivery, delivery_id)
            if row is None or row.state != DeliveryState.PENDING:
                return None
            row.last_error = error
            if permanent:
                row.state = DeliveryState.FAILED
            else:
                due = now + timedelta(seconds=backoff_seconds(row.attempts, backoff_first,
                                                              backoff_cap))
                if due > row.deadline:
                    row.state = DeliveryState.DEAD
                    row.last_error = f"deadline passed after {row.attempts} attempts; last: {error}"
                else:
                    row.next_attempt_at = due
            s.flush()
            _settle(s, row.job_id)
            return DeliveryView.of(row)

    def mark_deliveries_enqueued(self, delivery_ids: Sequence[int]) -> None:
        """Record that deliver tasks were sent (the sweeper will not resend them now)."""
        if delivery_ids:
            with transaction(self.engine) as s:
                s.execute(update(Delivery).where(Delivery.id.in_(list(delivery_ids)))
                          .values(enqueued_at=utcnow()))


def _settle(s: Session, job_id: int) -> None:
    job = s.get(Job, job_id)
    if job is None or job.state != JobState.REPORTED:
        return
    rows = list(s.scalars(select(Delivery).where(Delivery.job_id == job_id)))
    if any(r.state == DeliveryState.PENDING for r in rows):
        return
    now = utcnow()
    bad = [r for r in rows if r.state != DeliveryState.DELIVERED]
    job.updated_at = job.finished_at = now
    if not bad:
        job.state, job.reason = JobState.DELIVERED, None
    else:
        job.state = JobState.DEAD
        job.reason = "; ".join(f"delivery to {r.destination} {r.state}: {r.last_error}"
                               for r in bad)[:2000]
