"""Immutable snapshots of job-store rows, safe to pass across threads and sessions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from srservice.jobs.models import (
    BackfillRun,
    BackfillState,
    BackfillStudy,
    Delivery,
    DeliveryState,
    Instance,
    Job,
    JobKind,
    JobState,
)


@dataclass(frozen=True)
class InstanceView:
    """A stored instance version."""

    id: int
    sop_instance_uid: str
    sop_class_uid: str
    series_instance_uid: str
    modality: str
    number_of_frames: int
    sha256: str
    path: str
    calling_ae: str
    received_at: datetime
    superseded: bool

    @classmethod
    def of(cls, row: Instance) -> InstanceView:
        """Snapshot an ORM row."""
        return cls(row.id, row.sop_instance_uid, row.sop_class_uid, row.series_instance_uid,
                   row.modality, row.number_of_frames, row.sha256, row.path, row.calling_ae,
                   row.received_at, row.superseded)


@dataclass(frozen=True)
class DeliveryView:
    """One delivery of a job's outputs."""

    id: int
    job_id: int
    destination: str
    state: DeliveryState
    attempts: int
    last_error: str | None
    next_attempt_at: datetime
    deadline: datetime
    delivered_at: datetime | None

    @classmethod
    def of(cls, row: Delivery) -> DeliveryView:
        """Snapshot an ORM row."""
        return cls(row.id, row.job_id, row.destination, DeliveryState(row.state), row.attempts,
                   row.last_error, row.next_attempt_at, row.deadline, row.delivered_at)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {"id": self.id, "destination": self.destination, "state": self.state,
                "attempts": self.attempts, "last_error": self.last_error,
                "next_attempt_at": self.next_attempt_at.isoformat(),
                "deadline": self.deadline.isoformat(),
                "delivered_at": self.delivered_at.isoformat() if self.delivered_at else None}


@dataclass(frozen=True)
class JobView:
    """A job with its deliveries."""

    id: int
    kind: JobKind
    instance_id: int | None
    source_sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    state: JobState
    reason: str | None
    attempts: int
    algorithm_version: str
    revision: str | None
    supersedes_job_id: int | None
    superseded_by_job_id: int | None
    owner: str | None
    created_at: datetime
    updated_at: datetime
    output_dir: str | None
    sr_path: str | None
    pdf_path: str | None
    sr_sop_instance_uid: str | None
    pdf_sop_instance_uid: str | None
    score_total: int | None
    summary: dict[str, Any] | None
    deliveries: tuple[DeliveryView, ...] = ()

    @classmethod
    def of(cls, row: Job, deliveries: tuple[DeliveryView, ...] = ()) -> JobView:
        """Snapshot an ORM row."""
        summary = json.loads(row.summary_json) if row.summary_json else None
        return cls(row.id, JobKind(row.kind), row.instance_id, row.source_sop_instance_uid,
                   row.series_instance_uid, row.study_instance_uid, JobState(row.state),
                   row.reason,
                   row.attempts, row.algorithm_version, row.revision, row.supersedes_job_id,
                   row.superseded_by_job_id, row.owner, row.created_at, row.updated_at,
                   row.output_dir, row.sr_path, row.pdf_path, row.sr_sop_instance_uid,
                   row.pdf_sop_instance_uid, row.score_total, summary, deliveries)

    @property
    def assessable(self) -> bool | None:
        """False when the report says the pullback cannot be scored; None before a report."""
        if self.summary is None:
            return None
        return self.summary.get("assessable") is not False

    @property
    def result(self) -> str | None:
        """The report's answer in a few words; None before a report.

        "score 2"; "not assessable: <reason>" for a pullback that cannot be scored (a valid
        answer: the job is reported and delivered like any other); "score cannot be
        determined" when a segment's unknown components leave the highest score open.
        """
        if self.summary is None:
            return None
        if self.assessable is False:
            return f"not assessable: {self.summary.get('reason') or 'no reason given'}"
        if self.score_total is None:
            return "score cannot be determined"
        return f"score {self.score_total}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (``srservice jobs --json``)."""
        return {"id": self.id, "kind": self.kind, "state": self.state, "reason": self.reason,
                "attempts": self.attempts, "source_sop_instance_uid": self.source_sop_instance_uid,
                "series_instance_uid": self.series_instance_uid,
                "study_instance_uid": self.study_instance_uid,
                "algorithm_version": self.algorithm_version, "revision": self.revision,
                "supersedes_job_id": self.supersedes_job_id,
                "superseded_by_job_id": self.superseded_by_job_id,
                "created_at": self.created_at.isoformat(),
                "updated_at": self.updated_at.isoformat(),
                "output_dir": self.output_dir, "sr_sop_instance_uid": self.sr_sop_instance_uid,
                "pdf_sop_instance_uid": self.pdf_sop_instance_uid,
                "score_total": self.score_total, "assessable": self.assessable,
                "result": self.result,
                "deliveries": [d.as_dict() for d in self.deliveries]}


@dataclass(frozen=True)
class IntakeResult:
    """What recording one stored instance did."""

    instance_id: int
    job_id: int | None
    duplicate: bool
    enqueue_now: bool
    """True when the job should be sent to the broker right away (False: series quiet time)."""


@dataclass(frozen=True)
class SweepResult:
    """Work the sweeper found."""

    jobs: tuple[int, ...]
    deliveries: tuple[int, ...]


@dataclass(frozen=True)
class BackfillStudyView:
    """One study of a backfill run."""

    id: int
    run_id: int
    study_instance_uid: str
    study_date: str | None
    state: BackfillState
    reason: str | None
    plan: dict[str, Any] | None
    started_at: datetime | None
    retrieved_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, row: BackfillStudy) -> BackfillStudyView:
        """Snapshot an ORM row."""
        return cls(row.id, row.run_id, row.study_instance_uid, row.study_date,
                   BackfillState(row.state), row.reason,
                   json.loads(row.plan_json) if row.plan_json else None, row.started_at,
                   row.retrieved_at, row.finished_at)


@dataclass(frozen=True)
class BackfillRunView:
    """One backfill run with the number of its studies in each state."""

    id: int
    source: str
    since: str | None
    until: str | None
    max_studies: int | None
    state: str
    owner: str | None
    query_done: bool
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    eta_seconds: int | None
    note: str | None
    counts: dict[str, int]

    @classmethod
    def of(cls, row: BackfillRun, counts: dict[str, int]) -> BackfillRunView:
        """Snapshot an ORM row with its study counts."""
        return cls(row.id, row.source, row.since, row.until, row.max_studies, row.state,
                   row.owner, row.query_done, row.started_at, row.updated_at, row.finished_at,
                   row.eta_seconds, row.note, dict(counts))

    @property
    def found(self) -> int:
        """Studies found by the query."""
        return sum(self.counts.values())

    def count(self, *states: BackfillState) -> int:
        """Studies in any of ``states``."""
        return sum(self.counts.get(str(s), 0) for s in states)
