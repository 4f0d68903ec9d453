"""``srservice backfill`` against a real Orthanc holding phantom IVUS studies and others.

The service runs as processes (``srservice serve`` with its embedded worker); Orthanc is the
PACS the backfill queries, the PACS that C-MOVEs the studies to the service, and the
destination of the reports. Each phantom pullback is tiny (8 frames of 128 x 128).
"""

from __future__ import annotations

import itertools
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from srservice.cli.main import main as cli_main
from srservice.jobs.models import BackfillState
from srservice.reporting.uids import derived_uid
from tests.support.backfill import (
    archive_other,
    archive_our_sr,
    archive_pullback,
    max_overlap,
    orthanc_for,
    received_and_reported,
    report_counts,
    run_backfill,
    sr_count,
    start_backfill,
    tiny_case,
)
from tests.support.environment import poll
from tests.support.service import SR_CLASS, Service

pytestmark = pytest.mark.timeout(300)


def _instances(service: Service) -> set[str]:
    with service.store.engine.connect() as conn:
        return {r[0] for r in conn.execute(text("SELECT sop_instance_uid FROM instances"))}


def test_backfill_scores_each_ivus_study_once(tmp_path: Path,
                                              make_service: Callable[..., Service],
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Right studies scored once, throttle measured, second run (--follow) finds nothing new."""
    service = make_service(backfill_follow_interval_seconds="2")
    orthanc = orthanc_for(tmp_path / "orthanc", service)
    try:
        service.env["SRSERVICE_DESTINATIONS"] = orthanc.destination
        service.env["SRSERVICE_BACKFILL_SOURCES"] = orthanc.destination
        case = tiny_case()
        ivus = [archive_pullback(orthanc, case, tmp_path / "archive") for _ in range(3)]
        with_sr = archive_pullback(orthanc, case, tmp_path / "archive")
        archive_our_sr(orthanc, with_sr)  # our SR of that study is already in the PACS
        ct = archive_other(orthanc, "CT")
        oct_ = archive_other(orthanc, "IVOCT")
        service.start()

        proc = start_backfill(service, "--source", "ORTHANC", "--max-in-flight", "2",
                              "--rate", "20")
        monkeypatch.setenv("SRSERVICE_DATA_DIR", str(service.data_dir))
        capsys.readouterr()

        def progress_in_jobs() -> str | None:
            assert cli_main(["jobs"]) == 0
            out = capsys.readouterr().out
            return out if "backfill 1 ORTHANC" in out and "ETA" in out else None

        shown = poll(progress_in_jobs, 60, "srservice jobs to show the backfill's progress")
        assert "found" in shown and "scored" in shown
        code = proc.proc.wait(150)
        output = proc.log.read_text()
        assert code == 0, output + service.logs()
        counts = report_counts(output)
        assert counts == {"found": 5, "already scored": 1, "nothing to score": 1,
                          "retrieved": 3, "scored": 3, "failed": 0}, output
        assert "SR in the PACS 1" in output and "ETA" in output

        uids = [s.sop_uid for s in ivus]
        for uid in uids:  # each scored exactly once
            jobs = service.jobs(uid)
            assert len(jobs) == 1 and jobs[0].state in ("reported", "delivered"), jobs
        assert _instances(service) == set(uids)  # no CT, no IVOCT, not the one with our SR
        assert not service.jobs(with_sr.sop_uid) and ct.sop_uid not in _instances(service)
        assert oct_.sop_uid not in _instances(service)
        for uid, study in zip(uids, ivus, strict=True):
            service.wait_job(uid, ("delivered",))
            assert sr_count(orthanc, study.study_uid) == 1
            # the real SR has the Series Instance UID the backfill looks for in the PACS
            (sr,) = [i for i in orthanc.instances() if i.get("StudyInstanceUID")
                     == study.study_uid and i.get("SOPClassUID") == SR_CLASS]
            assert sr["SeriesInstanceUID"] == derived_uid(uid, "sr-series")

        # Throttle, measured from the service's own records: at most 2 studies between the
        # arrival of their pullback and their report; arrivals >= 3 s apart (20 a minute),
        # less the C-MOVE's own variation.
        spans = received_and_reported(service, uids)
        assert max_overlap(spans) <= 2, spans
        arrivals = sorted(a for a, _ in spans)
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(arrivals)]
        assert min(gaps) >= 2.0, gaps
        started = sorted(s.started_at for s in service.store.backfill_studies(1)
                         if s.started_at)
        assert len(started) == 3
        assert min((b - a).total_seconds() for a, b in itertools.pairwise(started)) >= 2.95

        # Second run, continuous: finds nothing to do, then scores a study that reached the
        # PACS without being sent to us.
        follow = start_backfill(service, "--source", "ORTHANC", "--follow", log="follow.log")
        poll(lambda: "found:" in follow.log.read_text(), 90, "the first report of --follow")
        first = report_counts(follow.log.read_text())
        assert first == {"found": 5, "already scored": 4, "nothing to score": 1,
                         "retrieved": 0, "scored": 0, "failed": 0}, follow.tail()
        assert len(_instances(service)) == 3
        late = archive_pullback(orthanc, case, tmp_path / "archive", date="20250101")
        service.wait_job(late.sop_uid, ("delivered",), timeout=120)
        poll(lambda: report_counts(follow.log.read_text()).get("scored") == 1, 60,
             "--follow to report the new study scored")
        os.killpg(follow.proc.pid, signal.SIGTERM)
        assert follow.proc.wait(30) == 0, follow.tail()
        assert [len(service.jobs(u)) for u in [*uids, late.sop_uid]] == [1, 1, 1, 1]
        assert sr_count(orthanc, late.study_uid) == 1
    finally:
        orthanc.stop()


def test_interrupted_backfill_resumes_without_duplicates(
        tmp_path: Path, make_service: Callable[..., Service], pg_url: str) -> None:
    """SIGKILL of the backfill and of the whole service mid-run; the same command resumes."""
    service = make_service(database_url=pg_url)
    orthanc = orthanc_for(tmp_path / "orthanc", service)
    try:
        service.env["SRSERVICE_DESTINATIONS"] = orthanc.destination
        service.env["SRSERVICE_BACKFILL_SOURCES"] = orthanc.destination
        case = tiny_case()
        studies = [archive_pullback(orthanc, case, tmp_path / "archive") for _ in range(3)]
        service.start()
        proc = start_backfill(service, "--source", "ORTHANC", "--max-in-flight", "1",
                              "--rate", "30")

        def one_retrieved() -> bool:
            assert proc.alive(), proc.tail()
            rows = service.store.backfill_studies(1) if service.store.list_backfills() else []
            return any(r.retrieved_at is not None for r in rows)

        poll(one_retrieved, 90, "the first study to be retrieved", interval=0.2)
        proc.kill_group()
        assert service.serve is not None
        service.serve.kill_group()  # serve and its embedded worker
        states = [r.state for r in service.store.backfill_studies(1)]
        assert states.count(BackfillState.SCORED) < 3, states  # work left for the resume
        service.start()  # same data, same port
        code, output = run_backfill(service, "--source", "ORTHANC", "--max-in-flight", "3",
                                    "--rate", "120", log="resume.log")
        assert code == 0, output + service.logs()
        assert "resuming backfill run 1" in output
        counts = report_counts(output)
        assert counts["found"] == 3 and counts["scored"] == 3 and counts["failed"] == 0, output
        assert len(service.store.list_backfills()) == 1  # the same run, resumed
        for study in studies:
            jobs = service.jobs(study.sop_uid)
            assert len(jobs) == 1, jobs
            service.wait_job(study.sop_uid, ("delivered",))
            assert sr_count(orthanc, study.study_uid) == 1
    finally:
        orthanc.stop()
