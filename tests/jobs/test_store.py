"""Job store: intake, guarded transitions, sweeper queries, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.uid import UltrasoundImageStorage as US_IMAGE

from srservice.errors import TransientError
from srservice.jobs import (
    MAX_ANALYSIS_ATTEMPTS,
    Claim,
    JobState,
    JobStore,
    backoff_seconds,
)
from srservice.jobs.intake import make_on_stored, trigger_for
from tests.support.jobs import SentRecorder, pg_schema_url, record, stored


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    if request.param == "sqlite":
        s = JobStore(f"sqlite:///{tmp_path / 'jobs.sqlite3'}")
        yield s
        s.dispose()
        return
    gen = pg_schema_url()
    url = next(gen)
    s = JobStore(url)
    try:
        yield s
    finally:
        s.dispose()
        next(gen, None)


def test_trigger_rules() -> None:
    assert trigger_for(stored()) == "job"
    assert trigger_for(stored(cls=US_IMAGE, frames=1)) == "series"
    assert trigger_for(stored(cls=US_IMAGE, frames=30)) == "job"
    assert trigger_for(stored(modality="US")) == "none"
    assert trigger_for(stored(cls="1.2.840.10008.5.1.4.1.1.14.1")) == "none"


def test_intake_idempotent_and_supersede(store: JobStore) -> None:
    first = store.add_instance(stored(), trigger="job")
    assert first.job_id is not None and not first.duplicate and first.enqueue_now
    again = store.add_instance(stored(), trigger="job")
    assert again.duplicate and again.job_id == first.job_id
    assert len(store.list_jobs()) == 1
    newer = store.add_instance(stored(sha="b" * 64), trigger="job")
    assert newer.job_id not in (None, first.job_id) and not newer.duplicate
    new_job = store.get_job(newer.job_id or 0)
    old_job = store.get_job(first.job_id)
    assert new_job is not None and old_job is not None
    assert new_job.revision == "b" * 16 and new_job.supersedes_job_id == first.job_id
    assert old_job.superseded_by_job_id == newer.job_id
    # the superseded job is not analysed any more
    claim, _ = store.claim_job(first.job_id, "h:1", stale_after_seconds=60)
    assert claim is Claim.DONE
    old_job = store.get_job(first.job_id)
    assert old_job is not None and old_job.state == JobState.FAILED
    assert old_job.reason and "superseded" in old_job.reason
    assert [i.sha256 for i in store.job_inputs(newer.job_id or 0)] == ["b" * 64]


def test_claim_is_exclusive_and_report_creates_deliveries(store: JobStore) -> None:
    job_id = store.add_instance(stored(), trigger="job").job_id
    assert job_id is not None
    store.mark_queued([job_id])
    results: list[Claim] = []
    barrier = threading.Barrier(4)

    def claim(owner: str) -> None:
        barrier.wait()
        results.append(store.claim_job(job_id, owner, stale_after_seconds=600,
                                       alive=lambda _o: True)[0])

    threads = [threading.Thread(target=claim, args=(f"host:{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(Claim.RUN) == 1, results
    job = store.get_job(job_id)
    assert job is not None and job.state == JobState.RUNNING and job.attempts == 1
    owner = job.owner or ""
    assert store.finish_report(job_id, "someone-else:1", record(job_id), ["A@h:1"], 60) is None
    ids = store.finish_report(job_id, owner, record(job_id), ["A@h:1", "B@h:2"], 60)
    assert ids is not None and len(ids) == 2
    # a redelivered task for a reported job does nothing
    assert store.claim_job(job_id, "host:9", stale_after_seconds=600)[0] is Claim.DONE
    job = store.get_job(job_id)
    assert job is not None and job.state == JobState.REPORTED and job.score_total == 3


def test_takeover_of_dead_owner_and_poison_limit(store: JobStore) -> None:
    job_id = store.add_instance(stored(), trigger="job").job_id
    assert job_id is not None
    for attempt in range(1, MAX_ANALYSIS_ATTEMPTS + 1):
        claim, view = store.claim_job(job_id, f"host:{attempt}", stale_after_seconds=600,
                                      alive=lambda _o: False)
        assert claim is Claim.RUN and view is not None and view.attempts == attempt
    # a live owner is not taken over
    assert store.claim_job(job_id, "host:x", stale_after_seconds=600,
                           alive=lambda _o: True)[0] is Claim.BUSY
    claim, _ = store.claim_job(job_id, "host:y", stale_after_seconds=600,
                               alive=lambda _o: False)
    assert claim is Claim.DONE
    job = store.get_job(job_id)
    assert job is not None and job.state == JobState.DEAD and "attempts" in (job.reason or "")
    assert store.retry_job(job_id, 60) == "analysis"
    job = store.get_job(job_id)
    assert job is not None and job.state == JobState.RECEIVED and job.attempts == 0


def test_delivery_backoff_deadline_and_settle(store: JobStore) -> None:
    job_id = store.add_instance(stored(), trigger="job").job_id
    assert job_id is not None
    store.claim_job(job_id, "h:1", stale_after_seconds=600)
    ids = store.finish_report(job_id, "h:1", record(job_id), ["A@h:1", "B@h:2"], 100)
    assert ids is not None
    a, b = ids
    assert store.claim_delivery(a, 60) is not None
    assert store.claim_delivery(a, 60) is None  # leased: a duplicate message does nothing
    view = store.delivery_failed(a, "down", permanent=False, backoff_first=30, backoff_cap=600)
    assert view is not None and view.state == "pending" and view.attempts == 1
    assert store.claim_delivery(a, 60) is None  # not due yet
    assert store.claim_delivery(b, 60) is not None  # the other destination is independent
    store.delivery_succeeded(b)
    assert store.claim_delivery(b, 60) is None
    job = store.get_job(job_id)
    assert job is not None and job.state == JobState.REPORTED
    # a's next backoff (60 s after 2 attempts) passes the 100 s deadline after the next failure
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE deliveries SET next_attempt_at = created_at WHERE id = "
                             f"{a}")
    assert store.claim_delivery(a, 60) is not None
    store.delivery_failed(a, "down", permanent=False, backoff_first=30, backoff_cap=600)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE deliveries SET next_attempt_at = created_at WHERE id = "
                             f"{a}")
    assert store.claim_delivery(a, 60) is not None
    view = store.delivery_failed(a, "down", permanent=False, backoff_first=30, backoff_cap=600)
    assert view is not None and view.state == "dead"
    job = store.get_job(job_id)
    assert job is not None and job.state == JobState.DEAD and "A@h:1" in (job.reason or "")
    assert store.retry_job(job_id, 100) == "deliveries"
    job = store.get_job(job_id)
    assert job is not None and job.state == JobState.REPORTED
    states = {d.destination: d.state for d in job.deliveries}
    assert states == {"A@h:1": "pending", "B@h:2": "delivered"}


def test_backoff_doubles_and_caps() -> None:
    assert [backoff_seconds(n, 10, 50) for n in (1, 2, 3, 4)] == [10, 20, 40, 50]


def test_sweep_finds_unsent_lost_and_due(store: JobStore) -> None:
    job_id = store.add_instance(stored(), trigger="job").job_id
    assert job_id is not None
    found = store.sweep(stuck_seconds=60, grace_seconds=0, alive=lambda _o: True)
    assert job_id in found.jobs  # never sent (publish failed at intake)
    store.mark_queued([job_id])
    assert job_id not in store.sweep(stuck_seconds=60, grace_seconds=0,
                                     alive=lambda _o: True).jobs
    assert job_id in store.sweep(stuck_seconds=0, grace_seconds=0, alive=lambda _o: True).jobs
    store.claim_job(job_id, "h:1", stale_after_seconds=600)
    assert job_id not in store.sweep(stuck_seconds=60, grace_seconds=0,
                                     alive=lambda _o: True).jobs
    found = store.sweep(stuck_seconds=60, grace_seconds=0, alive=lambda _o: False)
    assert job_id in found.jobs  # owner died: back to queued
    job = store.get_job(job_id)
    assert job is not None and job.state == JobState.QUEUED


def test_series_job_waits_for_quiet(store: JobStore) -> None:
    ids = {store.add_instance(stored(f"1.2.3.{i}", cls=US_IMAGE, frames=1), trigger="series",
                              quiet_seconds=3600).job_id for i in range(5)}
    assert len(ids) == 1
    job_id = ids.pop()
    assert job_id is not None
    assert job_id not in store.sweep(stuck_seconds=60, grace_seconds=0,
                                     alive=lambda _o: True).jobs
    assert len(store.job_inputs(job_id)) == 5
    job = store.get_job(job_id)
    assert job is not None and job.kind == "series" and job.state == JobState.RECEIVED


def test_on_stored_enqueues_and_survives_broker_down(store: JobStore, tmp_path: Path) -> None:
    from srservice.config import load_settings

    settings = load_settings(data_dir=tmp_path)
    rec = SentRecorder()
    on_stored = make_on_stored(settings, store, rec)
    on_stored(stored())
    on_stored(stored())  # resend: idempotent
    assert len(rec.jobs) == 1
    job = store.get_job(rec.jobs[0])
    assert job is not None and job.state == JobState.QUEUED
    down = SentRecorder(ok=False)
    make_on_stored(settings, store, down)(stored("1.2.3.5"))
    job = store.get_job(down.jobs[0])
    assert job is not None and job.state == JobState.RECEIVED  # the sweeper will send it


def test_db_unavailable_is_transient(tmp_path: Path) -> None:
    from srservice.config import load_settings

    bad = JobStore.__new__(JobStore)
    import sqlalchemy as sa

    bad.url = "postgresql+psycopg://postgres@127.0.0.1:1/none"
    bad.engine = sa.create_engine(bad.url, connect_args={"connect_timeout": 2})
    on_stored = make_on_stored(load_settings(data_dir=tmp_path), bad, SentRecorder())
    with pytest.raises(TransientError):
        on_stored(stored())
