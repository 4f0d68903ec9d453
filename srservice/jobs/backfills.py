"""Backfill progress in the job store: runs, their studies, and the latest job of a pullback.

A backfill run (``srservice backfill``, :mod:`srservice.backfill`) records every study it
found and how far it got (:class:`srservice.jobs.models.BackfillState`), so an interrupted run
(the process killed, the host restarted) resumes where it stopped, and ``srservice jobs``
shows the same progress. A run belongs to one process (``owner``, ``host:pid``); a run whose
owner is gone is resumed by the next ``srservice backfill`` of the same source. Study
transitions are compare-and-set on the state, like every job transition.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from srservice import ALGORITHM_VERSION
from srservice.jobs.db import transaction
from srservice.jobs.models import (
    BACKFILL_DONE,
    BACKFILL_IN_FLIGHT,
    BackfillRun,
    BackfillState,
    BackfillStudy,
    Delivery,
    Instance,
    Job,
    JobKind,
    JobState,
    utcnow,
)
from srservice.jobs.views import BackfillRunView, BackfillStudyView, DeliveryView, JobView

RUNNING = "running"
FINISHED = "finished"


class BackfillBusyError(RuntimeError):
    """Another live process runs a backfill of this source."""


class BackfillMixin:
    """Backfill transitions of :class:`srservice.jobs.JobStore`."""

    engine: Engine

    def open_backfill(self, source: str, *, since: str | None, until: str | None,
                      max_studies: int | None, owner: str,
                      alive: Callable[[str | None], bool]) -> tuple[BackfillRunView, bool]:
        """Resume the interrupted run of ``source`` or start a new one.

        Returns
        -------
        (BackfillRunView, bool)
            The run, and True when it was resumed (its own since/until/limit apply).

        Raises
        ------
        BackfillBusyError
            A run of ``source`` is owned by a live process.
        """
        now = utcnow()
        with transaction(self.engine) as s:
            row = s.scalar(select(BackfillRun).where(BackfillRun.source == source,
                                                     BackfillRun.state == RUNNING)
                           .order_by(BackfillRun.id.desc()).limit(1))
            if row is not None:
                if row.owner != owner and alive(row.owner):
                    raise BackfillBusyError(f"backfill run {row.id} of {source} is running "
                                            f"(process {row.owner})")
                result = s.execute(update(BackfillRun).where(
                    BackfillRun.id == row.id, BackfillRun.owner == row.owner,
                    BackfillRun.state == RUNNING).values(owner=owner, updated_at=now))
                if int(getattr(result, "rowcount", 0)) != 1:
                    raise BackfillBusyError(f"backfill run {row.id} of {source} was just taken "
                                            "by another process")
                # A retrieve cut short is done again (storing the same bytes is idempotent).
                s.execute(update(BackfillStudy).where(
                    BackfillStudy.run_id == row.id,
                    BackfillStudy.state == BackfillState.RETRIEVING).values(
                    state=BackfillState.TO_RETRIEVE, updated_at=now))
                s.flush()
                return _run_view(s, row), True
            row = BackfillRun(source=source, since=since, until=until, max_studies=max_studies,
                              state=RUNNING, owner=owner, query_done=False, started_at=now,
                              updated_at=now)
            s.add(row)
            s.flush()
            return _run_view(s, row), False

    def add_backfill_studies(self, run_id: int, studies: Iterable[tuple[str, str | None]],
                             ) -> int:
        """Record found studies (``(Study Instance UID, Study Date)``); return how many were new.

        Also marks the run's query as done, in the same transaction.
        """
        now = utcnow()
        with transaction(self.engine) as s:
            known = set(s.scalars(select(BackfillStudy.study_instance_uid)
                                  .where(BackfillStudy.run_id == run_id)))
            new = [BackfillStudy(run_id=run_id, study_instance_uid=uid, study_date=date,
                                 state=BackfillState.FOUND, updated_at=now)
                   for uid, date in studies if uid not in known]
            s.add_all(new)
            s.execute(update(BackfillRun).where(BackfillRun.id == run_id)
                      .values(query_done=True, updated_at=now))
            return len(new)

    def backfill_studies(self, run_id: int,
                         states: Sequence[BackfillState] | None = None) -> list[BackfillStudyView]:
        """Studies of a run (oldest study date first, then as found), optionally by state."""
        query = select(BackfillStudy).where(BackfillStudy.run_id == run_id).order_by(
            BackfillStudy.study_date, BackfillStudy.id)
        if states is not None:
            query = query.where(BackfillStudy.state.in_([str(x) for x in states]))
        with transaction(self.engine) as s:
            return [BackfillStudyView.of(r) for r in s.scalars(query)]

    def move_backfill_study(self, study_id: int, expect: BackfillState, state: BackfillState,
                            *, reason: str | None = None, plan: dict[str, Any] | None = None,
                            started: bool = False, retrieved: bool = False) -> bool:
        """Move a study from ``expect`` to ``state`` (compare-and-set); False if it moved on.

        ``started`` / ``retrieved`` stamp the retrieve's start / end; a settled state stamps
        ``finished_at``.
        """
        now = utcnow()
        values: dict[str, Any] = {"state": state, "reason": reason, "updated_at": now}
        if plan is not None:
            values["plan_json"] = json.dumps(plan, sort_keys=True)
        if started:
            values["started_at"] = now
        if retrieved:
            values["retrieved_at"] = now
        if state in BACKFILL_DONE:
            values["finished_at"] = now
        with transaction(self.engine) as s:
            result = s.execute(update(BackfillStudy).where(
                BackfillStudy.id == study_id, BackfillStudy.state == expect).values(**values))
            return int(getattr(result, "rowcount", 0)) == 1

    def backfill_progress(self, run_id: int, *, eta_seconds: int | None = None,
                          note: str | None = None, finish: bool = False,
                          owner: str | None = None) -> BackfillRunView | None:
        """Record the run's ETA and note (``finish``: the run is over); return the run.

        With ``owner`` the update is made only while that process owns the run.
        """
        now = utcnow()
        with transaction(self.engine) as s:
            row = s.get(BackfillRun, run_id)
            if row is None:
                return None
            if owner is not None and row.owner != owner:
                return _run_view(s, row)
            row.eta_seconds, row.note, row.updated_at = eta_seconds, note, now
            if finish:
                row.state, row.finished_at = FINISHED, now
            s.flush()
            return _run_view(s, row)

    def get_backfill(self, run_id: int) -> BackfillRunView | None:
        """Return a run with its study counts."""
        with transaction(self.engine) as s:
            row = s.get(BackfillRun, run_id)
            return _run_view(s, row) if row else None

    def list_backfills(self, limit: int = 5) -> list[BackfillRunView]:
        """Return the newest runs (running and interrupted ones first)."""
        with transaction(self.engine) as s:
            rows = s.scalars(select(BackfillRun).order_by(
                (BackfillRun.state == RUNNING).desc(), BackfillRun.id.desc()).limit(limit))
            return [_run_view(s, r) for r in rows]

    def backfill_in_flight(self, run_id: int) -> int:
        """Studies of the run retrieving or waiting to be scored."""
        with transaction(self.engine) as s:
            return int(s.scalar(select(func.count()).select_from(BackfillStudy).where(
                BackfillStudy.run_id == run_id,
                BackfillStudy.state.in_([str(x) for x in BACKFILL_IN_FLIGHT]))) or 0)

    def last_retrieve_start(self, run_id: int) -> datetime | None:
        """When the run last started a retrieve (the rate limit survives a restart)."""
        with transaction(self.engine) as s:
            value: datetime | None = s.scalar(select(func.max(BackfillStudy.started_at))
                                              .where(BackfillStudy.run_id == run_id))
            return value

    def add_rescore_job(self, source_sop_instance_uid: str) -> int | None:
        """Create a pullback job with the current algorithm version for a recorded instance.

        For the backfill: an instance whose newest job was made by another algorithm version
        is analysed again from the spool (sending the same bytes again would start nothing,
        :meth:`srservice.jobs.JobStore.add_instance`). The new job keeps the old one's
        revision, so its report UIDs derive from the same content.

        Returns
        -------
        int or None
            The new job's id; None when the newest job already has the current version (so a
            repeated call adds nothing) or the instance is not recorded.
        """
        now = utcnow()
        with transaction(self.engine) as s:
            job = s.scalar(select(Job).where(
                Job.source_sop_instance_uid == source_sop_instance_uid,
                Job.kind == JobKind.PULLBACK).order_by(Job.id.desc()).limit(1))
            if job is None or job.algorithm_version == ALGORITHM_VERSION:
                return None
            inst = s.scalar(select(Instance).where(
                Instance.sop_instance_uid == source_sop_instance_uid,
                Instance.superseded.is_(False)).order_by(Instance.id.desc()).limit(1))
            if inst is None:
                return None
            new = Job(kind=JobKind.PULLBACK, instance_id=inst.id,
                      source_sop_instance_uid=inst.sop_instance_uid,
                      series_instance_uid=inst.series_instance_uid,
                      study_instance_uid=inst.study_instance_uid, state=JobState.RECEIVED,
                      attempts=0, algorithm_version=ALGORITHM_VERSION, revision=job.revision,
                      created_at=now, updated_at=now)
            s.add(new)
            s.flush()
            return new.id

    def latest_jobs(self, kind: JobKind, uids: Sequence[str]) -> dict[str, JobView]:
        """Return the newest job of each source instance (``PULLBACK``) or series (``SERIES``)."""
        out: dict[str, JobView] = {}
        if not uids:
            return out
        column = Job.source_sop_instance_uid if kind == JobKind.PULLBACK else \
            Job.series_instance_uid
        with transaction(self.engine) as s:
            rows = s.scalars(select(Job).where(column.in_(list(uids)), Job.kind == kind)
                             .order_by(Job.id))
            for job in rows:  # ascending: the newest wins
                key = job.source_sop_instance_uid if kind == JobKind.PULLBACK else \
                    job.series_instance_uid
                out[key] = _job_view(s, job)
        return out


def _job_view(s: Session, job: Job) -> JobView:
    rows = s.scalars(select(Delivery).where(Delivery.job_id == job.id).order_by(Delivery.id))
    return JobView.of(job, tuple(DeliveryView.of(d) for d in rows))


def _run_view(s: Session, row: BackfillRun) -> BackfillRunView:
    counts = Counter({str(state): int(n) for state, n in s.execute(
        select(BackfillStudy.state, func.count()).where(BackfillStudy.run_id == row.id)
        .group_by(BackfillStudy.state))})
    return BackfillRunView.of(row, dict(counts))
