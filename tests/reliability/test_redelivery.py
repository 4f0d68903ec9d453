"""Delivery idempotence: a worker killed while the PACS holds the SR's C-STORE.

The first attempt runs in a child process; the PACS (a real pynetdicom SCP over TCP) records
the SR and holds its response; the child is SIGKILLed there, so the job store never learns
that the SR arrived. When the delivery's lease has run out, the next attempt asks the PACS
by C-FIND (IMAGE level) and sends only what it does not hold. A PACS without C-FIND gets the
SR again (the documented fallback).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import Dataset
from pynetdicom import AE, AllStoragePresentationContexts, evt
from sqlalchemy import update

from srservice import sopclasses
from srservice.config import Settings, load_settings
from srservice.delivery.attempt import deliver_one
from srservice.jobs import JobState, JobStore
from srservice.jobs.models import Delivery, utcnow
from tests.delivery.test_delivery import reported_job
from tests.support.environment import ROOT, free_port, poll

pytestmark = pytest.mark.timeout(120)


class HoldingPacs:
    """Storage SCP (+ optional Study Root FIND SCP) that can hold its C-STORE responses."""

    def __init__(self, *, find: bool) -> None:
        self.port = free_port()
        self.stored: list[str] = []
        self.finds = 0
        self.hold = threading.Event()  # set: hold every C-STORE response until released
        self.release = threading.Event()
        self._lock = threading.Lock()
        ae = AE(ae_title="HOLDPACS")
        ae.supported_contexts = AllStoragePresentationContexts
        if find:
            ae.add_supported_context(sopclasses.STUDY_ROOT_FIND)
        self.server = ae.start_server(("127.0.0.1", self.port), block=False, evt_handlers=[
            (evt.EVT_C_STORE, self._store), (evt.EVT_C_FIND, self._find)])

    @property
    def dest(self) -> str:
        return f"HOLDPACS@127.0.0.1:{self.port}"

    def _store(self, event: Any) -> int:
        with self._lock:
            self.stored.append(str(event.request.AffectedSOPInstanceUID))
        if self.hold.is_set():
            self.release.wait(30)
        return 0x0000

    def _find(self, event: Any) -> Iterator[tuple[int, Dataset | None]]:
        self.finds += 1
        ident = event.identifier
        with self._lock:
            held = set(self.stored)
        if ident.QueryRetrieveLevel == "IMAGE" and str(ident.SOPInstanceUID) in held:
            match = Dataset()
            match.QueryRetrieveLevel = "IMAGE"
            match.SOPInstanceUID = ident.SOPInstanceUID
            yield 0xFF00, match
        yield 0x0000, None


@pytest.fixture(params=[True, False], ids=["pacs-answers-c-find", "pacs-without-c-find"])
def pacs(request: pytest.FixtureRequest) -> Iterator[HoldingPacs]:
    p = HoldingPacs(find=request.param)
    yield p
    p.release.set()
    p.server.shutdown()


def _first_attempt_killed(settings: Settings, pacs: HoldingPacs, delivery_id: int) -> None:
    """Run one attempt in a child; SIGKILL it while the PACS holds the SR's C-STORE."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = ("import sys; from srservice.config import load_settings; "
            "from srservice.jobs import JobStore; from srservice.delivery.attempt import "
            "deliver_one; s = load_settings(data_dir=sys.argv[1], destinations=sys.argv[2]); "
            "deliver_one(s, JobStore(s.effective_database_url), int(sys.argv[3]))")
    pacs.hold.set()
    child = subprocess.Popen([sys.executable, "-c", code, str(settings.data_dir), pacs.dest,
                              str(delivery_id)], env=env, cwd=ROOT)
    try:
        poll(lambda: len(pacs.stored) == 1, 60, "the SR's C-STORE to reach the PACS")
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    pacs.hold.clear()
    pacs.release.set()


def test_resend_after_lost_acknowledgement(tmp_path: Path, pacs: HoldingPacs,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="srservice.delivery.attempt")
    settings = load_settings(data_dir=tmp_path / "data", destinations=pacs.dest,
                             acse_timeout=10, dimse_timeout=10, network_timeout=10)
    jobs = JobStore(settings.effective_database_url)
    job_id = reported_job(settings, jobs, [pacs.dest])
    job = jobs.get_job(job_id)
    assert job is not None and job.sr_sop_instance_uid and job.pdf_sop_instance_uid
    delivery_id = job.deliveries[0].id
    _first_attempt_killed(settings, pacs, delivery_id)
    assert pacs.stored == [job.sr_sop_instance_uid]
    after_kill = jobs.get_job(job_id)
    assert after_kill is not None and after_kill.deliveries[0].state == "pending"
    assert after_kill.deliveries[0].attempts == 1
    # The lease of the killed attempt has run out (what the sweeper waits for).
    with jobs.engine.begin() as conn:
        conn.execute(update(Delivery).where(Delivery.id == delivery_id)
                     .values(next_attempt_at=utcnow()))
    time.sleep(0.1)
    assert deliver_one(settings, jobs, delivery_id) == "delivered"
    done = jobs.get_job(job_id)
    assert done is not None and done.state == JobState.DELIVERED
    if pacs.finds:  # asked: the SR it holds is not sent again, the PDF is sent once
        assert pacs.stored == [job.sr_sop_instance_uid, job.pdf_sop_instance_uid]
        assert pacs.finds == 2  # one IMAGE-level query per report
        assert "already holds" in caplog.text
    else:  # cannot ask: both sent again (documented in docs/reliability.md)
        assert pacs.stored == [job.sr_sop_instance_uid, job.sr_sop_instance_uid,
                               job.pdf_sop_instance_uid]
        assert "cannot say whether it holds the reports" in caplog.text
    jobs.dispose()


def test_first_attempt_does_not_query(tmp_path: Path) -> None:
    """A first attempt has no earlier one whose answer could be lost: no C-FIND."""
    pacs = HoldingPacs(find=True)
    try:
        settings = load_settings(data_dir=tmp_path / "data", destinations=pacs.dest,
                                 acse_timeout=10, dimse_timeout=10, network_timeout=10)
        jobs = JobStore(settings.effective_database_url)
        job_id = reported_job(settings, jobs, [pacs.dest])
        job = jobs.get_job(job_id)
        assert job is not None
        assert deliver_one(settings, jobs, job.deliveries[0].id) == "delivered"
        assert pacs.finds == 0 and len(pacs.stored) == 2
        jobs.dispose()
    finally:
        pacs.server.shutdown()


def test_first_attempt_after_an_operator_retry_queries(tmp_path: Path) -> None:
    """``srservice retry`` resets the attempts of a failed delivery; its last error says an
    earlier attempt existed, so the destination is asked first."""
    pacs = HoldingPacs(find=True)
    try:
        settings = load_settings(data_dir=tmp_path / "data", destinations=pacs.dest,
                                 acse_timeout=10, dimse_timeout=10, network_timeout=10)
        jobs = JobStore(settings.effective_database_url)
        job_id = reported_job(settings, jobs, [pacs.dest])
        job = jobs.get_job(job_id)
        assert job is not None
        with jobs.engine.begin() as conn:
            conn.execute(update(Delivery).where(Delivery.id == job.deliveries[0].id)
                         .values(last_error="DeliveryError: no C-STORE response"))
        assert deliver_one(settings, jobs, job.deliveries[0].id) == "delivered"
        assert pacs.finds == 2 and len(pacs.stored) == 2
        jobs.dispose()
    finally:
        pacs.server.shutdown()
