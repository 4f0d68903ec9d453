"""Faults with the whole service running (docs/reliability.md), each ending with the books checked:
'lost: 0, duplicated reports: 0' (:func:`tests.support.workload.ledger`).

- worker process group SIGKILLed in the middle of an analysis;
- Redis (a private redis-server, never the machine's) killed and restarted mid-run;
- the listener (``srservice serve``) SIGKILLed in the middle of an association;
- the PACS (Orthanc) down for a while, then back;
- the PACS answering 0xA700 to the first C-STOREs (a small pynetdicom SCP);
- the database unavailable (a PostgreSQL role switched to NOLOGIN and its sessions
  terminated) -> C-STORE 0xA700, the resend succeeds, workers retry;
- an object accepted by the listener but unusable for analysis -> job 'failed' with a reason;
- hostile and fuzzed objects through ``srservice serve`` -> a failure status or a job with a reason;
- a pullback whose JPEG data makes a native decoder abort the worker -> the job ends 'dead'
  with a reason after its attempts, and the service keeps serving.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import figures
from tests.support.datasets import US_MULTIFRAME
from tests.support.environment import free_port, missing, poll
from tests.support.hostile import phantom_dataset
from tests.support.orthanc import OrthancServer
from tests.support.reliability import (
    EXPLICIT_LE,
    RawInstance,
    Sender,
    finals_for,
    sha256_of_stored,
    spool_finals,
    spool_partials,
)
from tests.support.service import PrivateRedis, Proc, Service
from tests.support.workload import (
    CONTEXTS,
    Sent,
    ivus_instance,
    ledger,
    send_concurrently,
    wait_terminal,
)

pytestmark = pytest.mark.timeout(300)


def pullbacks(n: int, frames: int = 24, rows: int = 160) -> list[RawInstance]:
    return [ivus_instance(frames=frames, rows=rows, seed=k) for k in range(n)]


def check_books(name: str, service: Service, sent: Sent, orthanc: OrthancServer | None,
                expected: int, **extra: Any) -> None:
    """Wait for every IVUS job, then record and assert 'lost: 0, duplicated reports: 0'."""
    uids = [i.sop_instance_uid for i in sent.acknowledged if i.sop_class_uid == US_MULTIFRAME]
    wait_terminal(service, uids, timeout=240)
    states = {u: [(j.state, j.reason) for j in service.jobs(u)] for u in uids}
    assert all(v and v[0][0] == "delivered" for v in states.values()), (states, service.logs())
    if orthanc is not None:
        orthanc.wait_for(lambda found: sum(1 for i in found if i.get("Modality") == "SR")
                         >= expected, 120, "the SRs")
    books = ledger(service, sent, orthanc=orthanc)
    attempts = max((j.attempts for u in uids for j in service.jobs(u)), default=0)
    figures.record(f"fault: {name}", "acknowledged / delivered / lost / duplicated",
                   f"{books.ivus} / {books.delivered} / {books.lost} / "
                   f"{books.duplicated_reports}")
    figures.record(f"fault: {name}", "max analysis attempts of a job", attempts)
    for key, value in extra.items():
        figures.record(f"fault: {name}", key, value)
    assert books.bad_on_disk == 0, books.details[:10]
    assert books.lost == 0 and books.failed == 0, (books.details[:10], service.logs())
    assert books.duplicated_reports == 0, books.details[:10]
    assert books.ivus == books.delivered == expected


def test_worker_sigkill_mid_analysis(tmp_path: Path, make_service: Callable[..., Service],
                                     redis_url: str, orthanc: OrthancServer) -> None:
    service = make_service(broker_url=redis_url, destinations=orthanc.destination,
                           embedded_worker="false", job_stuck_seconds="8").start()
    worker = service.start_worker()
    batch = pullbacks(4, frames=96, rows=256)
    sent = send_concurrently(service.port, [batch], tmp_path / "s")
    assert sent.errors == [] and len(sent.acknowledged) == 4
    kills = 0
    for _ in range(2):  # kill the worker twice, each time while an analysis runs
        poll(lambda: any(j.state == "running" for i in batch
                         for j in service.jobs(i.sop_instance_uid)), 120,
             "an analysis to be running", interval=0.05)
        worker.kill_group()
        kills += 1
        worker = service.start_worker()
    check_books("worker SIGKILL mid-analysis", service, sent, orthanc, 4,
                **{"worker kills": kills})


def test_redis_restarted_mid_run(tmp_path: Path, make_service: Callable[..., Service],
                                 orthanc: OrthancServer) -> None:
    redis_server = PrivateRedis(tmp_path).start()
    try:
        service = make_service(broker_url=redis_server.url, destinations=orthanc.destination,
                               embedded_worker="false", job_stuck_seconds="6").start()
        service.start_worker()
        batch = pullbacks(6)
        sent = send_concurrently(service.port, [batch[:3], batch[3:]], tmp_path / "s")
        assert sent.errors == [] and len(sent.acknowledged) == 6
        poll(lambda: any(j.state in ("queued", "running") for i in batch
                         for j in service.jobs(i.sop_instance_uid)), 60, "work in flight",
             interval=0.05)
        t0 = time.monotonic()
        redis_server.kill()  # no persistence: queued messages are gone
        poll(lambda: time.monotonic() - t0 >= 3.0, 10, "three seconds without Redis")
        redis_server.start()
        down = time.monotonic() - t0
        check_books("Redis restarted mid-run", service, sent, orthanc, 6,
                    **{"Redis down": f"{down:.1f} s"})
    finally:
        redis_server.kill()


def test_listener_sigkill_mid_association(tmp_path: Path,
                                          make_service: Callable[..., Service],
                                          redis_url: str, orthanc: OrthancServer) -> None:
    service = make_service(broker_url=redis_url, destinations=orthanc.destination,
                           embedded_worker="false").start()
    service.start_worker()
    batch = pullbacks(12, frames=48, rows=192)
    statuses: dict[str, int | None] = {}
    failure: list[str] = []

    def send() -> None:
        try:
            sender = Sender(service.port, CONTEXTS, tmp_path / "s", timeout=30)
            for inst in batch:
                statuses[inst.sop_instance_uid] = sender.send(inst)
                if statuses[inst.sop_instance_uid] != 0x0000:
                    failure.append(f"status {statuses[inst.sop_instance_uid]}")
                    break
            sender.release()
        except Exception as exc:
            failure.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=send)
    thread.start()
    poll(lambda: sum(1 for s in statuses.values() if s == 0) >= 3, 60, "three acknowledged",
         interval=0.01)
    assert service.serve is not None
    service.serve.kill_group()  # the listener dies in the middle of the association
    thread.join(timeout=60)
    acknowledged = [i for i in batch if statuses.get(i.sop_instance_uid) == 0x0000]
    unacknowledged = [i for i in batch if statuses.get(i.sop_instance_uid) != 0x0000]
    assert unacknowledged and failure, "the sender should have seen the failure"
    spool = service.data_dir / "spool"
    # Every acknowledged instance is intact; nothing partial is visible as an instance.
    for inst in acknowledged:
        assert [sha256_of_stored(p) for p in finals_for(spool, inst.sop_instance_uid)] == \
            [inst.sha256]
    by_hash = {i.sha256 for i in batch}
    assert all(sha256_of_stored(p) in by_hash for p in spool_finals(spool))
    # Restart the listener on the same data; resend what was not acknowledged.
    service.serve = Proc(["serve"], service.env, service.tmp / "serve2.log")
    poll(lambda: Sender(service.port, CONTEXTS, tmp_path / "probe").established, 60,
         "the restarted listener")
    assert spool_partials(spool) == []
    sent = Sent()
    for inst in acknowledged:
        sent.statuses[inst.sop_instance_uid] = 0x0000
        sent.instances[inst.sop_instance_uid] = inst
    send_concurrently(service.port, [unacknowledged], tmp_path / "r", sent)
    assert sent.errors == [] and len(sent.acknowledged) == len(batch)
    check_books("listener SIGKILL mid-association", service, sent, orthanc, len(batch),
                **{"acknowledged before the kill": len(acknowledged),
                   "sender saw": failure[0][:60]})


def test_pacs_down_then_back(tmp_path: Path, make_service: Callable[..., Service],
                             redis_url: str, orthanc: OrthancServer) -> None:
    orthanc.stop()
    service = make_service(broker_url=redis_url, destinations=orthanc.destination,
                           embedded_worker="false", delivery_backoff_seconds="1",
                           delivery_backoff_max_seconds="2").start()
    service.start_worker()
    batch = pullbacks(4)
    t0 = time.monotonic()
    sent = send_concurrently(service.port, [batch], tmp_path / "s")
    assert sent.errors == [] and len(sent.acknowledged) == 4

    def all_failed_once() -> bool:
        for inst in batch:
            jobs = service.jobs(inst.sop_instance_uid)
            if not (jobs and jobs[0].deliveries and jobs[0].deliveries[0].attempts >= 2):
                return False
        return True

    poll(all_failed_once, 180, "delivery attempts against the dead PACS")
    orthanc.start()
    down = time.monotonic() - t0
    check_books("PACS down then back", service, sent, orthanc, 4,
                **{"PACS down": f"{down:.1f} s"})


class FlakyPacs:
    """A pynetdicom Storage SCP answering 0xA700 to the first ``failures`` C-STOREs."""

    def __init__(self, failures: int) -> None:
        from pynetdicom import AE, AllStoragePresentationContexts, evt

        self.failures = failures
        self.calls = 0
        self.accepted: dict[str, int] = {}
        self.by_study: dict[str, set[str]] = {}
        self.lock = threading.Lock()
        self.port = free_port()
        ae = AE(ae_title="FLAKY")
        ae.supported_contexts = AllStoragePresentationContexts
        self.ae = ae
        server = ae.start_server(("127.0.0.1", self.port), block=False,
                                 evt_handlers=[(evt.EVT_C_STORE, self.on_store)])
        assert server is not None
        self.server = server

    def on_store(self, event: Any) -> int:
        with self.lock:
            self.calls += 1
            if self.calls <= self.failures:
                return 0xA700
            ds = event.dataset
            uid = str(ds.SOPInstanceUID)
            self.accepted[uid] = self.accepted.get(uid, 0) + 1
            if str(ds.SOPClassUID).startswith("1.2.840.10008.5.1.4.1.1.88"):
                self.by_study.setdefault(str(ds.StudyInstanceUID), set()).add(uid)
        return 0x0000

    def stop(self) -> None:
        self.server.shutdown()


def test_pacs_answers_failure_status(tmp_path: Path, make_service: Callable[..., Service],
                                     redis_url: str) -> None:
    pacs = FlakyPacs(failures=4)
    try:
        service = make_service(broker_url=redis_url,
                               destinations=f"FLAKY@127.0.0.1:{pacs.port}",
                               embedded_worker="false", delivery_backoff_seconds="1",
                               delivery_backoff_max_seconds="2").start()
        service.start_worker()
        batch = pullbacks(3)
        sent = send_concurrently(service.port, [batch], tmp_path / "s")
        assert sent.errors == [] and len(sent.acknowledged) == 3
        check_books("PACS answers 0xA700 first", service, sent, None, 3,
                    **{"0xA700 answers before Success": pacs.failures})
        with pacs.lock:
            assert pacs.calls > pacs.failures
            duplicates = sum(n - 1 for n in pacs.accepted.values() if n > 1)
            multi = [s for s, srs in pacs.by_study.items() if len(srs) != 1]
            assert len(pacs.by_study) == 3
        figures.record("fault: PACS answers 0xA700 first", "objects accepted twice by the PACS",
                       duplicates)
        assert duplicates == 0 and multi == []
    finally:
        pacs.stop()


@pytest.fixture
def pg_role_url() -> Iterator[tuple[str, Callable[[bool], None]]]:
    """A PostgreSQL role + schema of our own; ``switch(False)`` locks the role out."""
    import sqlalchemy as sa

    admin_url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    name = f"srrel_{uuid.uuid4().hex[:10]}"
    try:
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE ROLE "{name}" LOGIN'))
            conn.execute(sa.text(f'CREATE SCHEMA "{name}" AUTHORIZATION "{name}"'))
    except sa.exc.OperationalError as exc:
        missing(f"PostgreSQL at 127.0.0.1:5432 not reachable: {exc}")

    def switch(up: bool) -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER ROLE "{name}" {"LOGIN" if up else "NOLOGIN"}'))
            if not up:
                conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                     "WHERE usename = :n"), {"n": name})

    try:
        yield (f"postgresql+psycopg://{name}@127.0.0.1:5432/test"
               f"?options=-csearch_path%3D{name}", switch)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE usename = :n"), {"n": name})
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
            conn.execute(sa.text(f'DROP ROLE IF EXISTS "{name}"'))
        admin.dispose()


def test_database_briefly_unavailable(tmp_path: Path, make_service: Callable[..., Service],
                                      redis_url: str, orthanc: OrthancServer,
                                      pg_role_url: tuple[str, Callable[[bool], None]]) -> None:
    url, switch = pg_role_url
    service = make_service(broker_url=redis_url, database_url=url,
                           destinations=orthanc.destination, embedded_worker="false",
                           job_stuck_seconds="8").start()
    service.start_worker()
    first, second = pullbacks(3), [ivus_instance(frames=24, rows=160, seed=10 + k)
                                   for k in range(2)]
    sent = send_concurrently(service.port, [first], tmp_path / "s")
    assert sent.errors == [] and len(sent.acknowledged) == 3
    switch(False)  # the database goes away while the first jobs are in flight
    t0 = time.monotonic()
    refused = send_concurrently(service.port, [second], tmp_path / "r")
    statuses = sorted({f"0x{s or 0:04X}" for s in refused.statuses.values()})
    assert refused.errors == [] and statuses == ["0xA700"], statuses
    poll(lambda: time.monotonic() - t0 > 3, 10, "a few seconds of outage")
    switch(True)
    down = time.monotonic() - t0
    send_concurrently(service.port, [second], tmp_path / "again", sent)  # the resend works
    assert len(sent.acknowledged) == 5, sent.statuses
    # The books are read through the store of the test; it reconnects after the outage.
    check_books("database unavailable", service, sent, orthanc, 5,
                **{"C-STORE during outage": " ".join(statuses), "outage": f"{down:.1f} s"})


def test_unanalysable_object_ends_failed_with_reason(tmp_path: Path,
                                                     make_service: Callable[..., Service]
                                                     ) -> None:
    """Accepted by the listener (the store does not decode pixels), refused by the analysis."""
    from tests.support.hostile import encode

    service = make_service().start()
    ds = phantom_dataset()
    ds.Rows = 128  # Pixel Data no longer matches Rows x Columns x Frames
    inst = encode(ds)
    sender = Sender(service.port, [(US_MULTIFRAME, EXPLICIT_LE)], tmp_path / "s")
    assert sender.send(inst) == 0x0000
    sender.release()
    job = service.wait_job(inst.sop_instance_uid, ("delivered", "failed", "dead"))
    assert job.state == "failed" and job.reason and "Pixel Data" in job.reason, job.as_dict()
    figures.record("hostile", "unanalysable object in the service", f"job failed: {job.reason}"
                   [:100])


def test_hostile_and_fuzzed_objects_through_the_service(tmp_path: Path,
                                                         make_service: Callable[..., Service]
                                                         ) -> None:
    """Each hostile or mutated object gets a failure status, or a job that ends with a reason.

    ``srservice serve`` with its embedded defaults (SQLite, filesystem broker, embedded
    workers, outbox); the hand-made hostile objects of test_hostile.py plus 30 fuzz cases.
    """
    from tests.support.fuzz import SEED, contexts, corpus
    from tests.support.hostile import CASES, is_refusal

    service = make_service(log_level="WARNING").start()
    objects = [inst for _, inst in CASES] + [c.instance for c in corpus(SEED + 1, 30)]
    sender = Sender(service.port, [*contexts(), (US_MULTIFRAME, "1.2.840.10008.1.2")],
                    tmp_path / "s")
    statuses = {inst.sop_instance_uid: sender.send(inst) for inst in objects}
    sender.release()
    assert all(s is not None and (s == 0 or is_refusal(s)) for s in statuses.values()), statuses
    accepted = [i for i in objects if statuses[i.sop_instance_uid] == 0x0000]
    safe = [i for i in accepted if all(c in "0123456789." for c in i.sop_instance_uid)]
    assert len(safe) == len(accepted)
    wait_terminal(service, [i.sop_instance_uid for i in accepted], timeout=240)
    outcomes: dict[str, int] = {}
    for inst in accepted:
        jobs = service.jobs(inst.sop_instance_uid)
        assert len(jobs) == 1, (inst.sop_instance_uid, [j.as_dict() for j in jobs])
        job = jobs[0]
        assert job.state in ("delivered", "failed"), job.as_dict()
        if job.state == "failed":
            assert job.reason and job.reason.strip(), job.as_dict()
        outcomes[job.state] = outcomes.get(job.state, 0) + 1
    assert service.serve is not None and service.serve.alive()
    figures.record("hostile", "through the service: objects sent", len(objects))
    figures.record("hostile", "through the service: refused with a status",
                   len(objects) - len(accepted))
    figures.record("hostile", "through the service: jobs delivered / failed with reason",
                   f"{outcomes.get('delivered', 0)} / {outcomes.get('failed', 0)}")


def test_decoder_that_aborts_the_process_ends_the_job(tmp_path: Path,
                                                      make_service: Callable[..., Service]
                                                      ) -> None:
    """A JPEG stream that makes a native decoder abort (SIGABRT) must not loop forever.

    Fuzz case 2661 of seed 20261123 (JPEG Baseline with flipped bytes) makes python-gdcm throw
    an uncaught C++ exception: the worker process dies. The job must still end, once, as
    'failed' or 'dead' with a reason, and the service must keep serving.
    """
    from tests.support.fuzz import SEED, contexts, make_case

    service = make_service(job_stuck_seconds="6", log_level="WARNING").start()
    inst = make_case(SEED, 2661).instance
    sender = Sender(service.port, contexts(), tmp_path / "s")
    assert sender.send(inst) == 0x0000
    sender.release()
    job = service.wait_job(inst.sop_instance_uid, ("delivered", "failed", "dead"), timeout=240)
    figures.record("fault: native decoder abort", "job state / attempts / reason",
                   f"{job.state} / {job.attempts} / {(job.reason or '')[:70]}")
    assert job.state in ("failed", "dead") and job.reason, job.as_dict()
    assert len(service.jobs(inst.sop_instance_uid)) == 1
    good = ivus_instance(seed=3)
    sender = Sender(service.port, contexts(), tmp_path / "g")
    assert sender.send(good) == 0x0000
    sender.release()
    assert service.wait_job(good.sop_instance_uid, ("delivered", "failed", "dead"),
                            timeout=180).state == "delivered"
