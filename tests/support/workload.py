"""The whole service for load and fault tests: objects to send, concurrent senders, and the
ledger that counts lost and duplicated reports.

Processes are the e2e harness (:class:`tests.support.service.Service`: ``srservice
serve`` on a free port, ``srservice worker`` processes, Orthanc as the PACS).
"""

from __future__ import annotations

import collections
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import generate_uid
from sqlalchemy import text

from srservice.jobs import TERMINAL_JOB_STATES
from tests.support.datasets import SECONDARY_CAPTURE, US_MULTIFRAME, small_image
from tests.support.reliability import (
    EXPLICIT_LE,
    RawInstance,
    Sender,
    finals_for,
    sha256_of_stored,
    split_part10,
)
from tests.support.service import SR_CLASS, Service

CONTEXTS = [(US_MULTIFRAME, EXPLICIT_LE), (SECONDARY_CAPTURE, EXPLICIT_LE)]



def ivus_instance(frames: int = 24, rows: int = 192, seed: int = 0) -> RawInstance:
    """A phantom IVUS pullback with fresh Study/Series/SOP Instance UIDs."""
    from srservice.phantom import small_case
    from srservice.phantom.writer import write_pullback

    case = small_case("calcium", frames=frames, rows=rows, seed=seed)
    uid = generate_uid()
    with tempfile.TemporaryDirectory() as d:
        path = write_pullback(case, Path(d) / "p.dcm", sop_instance_uid=uid,
                              study_instance_uid=generate_uid())
        _, data = split_part10(path.read_bytes())
    return RawInstance(US_MULTIFRAME, uid, EXPLICIT_LE, data)


def small_object() -> RawInstance:
    """A tiny Secondary Capture image (non-IVUS; stored with non_ivus_policy=store)."""
    ds = small_image(SECONDARY_CAPTURE, "OT")
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, False
    write_dataset(buf, ds)
    return RawInstance(SECONDARY_CAPTURE, str(ds.SOPInstanceUID), EXPLICIT_LE, buf.getvalue())


@dataclass
class Sent:
    """What the senders got back."""

    statuses: dict[str, int | None] = field(default_factory=dict)
    instances: dict[str, RawInstance] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def acknowledged(self) -> list[RawInstance]:
        return [self.instances[u] for u, s in self.statuses.items() if s == 0x0000]


def send_concurrently(port: int, batches: list[list[RawInstance]], workdir: Path,
                      sent: Sent | None = None) -> Sent:
    """One association per batch, all at once; record every status."""
    sent = sent or Sent()

    def run(k: int, batch: list[RawInstance]) -> None:
        try:
            sender = Sender(port, CONTEXTS, workdir / f"a{k}", calling_ae="LOADSCU", timeout=120)
            if not sender.established:
                with sent.lock:
                    sent.errors.append(f"association {k} not established")
                return
            for inst in batch:
                status = sender.send(inst)
                with sent.lock:
                    sent.statuses[inst.sop_instance_uid] = status
                    sent.instances[inst.sop_instance_uid] = inst
            sender.release()
        except Exception as exc:
            with sent.lock:
                sent.errors.append(f"association {k}: {type(exc).__name__}: {exc}")

    t0 = time.monotonic()
    threads = [threading.Thread(target=run, args=(k, b)) for k, b in enumerate(batches)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    sent.seconds = time.monotonic() - t0
    return sent


class QueueSampler:
    """Samples the broker queue length (Redis LLEN) and the job store's queued count."""

    def __init__(self, service: Service, redis_url: str | None, queue: str = "srservice") -> None:
        self.service = service
        self.redis_url = redis_url
        self.queue = queue
        self.max_llen = 0
        self.max_queued = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import redis

        client = redis.Redis.from_url(self.redis_url) if self.redis_url else None
        while not self._stop.is_set():
            try:
                if client is not None:
                    self.max_llen = max(self.max_llen, int(client.llen(self.queue)))
                with self.service.store.engine.connect() as conn:
                    queued = conn.execute(text(
                        "SELECT count(*) FROM jobs WHERE state IN ('received', 'queued')"
                    )).scalar_one()
                self.max_queued = max(self.max_queued, int(queued))
            except Exception:
                pass
            self._stop.wait(0.1)
        if client is not None:
            client.close()

    def __enter__(self) -> QueueSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@dataclass
class Ledger:
    """The books after a run: nothing lost, nothing duplicated."""

    acknowledged: int
    ivus: int
    delivered: int
    failed: int
    lost: int
    duplicated_reports: int
    bad_on_disk: int
    details: list[str]


def job_counts(service: Service, uid: str) -> list[tuple[str, str | None]]:
    """(state, SR SOP Instance UID) of every job of one source instance."""
    return [(j.state, j.sr_sop_instance_uid) for j in service.jobs(uid)]


def wait_terminal(service: Service, uids: Iterable[str], timeout: float) -> None:
    """Poll until every IVUS instance's newest job is terminal (or the deadline)."""
    pending = set(uids)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        done = set()
        for uid in list(pending)[:50]:
            jobs = service.jobs(uid)
            if jobs and jobs[0].state in TERMINAL_JOB_STATES:
                done.add(uid)
        pending -= done
        if pending:
            time.sleep(0.5)


def ledger(service: Service, sent: Sent, *, orthanc: Any | None = None,
           ivus_class: str = US_MULTIFRAME) -> Ledger:
    """Check every acknowledged instance on disk and count reports per IVUS instance."""
    spool = service.data_dir / "spool"
    details: list[str] = []
    bad = 0
    acknowledged = sent.acknowledged
    for inst in acknowledged:
        files = finals_for(spool, inst.sop_instance_uid)
        if not any(sha256_of_stored(f) == inst.sha256 for f in files):
            bad += 1
            details.append(f"{inst.sop_instance_uid}: acknowledged but not on disk intact")
    ivus = [i for i in acknowledged if i.sop_class_uid == ivus_class]
    delivered = failed = lost = dup = 0
    pacs_srs: collections.Counter[str] = collections.Counter()
    if orthanc is not None:
        for tags in orthanc.instances():
            if tags.get("SOPClassUID") == SR_CLASS:
                pacs_srs[str(tags.get("StudyInstanceUID"))] += 1
    study_of: dict[str, str] = {}
    for inst in ivus:
        jobs = service.jobs(inst.sop_instance_uid)
        states = [j.state for j in jobs]
        srs = {j.sr_sop_instance_uid for j in jobs if j.state == "delivered"}
        if jobs:
            study_of[inst.sop_instance_uid] = jobs[0].study_instance_uid
        if "delivered" in states:
            delivered += 1
        elif "failed" in states or "dead" in states:
            failed += 1
            details.append(f"{inst.sop_instance_uid}: {states} {jobs[0].reason}")
        else:
            lost += 1
            details.append(f"{inst.sop_instance_uid}: no terminal job ({states})")
        dup += max(0, len(jobs) - 1) + max(0, len(srs) - 1)
        if orthanc is not None and jobs:
            n = pacs_srs.get(jobs[0].study_instance_uid, 0)
            if n > 1:
                dup += n - 1
                details.append(f"{inst.sop_instance_uid}: {n} SRs in the PACS")
            if n == 0 and "delivered" in states:
                lost += 1
                details.append(f"{inst.sop_instance_uid}: delivered but no SR in the PACS")
    return Ledger(len(acknowledged), len(ivus), delivered, failed, lost, dup, bad, details)
