"""One backfill run: find, examine, retrieve under the limits, wait for the scores, report.

Every step is recorded in the job store before and after it happens
(:mod:`srservice.jobs.backfills`), so a run killed at any point resumes with the same command:
the query is not repeated once its studies are recorded, a retrieve cut short is repeated
(storing the same bytes again adds nothing, :meth:`srservice.jobs.JobStore.add_instance`),
and a study whose jobs already exist is not retrieved again.

A study goes ``found -> to-retrieve -> retrieving -> scoring -> scored`` or stops at
``already-scored`` (the job store holds a report made with the current algorithm version),
``sr-in-pacs`` (the PACS holds our SR), ``nothing-to-score`` or ``failed`` (with the reason:
the PACS refused or timed out, a job failed, or the study was not scored within
``backfill_study_timeout_seconds``).

Limits (settings, overridable per run): at most ``backfill_max_in_flight`` studies retrieving
or scoring at once, retrieves started at most ``backfill_max_studies_per_minute`` a minute,
and only inside ``backfill_window`` (local time). The scoring itself is the service's
(``srservice serve`` must run: its listener receives the C-MOVE, its workers score).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from srservice import ALGORITHM_VERSION
from srservice.backfill.finder import Unit, examine_study, find_studies
from srservice.backfill.progress import eta_seconds
from srservice.backfill.retrieve import Retriever
from srservice.backfill.throttle import RateLimit, TimeWindow
from srservice.config import Settings, Source
from srservice.errors import QueryError, RetrieveError, reason_for
from srservice.jobs.models import BackfillState, JobKind, JobState, utcnow
from srservice.jobs.store import JobStore, owner_alive, worker_identity
from srservice.jobs.views import BackfillRunView, BackfillStudyView, JobView

LOGGER = logging.getLogger(__name__)

S = BackfillState

#: Seconds between two looks at the job store while studies are in flight.
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Limits:
    """The throttle of one run."""

    max_in_flight: int
    per_minute: float
    window: TimeWindow | None
    study_timeout: float

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        """Return the limits the settings give."""
        return cls(settings.backfill_max_in_flight, settings.backfill_max_studies_per_minute,
                   TimeWindow.parse(settings.backfill_window) if settings.backfill_window
                   else None, settings.backfill_study_timeout_seconds)


def _scored(job: JobView) -> bool:
    return bool(job.sr_path) or job.state in (JobState.REPORTED, JobState.DELIVERED)


def _failed(job: JobView) -> bool:
    return not _scored(job) and job.state in (JobState.FAILED, JobState.DEAD)


@dataclass(frozen=True)
class Examined:
    """What a study needs (the result of :meth:`Backfill.examine`)."""

    state: BackfillState
    reason: str | None
    units: tuple[Unit, ...]


class Backfill:
    """One run of the backfill of ``source``.

    Parameters
    ----------
    settings : Settings
        Service settings (our AE title, time-outs, the backfill settings).
    store : JobStore
        The service's job store.
    source : Source
        The PACS.
    limits : Limits
        The throttle.
    stop : threading.Event
        Set to stop starting retrieves and return (the run stays resumable).
    on_progress : callable
        Called with the run view whenever the loop looks at it.
    """

    def __init__(self, settings: Settings, store: JobStore, source: Source, limits: Limits,
                 *, stop: threading.Event | None = None,
                 on_progress: Callable[[BackfillRunView], None] | None = None,
                 retriever: Retriever | None = None) -> None:
        self.settings, self.store, self.source, self.limits = settings, store, source, limits
        self.stop = stop or threading.Event()
        self.on_progress = on_progress or (lambda _run: None)
        self.retriever = retriever or Retriever(settings, source, store)
        self.owner = worker_identity()

    # ------------------------------------------------------------------ examining
    def examine(self, study_uid: str) -> Examined:
        """Query the study's series and instances and decide what it needs (no writes)."""
        contents = examine_study(self.source, self.settings, study_uid)
        if not contents.units:
            return Examined(S.NOTHING_TO_SCORE, "no IVUS pullback the service analyses "
                            f"({contents.describe_other()})", ())
        jobs = self._jobs(contents.units)
        todo: list[Unit] = []
        in_store = in_pacs = 0
        failures: list[str] = []
        for unit in contents.units:
            job = jobs.get(unit.uid)
            if job is not None and job.algorithm_version == ALGORITHM_VERSION:
                if _scored(job):
                    in_store += 1
                elif _failed(job):
                    failures.append(f"job {job.id} {job.state}: {job.reason}")
                else:
                    todo.append(unit)  # in the pipeline now: waited for, not retrieved
                continue
            if unit.sr_series_uids() & contents.sr_series:
                in_pacs += 1
                continue
            if job is not None and unit.kind == JobKind.PULLBACK:
                todo.append(dataclasses.replace(unit, rescore=True))  # from the spool
                continue
            if job is not None:
                failures.append(f"series analysed by algorithm version {job.algorithm_version}"
                                f" (job {job.id}); single-frame series are not re-scored")
                continue
            todo.append(unit)
        if todo:
            return Examined(S.TO_RETRIEVE, None, tuple(todo))
        if failures:
            return Examined(S.FAILED, "; ".join(failures)[:2000], ())
        if in_store:
            return Examined(S.ALREADY_SCORED, f"{in_store} in the job store, {in_pacs} SR in "
                            "the PACS", ())
        return Examined(S.SR_IN_PACS, f"{in_pacs} SR in the PACS", ())

    def _jobs(self, units: tuple[Unit, ...] | list[Unit]) -> dict[str, JobView]:
        jobs: dict[str, JobView] = {}
        for kind in (JobKind.PULLBACK, JobKind.SERIES):
            jobs.update(self.store.latest_jobs(kind, [u.uid for u in units if u.kind == kind]))
        return jobs

    # ------------------------------------------------------------------ the run
    def run(self, *, since: str | None = None, until: str | None = None,
            max_studies: int | None = None) -> BackfillRunView:
        """Run (or resume) the backfill until every study is settled or :attr:`stop` is set.

        Raises
        ------
        QueryError
            The PACS cannot be queried for its studies (the run stays resumable).
        BackfillBusyError
            Another live process runs a backfill of this source.
        """
        run, resumed = self.store.open_backfill(str(self.source), since=since, until=until,
                                                max_studies=max_studies, owner=self.owner,
                                                alive=owner_alive)
        if resumed:
            LOGGER.info("resuming backfill run %s of %s", run.id, self.source)
        if not run.query_done:
            self._note(run.id, "querying the PACS")
            found = find_studies(self.source, self.settings, since=run.since, until=run.until)
            self.store.add_backfill_studies(run.id, found)
        for study in self.store.backfill_studies(run.id, [S.FOUND]):
            if self.stop.is_set():
                break
            self._examine_one(study)
            self._show(run.id)
        last = self.store.last_retrieve_start(run.id)
        rate = RateLimit(self.limits.per_minute, last.timestamp() if last else None)
        while not self.stop.is_set():
            self._check_scoring(run.id)
            view = self._loop_once(run.id, rate, max_studies=run.max_studies)
            if view is None:
                break
        done = not self.stop.is_set()
        final = self.store.backfill_progress(run.id, eta_seconds=0 if done else None,
                                             note=None if done else "interrupted",
                                             finish=done, owner=self.owner)
        assert final is not None
        self.on_progress(final)
        return final

    def _examine_one(self, study: BackfillStudyView) -> None:
        try:
            ex = self.examine(study.study_instance_uid)
        except QueryError as exc:
            self.store.move_backfill_study(study.id, S.FOUND, S.FAILED,
                                           reason=f"query failed: {reason_for(exc)}")
            return
        plan = {"units": [u.as_dict() for u in ex.units],
                "series": sorted({u.series for u in ex.units})}
        self.store.move_backfill_study(study.id, S.FOUND, ex.state, reason=ex.reason,
                                       plan=plan)

    def _loop_once(self, run_id: int, rate: RateLimit,
                   max_studies: int | None) -> BackfillRunView | None:
        """Start one retrieve when the limits allow; return None when the run is over."""
        studies = self.store.backfill_studies(run_id)
        pending = [s for s in studies if s.state == S.TO_RETRIEVE]
        in_flight = sum(1 for s in studies if s.state in (S.RETRIEVING, S.SCORING))
        started = sum(1 for s in studies if s.started_at is not None)
        allowed = pending and (max_studies is None or started < max_studies)
        if not allowed and in_flight == 0:
            return None
        note: str | None = None
        if allowed:
            now = datetime.now().astimezone()
            if in_flight >= self.limits.max_in_flight:
                note = f"{in_flight} in flight (limit {self.limits.max_in_flight})"
            elif self.limits.window is not None and not self.limits.window.is_open(now):
                opens = self.limits.window.next_open(now)
                note = f"outside the window {self.limits.window}; opens {opens:%Y-%m-%d %H:%M}"
            elif (wait := rate.wait_seconds()) > 0:
                note = f"rate limit: next retrieve in {wait:.0f} s"
            else:
                rate.started()
                self._retrieve(pending[0])
                return self._show(run_id)
        view = self._show(run_id, note)
        self.stop.wait(POLL_SECONDS)
        return view

    def _retrieve(self, study: BackfillStudyView) -> None:
        if not self.store.move_backfill_study(study.id, S.TO_RETRIEVE, S.RETRIEVING,
                                              plan=study.plan, started=True):
            return
        self._show(study.run_id)
        plan = study.plan or {}
        units = [Unit.from_dict(u) for u in plan.get("units", [])]
        rescored = [i for u in units if u.rescore
                    if (i := self.store.add_rescore_job(u.uid)) is not None]
        if rescored:
            from srservice.jobs.dispatch import Dispatcher, enqueue_jobs

            enqueue_jobs(self.store, Dispatcher(self.settings), rescored)
        jobs = self._jobs(units)
        missing = [u for u in units if u.uid not in jobs
                   or jobs[u.uid].algorithm_version != ALGORITHM_VERSION]
        if not missing:
            self.store.move_backfill_study(
                study.id, S.RETRIEVING, S.SCORING, retrieved=True,
                reason="re-scored from the spool" if rescored else "already in the pipeline")
            return
        series = sorted({u.series for u in missing})
        for index, series_uid in enumerate(series, 1):
            try:
                result = self.retriever.retrieve(study.study_instance_uid, series_uid)
            except RetrieveError as exc:
                what = "C-GET" if self.source.use_get else "C-MOVE"
                self.store.move_backfill_study(
                    study.id, S.RETRIEVING, S.FAILED,
                    reason=f"{what} of series {index}/{len(series)}: {reason_for(exc)}")
                return
            LOGGER.info("retrieved series %s of study %s: %s completed, %s failed",
                        index, study.study_instance_uid, result.completed, result.failed)
        self.store.move_backfill_study(study.id, S.RETRIEVING, S.SCORING, retrieved=True)

    def _check_scoring(self, run_id: int) -> None:
        now = utcnow()
        for study in self.store.backfill_studies(run_id, [S.SCORING]):
            units = [Unit.from_dict(u) for u in (study.plan or {}).get("units", [])]
            jobs = self._jobs(units)
            current = {uid: j for uid, j in jobs.items()
                       if j.algorithm_version == ALGORITHM_VERSION}
            missing = [u for u in units if u.uid not in current]
            busy = [j for j in current.values() if not _scored(j) and not _failed(j)]
            if not missing and not busy:
                failed = [j for j in current.values() if _failed(j)]
                if failed:
                    reason = "; ".join(f"job {j.id} {j.state}: {j.reason}" for j in failed)
                    self.store.move_backfill_study(study.id, S.SCORING, S.FAILED,
                                                   reason=reason[:2000])
                else:
                    self.store.move_backfill_study(study.id, S.SCORING, S.SCORED)
                continue
            since = study.retrieved_at or study.started_at or now
            if now - since > timedelta(seconds=self.limits.study_timeout):
                parts = [f"{len(missing)} of {len(units)} pullbacks never reached the job "
                         "store"] if missing else []
                parts += [f"job {j.id} still {j.state}" for j in busy]
                reason = (f"not scored within {self.limits.study_timeout:g} s of the retrieve: "
                          + "; ".join(parts))
                self.store.move_backfill_study(study.id, S.SCORING, S.FAILED, reason=reason)

    # ------------------------------------------------------------------ progress
    def _note(self, run_id: int, note: str | None) -> None:
        view = self.store.backfill_progress(run_id, note=note, owner=self.owner)
        if view is not None:
            self.on_progress(view)

    def _show(self, run_id: int, note: str | None = None) -> BackfillRunView:
        view = self.store.get_backfill(run_id)
        assert view is not None
        eta = eta_seconds(view, self.store.backfill_studies(run_id),
                          max_in_flight=self.limits.max_in_flight,
                          per_minute=self.limits.per_minute)
        updated = self.store.backfill_progress(run_id, eta_seconds=eta, note=note,
                                               owner=self.owner)
        assert updated is not None
        self.on_progress(updated)
        return updated


def dry_run(settings: Settings, store: JobStore, source: Source, *, since: str | None,
            until: str | None,
            emit: Callable[[str], None]) -> dict[str, int]:
    """Query and examine without recording or retrieving anything; emit one line a study.

    Returns the number of studies in each state.
    """
    engine = Backfill(settings, store, source, Limits.of(settings))
    counts: dict[str, int] = {}
    for uid, date in find_studies(source, settings, since=since, until=until):
        try:
            ex = engine.examine(uid)
            n = len(ex.units)
            state = str(ex.state)
            reason = ex.reason or (f"{n} pullback{'s' if n != 1 else ''} to score" if n else "")
        except QueryError as exc:
            state, reason = str(S.FAILED), f"query failed: {reason_for(exc)}"
        counts[state] = counts.get(state, 0) + 1
        emit(f"{uid} {date or '-'} {state} {reason}".rstrip())
    return counts
