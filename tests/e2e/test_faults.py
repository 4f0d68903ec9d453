"""End-to-end faults and refusals with real processes: access, bad UIDs, non-IVUS objects,
PACS down then up, worker SIGKILLed in the middle of a job."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom import config

from srservice.cli.demo import send_file
from tests.support.datasets import SECONDARY_CAPTURE as SC_CLASS
from tests.support.datasets import US_MULTIFRAME as US_MF_CLASS
from tests.support.datasets import small_image
from tests.support.environment import poll
from tests.support.orthanc import OrthancServer
from tests.support.service import (
    SR_CLASS,
    SRSERVICE,
    PrivateRedis,
    Service,
    c_store,
    check_outputs_in_orthanc,
    instance_count,
    parent_pid,
    phantom_file,
    storescu,
)

pytestmark = pytest.mark.timeout(300)


def test_access_bad_uid_and_non_ivus(tmp_path: Path,
                                     make_service: Callable[..., Service]) -> None:
    service = make_service(allowed_calling_aes="CONSOLE", non_ivus_policy="store").start()
    # unknown calling AE: association rejected, nothing recorded
    src, uid, _ = phantom_file(tmp_path)
    refused = storescu(src, service.port, aet="INTRUDER")
    assert refused.returncode != 0
    assert "reject" in (refused.stdout + refused.stderr).lower()
    assert instance_count(service, uid) == 0
    # invalid (path traversal) UID: refused with a failure status, never touches a path
    bad_uid = "1.2.3/../../evil"
    old = config.settings.writing_validation_mode
    config.settings.writing_validation_mode = config.WARN
    try:
        status = c_store(small_image(US_MF_CLASS, "IVUS", bad_uid), service.port)
    finally:
        config.settings.writing_validation_mode = old
    assert status not in (0, -1, -2) and status & 0xF000 in (0xA000, 0xC000), hex(status)
    assert instance_count(service, bad_uid) == 0
    assert not list(service.data_dir.rglob("*evil*"))
    # non-IVUS object with policy 'store': stored and recorded, no job
    sc = small_image(SC_CLASS, "OT")
    assert c_store(sc, service.port) == 0
    poll(lambda: instance_count(service, sc.SOPInstanceUID) == 1, 10, "the SC instance")
    assert service.jobs(sc.SOPInstanceUID) == []
    # an IVUS pullback from the allowed AE still works alongside
    assert storescu(src, service.port).returncode == 0
    assert service.wait_job(uid, ("delivered", "failed", "dead")).state == "delivered"


def test_pacs_down_then_up(tmp_path: Path, make_service: Callable[..., Service],
                           orthanc: OrthancServer) -> None:
    orthanc.stop()
    service = make_service(destinations=orthanc.destination, delivery_backoff_seconds="1",
                           delivery_backoff_max_seconds="2",
                           delivery_deadline_seconds="300").start()
    src, uid, _ = phantom_file(tmp_path)
    assert storescu(src, service.port).returncode == 0

    def failing_twice() -> bool:
        jobs = service.jobs(uid)
        return bool(jobs and jobs[0].deliveries and jobs[0].deliveries[0].attempts >= 2
                    and jobs[0].deliveries[0].state == "pending")

    poll(failing_twice, 120, "two failed delivery attempts while the PACS is down")
    job = service.jobs(uid)[0]
    assert job.state == "reported" and job.deliveries[0].last_error
    attempts_before = job.attempts
    orthanc.start()
    job = service.wait_job(uid, ("delivered", "dead", "failed"))
    assert job.state == "delivered", job.as_dict()
    assert job.attempts == attempts_before  # the analysis did not run again
    # the SR carries the score the job recorded (the phantom's score is checked in test_e2e)
    check_outputs_in_orthanc(orthanc, src, job.score_total)


def test_worker_sigkill_mid_job_completes_once(tmp_path: Path,
                                               make_service: Callable[..., Service],
                                               redis_url: str,
                                               orthanc: OrthancServer) -> None:
    service = make_service(broker_url=redis_url, destinations=orthanc.destination,
                           embedded_worker="false", job_stuck_seconds="20").start()
    first = service.start_worker()
    src, uid, _ = phantom_file(tmp_path)
    assert storescu(src, service.port).returncode == 0
    poll(lambda: any(j.state == "running" for j in service.jobs(uid)), 120,
         "the job to be running", interval=0.05)
    first.kill_group()  # the whole worker (main process and pool) dies mid-analysis
    job = service.jobs(uid)[0]
    assert job.state == "running"
    service.start_worker()
    job = service.wait_job(uid, ("delivered", "dead", "failed"), timeout=180)
    assert job.state == "delivered", (job.as_dict(), service.logs())
    assert job.attempts == 2
    sr = check_outputs_in_orthanc(orthanc, src, job.score_total)
    srs = [i for i in orthanc.instances() if i.get("SOPClassUID") == SR_CLASS]
    assert len(srs) == 1 and srs[0]["SOPInstanceUID"] == sr.SOPInstanceUID


def test_demo_command(tmp_path: Path, make_service: Callable[..., Service]) -> None:
    service = make_service().start()
    result = subprocess.run([*SRSERVICE, "demo", "--port", str(service.port), "--timeout",
                             "120"], env=service.env, capture_output=True, text=True,
                            timeout=200)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "IVUS calcium score:" in result.stdout and "delivered" in result.stdout


def test_send_file_helper_rejects_wrong_called_ae(make_service: Callable[..., Service],
                                                  tmp_path: Path) -> None:
    service = make_service().start()
    src, _, _ = phantom_file(tmp_path)
    from srservice.errors import DeliveryError

    with pytest.raises(DeliveryError):
        send_file(src, host="127.0.0.1", port=service.port, aec=f"X{uuid.uuid4().hex[:8]}",
                  aet="CONSOLE")


def test_redis_restart_loses_nothing(tmp_path: Path, make_service: Callable[..., Service],
                                     orthanc: OrthancServer) -> None:
    """Redis (no persistence) restarted while a job waits: the sweeper re-sends it."""
    redis_server = PrivateRedis(tmp_path).start()
    try:
        service = make_service(broker_url=redis_server.url, destinations=orthanc.destination,
                               embedded_worker="false", job_stuck_seconds="6").start()
        src, uid, _ = phantom_file(tmp_path)
        assert storescu(src, service.port).returncode == 0  # queued; no worker yet
        poll(lambda: any(j.state == "queued" for j in service.jobs(uid)), 30, "queued job")
        redis_server.kill()  # the message is lost with Redis
        redis_server.start()
        service.start_worker()
        job = service.wait_job(uid, ("delivered", "dead", "failed"), timeout=180)
        assert job.state == "delivered", (job.as_dict(), service.logs())
        srs = [i for i in orthanc.instances() if i.get("SOPClassUID") == SR_CLASS]
        assert len(srs) == 1
    finally:
        redis_server.kill()


def test_embedded_worker_killed_mid_job(tmp_path: Path,
                                        make_service: Callable[..., Service]) -> None:
    """Embedded defaults: serve restarts its killed worker and the job completes once."""
    import os
    import signal

    service = make_service(job_stuck_seconds="10").start()
    src, uid, _ = phantom_file(tmp_path)
    assert storescu(src, service.port).returncode == 0
    running = poll(lambda: next((j for j in service.jobs(uid) if j.state == "running"), None),
                   120, "the job to be running", interval=0.05)
    child = int((running.owner or "").rsplit(":", 1)[1])
    main = parent_pid(child)
    assert service.serve is not None and parent_pid(main) == service.serve.proc.pid
    os.kill(main, signal.SIGKILL)
    os.kill(child, signal.SIGKILL)
    job = service.wait_job(uid, ("delivered", "dead", "failed"), timeout=180)
    assert job.state == "delivered", (job.as_dict(), service.logs())
    assert job.attempts == 2
    assert [p.name for p in (service.data_dir / "outbox").iterdir()] == [f"job-{job.id}"]
