"""SQLAlchemy 2 typed ORM models of the job store: instances, jobs and deliveries.

The job store is the source of truth of the service (``docs/architecture.md``): every stored
instance, every analysis job and every delivery of a report to one destination is a row here,
with its state and timestamps. Celery only carries the row ids.

All timestamps are stored as naive UTC (SQLite has no time zone type) and returned as aware
UTC datetimes by :class:`UTCDateTime`.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class JobState(enum.StrEnum):
    """States of a job (one analysis of one pullback or one single-frame series)."""

    RECEIVED = "received"
    """Recorded; not yet handed to the broker (or waiting for a series' quiet period)."""
    QUEUED = "queued"
    """An analyze task was sent to the broker."""
    RUNNING = "running"
    """A worker claimed the job (``owner``) and refreshes ``heartbeat_at``."""
    REPORTED = "reported"
    """SR and PDF written to ``data_dir/outputs/<job>``; deliveries pending."""
    DELIVERED = "delivered"
    """Every delivery succeeded."""
    FAILED = "failed"
    """Permanent failure for this input; ``reason`` says why (retry with ``srservice retry``)."""
    DEAD = "dead"
    """Gave up: too many lost attempts, or a delivery passed its deadline."""


#: States after which the analysis never runs again (unless an operator retries).
FINISHED_ANALYSIS = frozenset({JobState.REPORTED, JobState.DELIVERED, JobState.FAILED,
                               JobState.DEAD})
#: States a job ends in: nothing more happens to it unless an operator retries it.
TERMINAL_JOB_STATES = frozenset({JobState.DELIVERED, JobState.FAILED, JobState.DEAD})


class JobKind(enum.StrEnum):
    """What a job analyses."""

    PULLBACK = "pullback"
    """One instance holding the whole pullback (multi-frame, or one frame)."""
    SERIES = "series"
    """A series of single-frame instances, assembled by Instance Number."""


class Trigger(enum.StrEnum):
    """What a stored instance starts (decided by :func:`srservice.jobs.intake.trigger_for`)."""

    JOB = "job"
    """A pullback job for this instance, now."""
    SERIES = "series"
    """The series job of its Series Instance UID, after a quiet period."""
    NONE = "none"
    """Nothing: the instance is recorded, not analysed."""


class DeliveryState(enum.StrEnum):
    """States of one delivery (one job's outputs to one destination)."""

    PENDING = "pending"
    """To be sent at or after ``next_attempt_at``."""
    DELIVERED = "delivered"
    FAILED = "failed"
    """Permanent failure (the outputs cannot be read)."""
    DEAD = "dead"
    """Still failing at ``deadline``."""


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and returned as an aware UTC datetime."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert an aware datetime to naive UTC."""
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None,
                             dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """Return the current time (aware, UTC)."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of the job store."""


class Instance(Base):
    """One received instance version (same SOP Instance UID + different bytes = a new row)."""

    __tablename__ = "instances"
    __table_args__ = (UniqueConstraint("sop_instance_uid", "sha256", name="uq_instance_content"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    study_instance_uid: Mapped[str] = mapped_column(String(64))
    series_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    modality: Mapped[str] = mapped_column(String(16))
    number_of_frames: Mapped[int] = mapped_column(Integer)
    transfer_syntax_uid: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    path: Mapped[str] = mapped_column(Text)
    calling_ae: Mapped[str] = mapped_column(String(16))
    peer_host: Mapped[str] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    superseded: Mapped[bool] = mapped_column(Boolean, default=False)


class Job(Base):
    """One analysis: of one instance (:attr:`JobKind.PULLBACK`) or of a series (``SERIES``)."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default=JobKind.PULLBACK)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("instances.id"), index=True)
    source_sop_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    series_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), index=True, default=JobState.RECEIVED)
    reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    algorithm_version: Mapped[str] = mapped_column(String(32))
    revision: Mapped[str | None] = mapped_column(String(32))
    supersedes_job_id: Mapped[int | None] = mapped_column(Integer)
    superseded_by_job_id: Mapped[int | None] = mapped_column(Integer)
    owner: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime())
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    output_dir: Mapped[str | None] = mapped_column(Text)
    sr_path: Mapped[str | None] = mapped_column(Text)
    pdf_path: Mapped[str | None] = mapped_column(Text)
    sr_sop_instance_uid: Mapped[str | None] = mapped_column(String(64))
    pdf_sop_instance_uid: Mapped[str | None] = mapped_column(String(64))
    score_total: Mapped[int | None] = mapped_column(Integer)
    summary_json: Mapped[str | None] = mapped_column(Text)


class Delivery(Base):
    """The delivery of one job's SR and PDF to one destination (or to the outbox)."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("job_id", "destination", name="uq_delivery_dest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    destination: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), index=True, default=DeliveryState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deadline: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class BackfillState(enum.StrEnum):
    """States of one study of a backfill run (``srservice backfill``)."""

    FOUND = "found"
    """Found by the PACS query; its series and instances not examined yet."""
    TO_RETRIEVE = "to-retrieve"
    """Has IVUS pullbacks not scored with the current algorithm version; waits for a slot."""
    RETRIEVING = "retrieving"
    """A C-MOVE or C-GET of its IVUS series is under way."""
    SCORING = "scoring"
    """Retrieved (or already in the pipeline); waiting for its jobs to be reported."""
    SCORED = "scored"
    """Every pullback of the study was reported by this run."""
    ALREADY_SCORED = "already-scored"
    """The job store holds a report of every pullback with the current algorithm version."""
    SR_IN_PACS = "sr-in-pacs"
    """The PACS already holds our SR for every pullback (Series Instance UID derived from
    the source instance and the algorithm version)."""
    NOTHING_TO_SCORE = "nothing-to-score"
    """No instance the service analyses (e.g. IVOCT only); ``reason`` says what was found."""
    FAILED = "failed"
    """Retrieve refused or timed out, a job failed, or not scored in time; ``reason``."""


#: Backfill study states that are settled.
BACKFILL_DONE = frozenset({BackfillState.SCORED, BackfillState.ALREADY_SCORED,
                           BackfillState.SR_IN_PACS, BackfillState.NOTHING_TO_SCORE,
                           BackfillState.FAILED})
#: Backfill study states that count against the in-flight limit.
BACKFILL_IN_FLIGHT = frozenset({BackfillState.RETRIEVING, BackfillState.SCORING})


class BackfillRun(Base):
    """One run of ``srservice backfill`` against one source PACS (resumable)."""

    __tablename__ = "backfill_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(255), index=True)
    since: Mapped[str | None] = mapped_column(String(8))
    until: Mapped[str | None] = mapped_column(String(8))
    max_studies: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), index=True)
    """``running`` (or interrupted: its owner is gone) or ``finished``."""
    owner: Mapped[str | None] = mapped_column(String(255))
    query_done: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    eta_seconds: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text)


class BackfillStudy(Base):
    """One study found by a backfill run, and how far it got."""

    __tablename__ = "backfill_studies"
    __table_args__ = (UniqueConstraint("run_id", "study_instance_uid", name="uq_backfill_study"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("backfill_runs.id"), index=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64))
    study_date: Mapped[str | None] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16), index=True, default=BackfillState.FOUND)
    reason: Mapped[str | None] = mapped_column(Text)
    plan_json: Mapped[str | None] = mapped_column(Text)
    """The pullbacks to score and the series to retrieve (JSON, UIDs only)."""
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    retrieved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
