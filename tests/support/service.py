"""The whole service as processes: ``srservice serve`` on a free port, ``srservice worker``
processes, a private Redis, DCMTK storescu as the sender and Orthanc as the PACS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

from pydicom import Dataset, dcmread
from pydicom.uid import Comprehensive3DSRStorage, EncapsulatedPDFStorage, ExplicitVRLittleEndian
from pynetdicom import AE
from sqlalchemy import text

from srservice.jobs import JobStore, JobView
from tests.support.environment import ROOT, free_port, poll, require_tool
from tests.support.orthanc import OrthancServer

SRSERVICE = [sys.executable, "-m", "srservice.cli"]
SR_CLASS = Comprehensive3DSRStorage
PDF_CLASS = EncapsulatedPDFStorage


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


def phantom_file(directory: Path) -> tuple[Path, str, int]:
    """Write the demo phantom pullback; return (path, SOP Instance UID, expected score)."""
    from srservice.cli.demo import demo_case
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


def c_store(ds: Dataset, port: int, aet: str = "CONSOLE") -> int:
    """C-STORE ``ds`` with pynetdicom and return the status (-1: no association)."""
    ae = AE(ae_title=aet)
    ae.add_requested_context(ds.SOPClassUID, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="SRSERVICE")
    if not assoc.is_established:
        return -1
    try:
        status = assoc.send_c_store(ds)
    finally:
        assoc.release()
    return int(status.Status) if status and "Status" in status else -2


def instance_count(service: Service, uid: str) -> int:
    """Rows in the job store's instance table for one SOP Instance UID."""
    with service.store.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM instances WHERE sop_instance_uid "
                                     "= :u"), {"u": uid}).scalar_one())


class PrivateRedis:
    """A redis-server of our own on a free port (the shared one is never restarted)."""

    def __init__(self, root: Path) -> None:
        self.exe = require_tool("redis-server")
        self.port = free_port()
        self.root = root
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        import redis

        self.proc = subprocess.Popen([self.exe, "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir",
                                      str(self.root)], stdout=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.exceptions.ConnectionError:
                return False

        poll(up, 20, "redis-server to answer PING")
        client.close()
        return self

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


def parent_pid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])
