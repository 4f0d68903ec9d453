"""End-to-end: real `srservice serve` and worker processes, DCMTK storescu, Orthanc as the PACS.

A private Redis as the broker, PostgreSQL (a schema per test) or SQLite as the job store; the
embedded defaults (filesystem broker, SQLite, outbox) too. The processes are
:class:`tests.support.service.Service`; the fixtures are in ``tests/conftest.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom import dcmread

from tests.support.orthanc import OrthancServer
from tests.support.service import (
    SR_CLASS,
    Service,
    check_outputs_in_orthanc,
    phantom_file,
    sr_score,
    storescu,
)

pytestmark = pytest.mark.timeout(300)


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
