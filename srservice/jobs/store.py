r"""The job store: recording instances and the state transitions of jobs.

Every transition is a guarded compare-and-set ``UPDATE ... WHERE id = :id AND state = :seen
AND attempts = :seen`` so two workers can never both run one job: whoever's update changes a
row wins, the other sees ``rowcount == 0`` and backs off. Delivery transitions live in
:mod:`srservice.jobs.deliveries`; :meth:`JobStore.sweep` is the sweeper's query (the thread
that runs it is :mod:`srservice.jobs.sweeper`).

State machine (docs/configuration.md describes the settings that drive it)::

    received --send--> queued --claim--> running --report--> reported --deliveries--> delivered
        ^                 ^                 |  \\--permanent error--> failed(reason)
        |                 +--transient/lost-+   \\--MAX_ANALYSIS_ATTEMPTS lost--> dead
        +------------------- srservice retry (failed/dead) -----------------+
"""

from __future__ import annotations

import enum
import json
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from srservice import ALGORITHM_VERSION
from srservice.jobs.backfills import BackfillMixin
from srservice.jobs.db import check_integrity, make_engine, transaction
from srservice.jobs.deliveries import DeliveryMixin
from srservice.jobs.models import (
    FINISHED_ANALYSIS,
    Delivery,
    DeliveryState,
    Instance,
    Job,
    JobKind,
    JobState,
    Trigger,
    utcnow,
)
from srservice.jobs.views import DeliveryView, InstanceView, IntakeResult, JobView, SweepResult
from srservice.listener.spool import StoredInstance

#: A job whose worker was lost this many times is marked dead (a poison input that kills its
#: worker, e.g. by exhausting memory, must not loop forever).
MAX_ANALYSIS_ATTEMPTS = 3


class Claim(enum.Enum):
    """Result of :meth:`JobStore.claim_job`."""

    RUN = "run"
    """This worker owns the job now and must run it."""
    DONE = "done"
    """Nothing to do: already reported/delivered/failed/dead (or missing)."""
    BUSY = "busy"
    """Another live worker runs it."""


@dataclass(frozen=True)
class ReportRecord:
    """Where a job's outputs were written (recorded by :meth:`JobStore.finish_report`)."""

    output_dir: str
    sr_path: str
    pdf_path: str
    sr_sop_instance_uid: str
    pdf_sop_instance_uid: str
    score_total: int | None
    summary: dict[str, Any]


def worker_identity() -> str:
    """Return ``host:pid`` of this process (the owner recorded by a claim)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str | None) -> bool:
    """Return False only when ``owner`` is a process of this host that no longer exists."""
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another host: only its heartbeat tells
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobStore(DeliveryMixin, BackfillMixin):
    """The job store on one database URL (see :mod:`srservice.jobs.db`).

    Parameters
    ----------
    url : str
        SQLAlchemy URL (``settings.effective_database_url``).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = make_engine(url)

    def check_integrity(self) -> None:
        """Check the store is sound (SQLite ``PRAGMA quick_check``; see :func:`check_integrity`).

        Raises
        ------
        JobStoreDamagedError
            With a one-line reason.
        """
        check_integrity(self.engine)

    def dispose(self) -> None:
        """Close all pooled connections (call in a forked child before first use)."""
        self.engine.dispose()

    # ------------------------------------------------------------------ intake
    def add_instance(self, stored: StoredInstance, *, trigger: Trigger,
                     quiet_seconds: float = 0.0) -> IntakeResult:
        """Record a stored instance and create or refresh its job in one transaction.

        Parameters
        ----------
        stored : StoredInstance
            The instance durably in the spool.
        trigger : Trigger
            ``JOB``: a job for this instance now; ``SERIES``: a series job after
            ``quiet_seconds`` without new instances; ``NONE``: record only.
        quiet_seconds : float
            Quiet period of a series job.

        Returns
        -------
        IntakeResult
            ``duplicate`` when this SOP Instance UID with these bytes was recorded before
            (idempotent resend: no new job).
        """
        for _ in range(3):
            try:
                with transaction(self.engine) as s:
                    return self._add_instance(s, stored, trigger, quiet_seconds)
            except IntegrityError:
                continue  # a concurrent resend of the same bytes won the insert
        with transaction(self.engine) as s:
            return self._add_instance(s, stored, trigger, quiet_seconds)

    def _add_instance(self, s: Session, stored: StoredInstance, trigger: Trigger,
                      quiet_seconds: float) -> IntakeResult:
        now = utcnow()
        earlier = list(s.scalars(select(Instance).where(
            Instance.sop_instance_uid == stored.sop_instance_uid).order_by(Instance.id)))
        for inst in earlier:
            if inst.sha256 == stored.sha256:
                job_id = s.scalar(select(Job.id).where(Job.instance_id == inst.id)
                                  .order_by(Job.id.desc()).limit(1))
                return IntakeResult(inst.id, job_id, duplicate=True, enqueue_now=False)
        row = Instance(
            sop_instance_uid=stored.sop_instance_uid, sop_class_uid=stored.sop_class_uid,
            study_instance_uid=stored.study_instance_uid,
            series_instance_uid=stored.series_instance_uid, modality=stored.modality,
            number_of_frames=stored.number_of_frames,
            transfer_syntax_uid=stored.transfer_syntax_uid, sha256=stored.sha256,
            size=stored.size, path=str(stored.path), calling_ae=stored.calling_ae,
            peer_host=stored.peer_host, received_at=stored.received_at, superseded=False)
        s.add(row)
        for inst in earlier:
            inst.superseded = True
        s.flush()
        if trigger == Trigger.JOB:
            job = self._new_job(s, row, kind=JobKind.PULLBACK, now=now)
            if earlier:
                job.revision = stored.sha256[:16]
                self._supersede(s, job, Job.source_sop_instance_uid == stored.sop_instance_uid)
            return IntakeResult(row.id, job.id, duplicate=False, enqueue_now=True)
        if trigger == Trigger.SERIES:
            waiting = s.scalar(select(Job).where(
                Job.kind == JobKind.SERIES, Job.series_instance_uid == stored.series_instance_uid,
                Job.state == JobState.RECEIVED).order_by(Job.id.desc()).limit(1))
            not_before = now + timedelta(seconds=quiet_seconds)
            if waiting is not None:
                waiting.not_before = not_before
                waiting.updated_at = now
                return IntakeResult(row.id, waiting.id, duplicate=False, enqueue_now=False)
            job = self._new_job(s, row, kind=JobKind.SERIES, now=now)
            job.instance_id = None
            job.not_before = not_before
            prior = s.scalar(select(func.count(Job.id)).where(
                Job.kind == JobKind.SERIES, Job.series_instance_uid == stored.series_instance_uid,
                Job.id != job.id))
            if prior:
                job.revision = f"series{prior}"
                self._supersede(s, job, (Job.kind == JobKind.SERIES) & (
                    Job.series_instance_uid == stored.series_instance_uid))
            return IntakeResult(row.id, job.id, duplicate=False, enqueue_now=False)
        return IntakeResult(row.id, None, duplicate=False, enqueue_now=False)

    @staticmethod
    def _new_job(s: Session, inst: Instance, *, kind: JobKind, now: Any) -> Job:
        job = Job(kind=kind, instance_id=inst.id, source_sop_instance_uid=inst.sop_instance_uid,
                  series_instance_uid=inst.series_instance_uid,
                  study_instance_uid=inst.study_instance_uid, state=JobState.RECEIVED,
                  attempts=0, algorithm_version=ALGORITHM_VERSION, created_at=now,
                  updated_at=now)
        s.add(job)
        s.flush()
        return job

    @staticmethod
    def _supersede(s: Session, job: Job, same: Any) -> None:
        earlier = list(s.scalars(select(Job).where(same, Job.id != job.id,
                                                   Job.superseded_by_job_id.is_(None))))
        for old in earlier:
            old.superseded_by_job_id = job.id
        if earlier:
            job.supersedes_job_id = max(old.id for old in earlier)

    # ------------------------------------------------------------------ analysis
    def mark_queued(self, job_ids: Sequence[int]) -> None:
        """Record that analyze tasks were sent for ``job_ids`` (received -> queued)."""
        if not job_ids:
            return
        now = utcnow()
        with transaction(self.engine) as s:
            s.execute(update(Job).where(Job.id.in_(list(job_ids)), Job.state.in_(
                [JobState.RECEIVED, JobState.QUEUED])).values(
                state=JobState.QUEUED, queued_at=now, updated_at=now))

    def claim_job(self, job_id: int, owner: str, *, stale_after_seconds: float,
                  alive: Callable[[str | None], bool] = owner_alive,
                  ) -> tuple[Claim, JobView | None]:
        """Try to become the one worker that runs ``job_id`` (compare-and-set).

        A job in ``running`` is taken over only when its owner is known dead (same host) or
        its heartbeat is older than ``stale_after_seconds``. After
        :data:`MAX_ANALYSIS_ATTEMPTS` claims the job is marked dead instead.
        """
        now = utcnow()
        with transaction(self.engine) as s:
            job = s.get(Job, job_id)
            if job is None or job.state in FINISHED_ANALYSIS:
                return Claim.DONE, JobView.of(job) if job else None
            if job.superseded_by_job_id is not None:
                self._set(s, job, JobState.FAILED,
                          reason=f"superseded by job {job.superseded_by_job_id} (new content "
                          "for the same SOP Instance UID)", finished=True)
                return Claim.DONE, JobView.of(job)
            if job.state == JobState.RUNNING:
                fresh = (job.heartbeat_at is not None
                         and now - job.heartbeat_at < timedelta(seconds=stale_after_seconds))
                # the same owner re-claiming means its earlier attempt in this process is over
                # (a prefork child runs one task at a time), e.g. a retry after a DB outage
                if fresh and job.owner != owner and alive(job.owner):
                    return Claim.BUSY, JobView.of(job)
            seen_state, seen_attempts = job.state, job.attempts
            if seen_attempts >= MAX_ANALYSIS_ATTEMPTS:
                s.execute(update(Job).where(
                    Job.id == job_id, Job.state == seen_state, Job.attempts == seen_attempts
                ).values(state=JobState.DEAD, finished_at=now, updated_at=now, owner=None,
                         reason=f"gave up after {seen_attempts} attempts (worker lost or "
                         "timed out each time)"))
                return Claim.DONE, None
            result = s.execute(update(Job).where(
                Job.id == job_id, Job.state == seen_state, Job.attempts == seen_attempts
            ).values(state=JobState.RUNNING, attempts=seen_attempts + 1, owner=owner,
                     started_at=now, heartbeat_at=now, updated_at=now))
            if _rowcount(result) != 1:
                return Claim.BUSY, None
        return Claim.RUN, self.get_job(job_id)

    def heartbeat(self, job_id: int, owner: str) -> bool:
        """Refresh the running job's heartbeat; False when this worker no longer owns it."""
        now = utcnow()
        with transaction(self.engine) as s:
            result = s.execute(update(Job).where(
                Job.id == job_id, Job.state == JobState.RUNNING, Job.owner == owner
            ).values(heartbeat_at=now))
            return _rowcount(result) == 1

    def finish_report(self, job_id: int, owner: str, record: ReportRecord,
                      destinations: Sequence[str], deadline_seconds: float) -> list[int] | None:
        """Move running -> reported and create one pending delivery per destination.

        Returns the delivery ids, or None when this worker lost the job meanwhile.
        """
        now = utcnow()
        with transaction(self.engine) as s:
            result = s.execute(update(Job).where(
                Job.id == job_id, Job.state == JobState.RUNNING, Job.owner == owner
            ).values(state=JobState.REPORTED, reported_at=now, updated_at=now, reason=None,
                     output_dir=record.output_dir, sr_path=record.sr_path,
                     pdf_path=record.pdf_path, sr_sop_instance_uid=record.sr_sop_instance_uid,
                     pdf_sop_instance_uid=record.pdf_sop_instance_uid,
                     score_total=record.score_total,
                     summary_json=json.dumps(record.summary, default=str)))
            if _rowcount(result) != 1:
                return None
            deadline = now + timedelta(seconds=deadline_seconds)
            rows = [Delivery(job_id=job_id, destination=d, state=DeliveryState.PENDING,
                             attempts=0, created_at=now, next_attempt_at=now, deadline=deadline)
                    for d in destinations]
            s.add_all(rows)
            s.flush()
            return [r.id for r in rows]

    def fail_job(self, job_id: int, owner: str | None, reason: str) -> bool:
        """Move running (owned) -> failed(reason): a permanent error for this input."""
        with transaction(self.engine) as s:
            job = s.get(Job, job_id)
            if job is None or job.state in FINISHED_ANALYSIS or (
                    owner is not None and job.owner != owner):
                return False
            self._set(s, job, JobState.FAILED, reason=reason, finished=True)
            return True

    def release_job(self, job_id: int, owner: str, reason: str) -> bool:
        """Move running (owned) -> queued after a transient error; the task is retried."""
        now = utcnow()
        with transaction(self.engine) as s:
            result = s.execute(update(Job).where(
                Job.id == job_id, Job.state == JobState.RUNNING, Job.owner == owner
            ).values(state=JobState.QUEUED, queued_at=now, updated_at=now, owner=None,
                     reason=f"retrying: {reason}"))
            return _rowcount(result) == 1

    def retry_job(self, job_id: int, deadline_seconds: float) -> str:
        """Operator retry of a failed or dead job. Returns what will happen.

        A job whose report exists gets its undelivered deliveries reset (no new analysis);
        otherwise the analysis runs again with a fresh attempt count.

        Raises
        ------
        LookupError
            No such job.
        ValueError
            The job is not failed or dead, or it is superseded (newer content for the same
            SOP Instance UID has its own job, which is the one to retry).
        """
        now = utcnow()
        with transaction(self.engine) as s:
            job = s.get(Job, job_id)
            if job is None:
                raise LookupError(f"no job {job_id}")
            if job.state not in (JobState.FAILED, JobState.DEAD):
                raise ValueError(f"job {job_id} is {job.state}; only failed or dead jobs "
                                 "can be retried")
            if job.superseded_by_job_id is not None:
                raise ValueError(f"job {job_id} is superseded by job "
                                 f"{job.superseded_by_job_id} (new content for the same SOP "
                                 "Instance UID); retry that job instead")
            deliveries = list(s.scalars(select(Delivery).where(Delivery.job_id == job_id)))
            if job.sr_path and deliveries:
                for d in deliveries:
                    if d.state != DeliveryState.DELIVERED:
                        d.state, d.attempts, d.enqueued_at = DeliveryState.PENDING, 0, None
                        d.next_attempt_at = now
                        d.deadline = now + timedelta(seconds=deadline_seconds)
                self._set(s, job, JobState.REPORTED, reason=None)
                return "deliveries"
            self._set(s, job, JobState.RECEIVED, reason=None)
            job.attempts, job.owner, job.not_before, job.queued_at = 0, None, None, None
            return "analysis"

    @staticmethod
    def _set(s: Session, job: Job, state: JobState, *, reason: str | None,
             finished: bool = False) -> None:
        now = utcnow()
        job.state, job.reason, job.updated_at = state, reason, now
        if finished:
            job.finished_at, job.owner = now, None

    # ------------------------------------------------------------------ sweeper
    def sweep(self, *, stuck_seconds: float, grace_seconds: float,
              alive: Callable[[str | None], bool]) -> SweepResult:
        """Return (and mark as sent) the jobs and deliveries to send to the broker now.

        The job store, not the broker, is the source of truth, so anything a lost message, a
        restarted Redis, a killed worker or a failed publish left behind is found here:

        - ``received`` jobs that are due (series quiet period over) and were not sent within
          ``grace_seconds`` (the publish at intake failed, or a series job became due);
        - ``queued`` jobs whose message was sent more than ``stuck_seconds`` ago (lost);
        - ``running`` jobs whose owner is known dead (``alive`` says so) or whose heartbeat is
          older than ``stuck_seconds`` (worker lost): they go back to ``queued``;
        - ``pending`` deliveries that are due and were not sent since they became due.

        Duplicated messages are harmless: every task claims its row with a compare-and-set.
        """
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
                if _rowcount(result) == 1:
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

    # ------------------------------------------------------------------ reading
    def get_job(self, job_id: int) -> JobView | None:
        """Return the job with its deliveries, or None."""
        with transaction(self.engine) as s:
            job = s.get(Job, job_id)
            return self._view(s, job) if job else None

    def list_jobs(self, state: str | None = None, *, sop_instance_uid: str | None = None,
                  limit: int = 200) -> list[JobView]:
        """Newest jobs first, optionally filtered by state or source SOP Instance UID."""
        query = select(Job).order_by(Job.id.desc()).limit(limit)
        if state:
            query = query.where(Job.state == state)
        if sop_instance_uid:
            query = query.where(Job.source_sop_instance_uid == sop_instance_uid)
        with transaction(self.engine) as s:
            return [self._view(s, j) for j in s.scalars(query)]

    def job_inputs(self, job_id: int) -> list[InstanceView]:
        """Return the instances a job analyses (its instance, or its series' instances)."""
        with transaction(self.engine) as s:
            job = s.get(Job, job_id)
            if job is None:
                return []
            if job.kind != JobKind.SERIES:
                inst = s.get(Instance, job.instance_id) if job.instance_id else None
                return [InstanceView.of(inst)] if inst else []
            rows = s.scalars(select(Instance).where(
                Instance.series_instance_uid == job.series_instance_uid,
                Instance.superseded.is_(False), Instance.number_of_frames <= 1,
                Instance.sop_class_uid == job_source_class(s, job)).order_by(Instance.id))
            return [InstanceView.of(r) for r in rows]

    @staticmethod
    def _view(s: Session, job: Job) -> JobView:
        rows = s.scalars(select(Delivery).where(Delivery.job_id == job.id).order_by(Delivery.id))
        return JobView.of(job, tuple(DeliveryView.of(d) for d in rows))


def job_source_class(s: Session, job: Job) -> str:
    """SOP Class UID of the instances of a series job (that of its first instance)."""
    cls = s.scalar(select(Instance.sop_class_uid).where(
        Instance.series_instance_uid == job.series_instance_uid,
        Instance.sop_instance_uid == job.source_sop_instance_uid).limit(1))
    return cls or ""


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0))
