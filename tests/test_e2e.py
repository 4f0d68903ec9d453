"""End-to-end: real `srservice serve` and worker processes, DCMTK storescu, Orthanc as the PACS.

Redis db index != 0 (flushed by the test) as the broker, PostgreSQL (a schema per test) or
SQLite as the job store; the embedded defaults (filesystem broker, SQLite, outbox) too.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from pydicom import Dataset, dcmread

from srservice.jobs import JobStore, JobView
from tests.conftest import free_port, missing, require_tool
from tests.orthanc import OrthancServer

ROOT = Path(__file__).resolve().parents[1]
SRSERVICE = [sys.executable, "-m", "srservice.cli"]
REDIS_URL = "redis://127.0.0.1:6379"
SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
PDF_CLASS = "1.2.840.10008.5.1.4.1.1.104.1"  # Encapsulated PDF

pytestmark = pytest.mark.timeout(300)


# ----------------------------------------------------------------------------- helpers
def poll(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Return ``predicate()`` once truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def redis_db() -> Iterator[str]:
    """Yield a Redis URL on a random db index 1-15, flushed before and after."""
    import redis

    index = random.randint(1, 15)
    client = redis.Redis.from_url(f"{REDIS_URL}/{index}")
    try:
        client.flushdb()
    except redis.exceptions.ConnectionError as exc:
        missing(f"Redis at 127.0.0.1:6379 not reachable: {exc}")
    try:
        yield f"{REDIS_URL}/{index}"
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def redis_url() -> Iterator[str]:
    yield from redis_db()


@pytest.fixture
def pg_url() -> Iterator[str]:
    from tests.test_jobs import pg_schema_url

    yield from pg_schema_url()


class Proc:
    """A service or worker subprocess with its log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.fh = log.open("ab")
        self.proc = subprocess.Popen(SRSERVICE + args, env=env, stdout=self.fh,
                                     stderr=subprocess.STDOUT, cwd=ROOT,
                                     start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.fh.close()
        return self.proc.returncode

    def kill_group(self) -> None:
        """SIGKILL the process and all its children (a Celery worker with its pool)."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


class Service:
    """`srservice serve` (+ optional separate workers) on a free port."""

    def __init__(self, tmp: Path, **settings: str) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.data_dir = tmp / "data"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SRSERVICE_")}
        self.env.update({
            "SRSERVICE_DATA_DIR": str(self.data_dir), "SRSERVICE_HOST": "127.0.0.1",
            "SRSERVICE_PORT": str(self.port), "SRSERVICE_MIN_FREE_DISK_MB": "0",
            "SRSERVICE_WORKER_CONCURRENCY": "1", "SRSERVICE_TASK_TIME_LIMIT": "120",
            "SRSERVICE_JOB_STUCK_SECONDS": "20", "SRSERVICE_LOG_LEVEL": "INFO",
            "PYTHONPATH": str(ROOT),
        })
        self.env.update({f"SRSERVICE_{k.upper()}": v for k, v in settings.items()})
        self.serve: Proc | None = None
        self.workers: list[Proc] = []
        self.url = self.env.get("SRSERVICE_DATABASE_URL") or \
            f"sqlite:///{(self.data_dir / 'jobs.sqlite3').resolve()}"
        self._store: JobStore | None = None

    def start(self) -> Service:
        self.serve = Proc(["serve"], self.env, self.tmp / "serve.log")
        echoscu = require_tool("echoscu")

        def ready() -> bool:
            assert self.serve is not None
            if not self.serve.alive():
                raise AssertionError(f"serve exited:\n{self.serve.tail()}")
            return subprocess.run([echoscu, "-aet", "CONSOLE", "-aec", "SRSERVICE",
                                   "127.0.0.1", str(self.port)],
                                  capture_output=True, timeout=30).returncode == 0

        poll(ready, 60, "the listener to answer C-ECHO", interval=0.5)
        return self

    def start_worker(self) -> Proc:
        worker = Proc(["worker", "--concurrency", "1"], self.env,
                      self.tmp / f"worker{len(self.workers)}.log")
        self.workers.append(worker)
        return worker

    @property
    def store(self) -> JobStore:
        if self._store is None:
            self._store = JobStore(self.url)
        return self._store

    def jobs(self, uid: str) -> list[JobView]:
        return self.store.list_jobs(sop_instance_uid=uid)

    def wait_job(self, uid: str, states: tuple[str, ...], timeout: float = 120) -> JobView:
        def done() -> JobView | None:
            jobs = self.jobs(uid)
            return jobs[0] if jobs and jobs[0].state in states else None

        try:
            return poll(done, timeout, f"a job for {uid} in {states}", interval=0.3)
        except AssertionError:
            print(self.logs())
            print([j.as_dict() for j in self.jobs(uid)])
            raise

    def logs(self) -> str:
        parts = [f"--- serve\n{self.serve.tail()}" if self.serve else ""]
        parts += [f"--- worker\n{w.tail()}" for w in self.workers]
        return "\n".join(parts)

    def stop(self) -> None:
        for w in self.workers:
            w.stop()
        if self.serve is not None:
            code = self.serve.stop()
            assert code == 0, f"serve exited with {code} on SIGTERM:\n{self.serve.tail()}"
        if self._store is not None:
            self._store.dispose()


@pytest.fixture
def make_service(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    started: list[Service] = []

    def make(**settings: str) -> Service:
        service = Service(tmp_path, **settings)
        started.append(service)
        return service

    yield make
    for s in started:
        s.stop()


def phantom_file(directory: Path) -> tuple[Path, str, int]:
    """Write the demo phantom pullback; return (path, SOP Instance UID, expected score)."""
    from srservice.demo import demo_case
    from srservice.phantom.writer import write_pullback

    case = demo_case()
    uid = f"2.25.{uuid.uuid4().int}"
    path = write_pullback(case, directory / "pullback.dcm", sop_instance_uid=uid)
    return path, uid, case.truth.expected_score


def storescu(path: Path, port: int, *, aet: str = "CONSOLE") -> subprocess.CompletedProcess[str]:
    exe = require_tool("storescu")
    return subprocess.run([exe, "-aet", aet, "-aec", "SRSERVICE", "127.0.0.1", str(port),
                           str(path)], capture_output=True, text=True, timeout=120)


def sr_score(ds: Dataset) -> int | None:
    """Highest 'IVUS calcium score' (code SRSVC001) NUM value in an SR content tree."""
    from srservice.reporting.codes import IVUS_CALCIUM_SCORE

    values: list[float] = []

    def walk(items: Any) -> None:
        for item in items:
            name = item.ConceptNameCodeSequence[0] if "ConceptNameCodeSequence" in item else None
            if (item.ValueType == "NUM" and name is not None
                    and name.CodeValue == IVUS_CALCIUM_SCORE.value
                    and item.get("MeasuredValueSequence")):
                values.append(float(item.MeasuredValueSequence[0].NumericValue))
            if "ContentSequence" in item:
                walk(item.ContentSequence)

    walk(ds.ContentSequence)
    return int(max(values)) if values else None


def orthanc_outputs(orthanc: OrthancServer, study_uid: str) -> Callable[[list[dict[str, Any]]],
                                                                          bool]:
    def ready(instances: list[dict[str, Any]]) -> bool:
        classes = {i.get("SOPClassUID") for i in instances
                   if i.get("StudyInstanceUID") == study_uid}
        return {SR_CLASS, PDF_CLASS} <= classes

    return ready


def check_outputs_in_orthanc(orthanc: OrthancServer, src: Path, expected: int | None,
                             timeout: float = 120) -> Dataset:
    source = dcmread(src, stop_before_pixels=True)
    instances = orthanc.wait_for(orthanc_outputs(orthanc, source.StudyInstanceUID), timeout,
                                 "the SR and PDF in the study")
    srs = [i for i in instances if i.get("SOPClassUID") == SR_CLASS]
    pdfs = [i for i in instances if i.get("SOPClassUID") == PDF_CLASS]
    assert len(srs) == 1 and len(pdfs) == 1, instances
    sr = dcmread(BytesIO(orthanc.get_bytes(f"/instances/{srs[0]['ID']}/file")))
    assert sr.StudyInstanceUID == source.StudyInstanceUID
    assert sr.PatientID == source.PatientID
    assert sr_score(sr) == expected, f"SR score {sr_score(sr)} != phantom's {expected}"
    return sr


# ----------------------------------------------------------------------------- tests
def test_redis_postgres_workers_orthanc(tmp_path: Path, make_service: Callable[..., Service],
                                        redis_url: str, pg_url: str,
                                        orthanc: OrthancServer) -> None:
    """Multi-host shape: Redis broker, PostgreSQL store, separate worker, Orthanc PACS."""
    service = make_service(broker_url=redis_url, database_url=pg_url,
                           destinations=orthanc.destination, embedded_worker="false").start()
    service.start_worker()
    src, uid, expected = phantom_file(tmp_path)
    sent = storescu(src, service.port)
    assert sent.returncode == 0, sent.stderr
    job = service.wait_job(uid, ("delivered", "failed", "dead"))
    assert job.state == "delivered", (job.reason, service.logs())
    check_outputs_in_orthanc(orthanc, src, expected)
    assert job.score_total == expected
    # resending the same bytes is idempotent: no second job
    assert storescu(src, service.port).returncode == 0
    time.sleep(1.0)
    assert len(service.jobs(uid)) == 1


def test_embedded_defaults_outbox(tmp_path: Path, make_service: Callable[..., Service]) -> None:
    """Filesystem broker, SQLite, embedded workers, outbox."""
    service = make_service().start()
    src, uid, expected = phantom_file(tmp_path)
    sent = storescu(src, service.port)
    assert sent.returncode == 0, sent.stderr
    job = service.wait_job(uid, ("delivered", "failed", "dead"))
    assert job.state == "delivered", (job.reason, service.logs())
    entry = service.data_dir / "outbox" / f"job-{job.id}"
    sr = dcmread(entry / "sr.dcm")
    assert sr.SOPClassUID == SR_CLASS and (entry / "pdf.dcm").is_file()
    assert sr_score(sr) == expected
    assert not [p for p in (service.data_dir / "outbox").iterdir() if p.name.startswith(".")]
