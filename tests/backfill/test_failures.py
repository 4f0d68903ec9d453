"""Backfill against PACS that refuse or do not answer, C-GET, and the throttle's parts.

The engine runs in-process here (the command line and the service are exercised by
``test_backfill.py``); the PACS are a real Orthanc and a real pynetdicom SCP over TCP.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pydicom import Dataset
from pydicom.uid import UltrasoundMultiFrameImageStorage, generate_uid
from pynetdicom import AE, evt

from srservice import sopclasses
from srservice.backfill.progress import progress_text, report_text
from srservice.backfill.run import Backfill, Limits
from srservice.backfill.throttle import RateLimit, TimeWindow
from srservice.cli.main import main as cli_main
from srservice.config import Settings, Source, load_settings
from srservice.jobs import JobStore
from srservice.jobs.models import BackfillState
from tests.support.backfill import archive_other, archive_pullback, tiny_case
from tests.support.environment import free_port
from tests.support.orthanc import OrthancServer

pytestmark = pytest.mark.timeout(120)


def _settings(tmp_path: Path, source: str, **extra: Any) -> Settings:
    return load_settings(data_dir=tmp_path / "data", backfill_sources=source, acse_timeout=5,
                         dimse_timeout=extra.pop("dimse_timeout", 10), network_timeout=10,
                         min_free_disk_mb=0, **extra)


def _run(settings: Settings) -> tuple[JobStore, Any]:
    store = JobStore(settings.effective_database_url)
    engine = Backfill(settings, store, settings.backfill_sources[0], Limits.of(settings))
    return store, engine.run()


def test_pacs_refusing_c_move_gives_each_study_its_reason(tmp_path: Path) -> None:
    """Orthanc does not allow our AE title to C-MOVE (it answers with an A-ABORT): each study
    fails with that as its reason. (A move to an AE title Orthanc does not know, answered
    with a failure status, is in :func:`test_dry_run_then_move_to_an_unknown_destination`.)"""
    expected = "the PACS aborted the association without a C-MOVE response (refused"
    orthanc = OrthancServer(tmp_path / "orthanc", DicomModalities={"srservice": {
        "AET": "SRSERVICE", "Host": "127.0.0.1", "Port": 1, "AllowMove": False}}).start()
    try:
        studies = [archive_pullback(orthanc, tiny_case(), tmp_path / "a") for _ in range(2)]
        settings = _settings(tmp_path, orthanc.destination,
                             backfill_max_studies_per_minute=600)
        store, run = _run(settings)
        rows = store.backfill_studies(run.id)
        assert {r.study_instance_uid for r in rows} == {s.study_uid for s in studies}
        assert all(r.state == BackfillState.FAILED for r in rows), rows
        for row in rows:
            assert row.reason is not None and row.reason.startswith("C-MOVE of series 1/1: "
                                                                    "RetrieveError: ORTHANC@")
            assert expected in row.reason, row.reason
        report = report_text(run, rows)
        assert "failed:           2" in report and rows[0].reason in report
        store.dispose()
    finally:
        orthanc.stop()


class SilentMovePacs:
    """Answers C-FIND with one IVUS study; its C-MOVE never answers."""

    def __init__(self) -> None:
        self.port = free_port()
        self.study, self.series, self.sop = generate_uid(), generate_uid(), generate_uid()
        self.release = threading.Event()
        self.moves = 0
        ae = AE(ae_title="SILENT")
        ae.add_supported_context(sopclasses.STUDY_ROOT_FIND)
        ae.add_supported_context(sopclasses.STUDY_ROOT_MOVE)
        self.server = ae.start_server(("127.0.0.1", self.port), block=False, evt_handlers=[
            (evt.EVT_C_FIND, self._find), (evt.EVT_C_MOVE, self._move)])

    def _find(self, event: Any) -> Iterator[tuple[int, Dataset | None]]:
        level = event.identifier.QueryRetrieveLevel
        match = Dataset()
        match.QueryRetrieveLevel = level
        match.StudyInstanceUID = self.study
        if level == "STUDY":
            match.StudyDate = "20240101"
        if level in ("SERIES", "IMAGE"):
            match.SeriesInstanceUID, match.Modality = self.series, "IVUS"
        if level == "IMAGE":
            match.SOPInstanceUID, match.SOPClassUID = self.sop, UltrasoundMultiFrameImageStorage
            match.NumberOfFrames = 8
        modality = str(event.identifier.get("ModalitiesInStudy", "") or "")
        if level != "STUDY" or modality == "IVUS":
            yield 0xFF00, match
        yield 0x0000, None

    def _move(self, event: Any) -> Iterator[Any]:
        self.moves += 1
        self.release.wait(20)
        yield "127.0.0.1", 1
        yield 0


def test_pacs_not_answering_c_move_times_out_with_a_reason(tmp_path: Path) -> None:
    pacs = SilentMovePacs()
    try:
        settings = _settings(tmp_path, f"SILENT@127.0.0.1:{pacs.port}", dimse_timeout=2)
        store, run = _run(settings)
        (row,) = store.backfill_studies(run.id)
        assert row.study_instance_uid == pacs.study and row.state == BackfillState.FAILED
        assert row.reason == (f"C-MOVE of series 1/1: RetrieveError: SILENT@127.0.0.1:"
                              f"{pacs.port}: no C-MOVE response within 2 s (association "
                              "aborted)"), row.reason
        store.dispose()
    finally:
        pacs.release.set()
        pacs.server.shutdown()


def test_c_get_puts_the_pullback_into_the_pipeline(tmp_path: Path) -> None:
    """C-GET from Orthanc: the IVUS instance is spooled and becomes a job; the CT is not
    retrieved. No worker runs here, so the study then fails for want of a score in time."""
    orthanc = OrthancServer(tmp_path / "orthanc", DicomAlwaysAllowGet=True,
                            DicomAlwaysAllowFind=True).start()
    try:
        study = archive_pullback(orthanc, tiny_case(), tmp_path / "a")
        archive_other(orthanc, "CT")
        settings = _settings(tmp_path, orthanc.destination + "+get",
                             backfill_study_timeout_seconds=1)
        store, run = _run(settings)
        (row,) = store.backfill_studies(run.id)
        assert row.retrieved_at is not None and row.state == BackfillState.FAILED
        (job,) = store.list_jobs(sop_instance_uid=study.sop_uid)
        assert row.reason == f"not scored within 1 s of the retrieve: job {job.id} still " \
                             f"{job.state}", row.reason
        assert job.study_instance_uid == study.study_uid
        (inputs,) = store.job_inputs(job.id)
        assert Path(inputs.path).is_file() and inputs.calling_ae == "ORTHANC"
        assert len(store.list_jobs()) == 1
        store.dispose()
    finally:
        orthanc.stop()


def test_time_window_and_rate() -> None:
    night = TimeWindow.parse("22:00-06:00")
    assert night.is_open(datetime(2026, 1, 1, 23, 30)) and night.is_open(datetime(2026, 1, 1, 5))
    assert not night.is_open(datetime(2026, 1, 1, 12, 0))
    assert night.next_open(datetime(2026, 1, 1, 12, 0)) == datetime(2026, 1, 1, 22, 0)
    day = TimeWindow.parse("08:30-17:00")
    assert day.next_open(datetime(2026, 1, 1, 18, 0)) == datetime(2026, 1, 2, 8, 30)
    assert str(day) == "08:30-17:00"
    rate = RateLimit(6.0, last_start=100.0)
    assert rate.wait_seconds(now=105.0) == 5.0 and rate.wait_seconds(now=111.0) == 0.0
    rate.started(now=111.0)
    assert rate.wait_seconds(now=112.0) == 9.0


def test_source_syntax() -> None:
    source = Source.parse("PACS@10.0.0.5:104+tls+series+get")
    assert (source.tls, source.series_level, source.use_get) == (True, True, True)
    assert str(source) == "PACS@10.0.0.5:104+tls+series+get"
    assert str(Source.parse("PACS@pacs:104")) == "PACS@pacs:104"
    with pytest.raises(ValueError, match=r"\+tls, \+series, \+get"):
        Source.parse("PACS@pacs:104+fast")


def test_closed_window_retrieves_nothing(tmp_path: Path) -> None:
    """Outside the window nothing is retrieved; the progress says when it opens."""
    pacs = SilentMovePacs()
    now = datetime.now()
    start = (now.hour + 2) % 24
    window = f"{start:02d}:00-{(start + 1) % 24:02d}:00"
    try:
        settings = _settings(tmp_path, f"SILENT@127.0.0.1:{pacs.port}", backfill_window=window)
        store = JobStore(settings.effective_database_url)
        stop = threading.Event()
        seen: list[str] = []

        def progress(view: Any) -> None:
            seen.append(progress_text(view))
            if len(seen) > 5:
                stop.set()

        Backfill(settings, store, settings.backfill_sources[0], Limits.of(settings),
                 stop=stop, on_progress=progress).run()
        assert any(f"outside the window {window}" in line for line in seen), seen
        (row,) = store.backfill_studies(1)
        assert row.state == BackfillState.TO_RETRIEVE and row.started_at is None
        assert "interrupted" in seen[-1]
        store.dispose()
    finally:
        pacs.release.set()
        pacs.server.shutdown()


def test_dry_run_then_move_to_an_unknown_destination(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """STUDY-level (Modalities In Study) and SERIES-level (Modality) queries with date ranges
    record nothing; then a real run, which Orthanc refuses with a status (it does not know
    our AE title as a move destination)."""
    orthanc = OrthancServer(tmp_path / "orthanc", DicomAlwaysAllowFind=True,
                            DicomAlwaysAllowMove=True).start()
    try:
        old = archive_pullback(orthanc, tiny_case(), tmp_path / "a", date="20240102")
        new = archive_pullback(orthanc, tiny_case(), tmp_path / "a", date="20250101")
        archive_other(orthanc, "CT", date="20250101")
        ivoct = archive_other(orthanc, "IVOCT", date="20250102")
        monkeypatch.setenv("SRSERVICE_DATA_DIR", str(tmp_path / "data"))
        for level in ("", "+series"):
            source = orthanc.destination + level
            assert cli_main(["backfill", "--source", source, "--since", "2024-06-01",
                             "--dry-run"]) == 0
            lines = capsys.readouterr().out.splitlines()
            assert lines[0] == f"{new.study_uid} 20250101 to-retrieve 1 pullback to score"
            assert lines[1].startswith(f"{ivoct.study_uid} 20250102 nothing-to-score no IVUS "
                                       "pullback the service analyses (IVOCT x1)")
            assert lines[2] == "dry run: 1 nothing-to-score, 1 to-retrieve; nothing " \
                               "retrieved or recorded"
            assert cli_main(["backfill", "--source", source, "--until", "2024-01-02",
                             "--dry-run"]) == 0
            lines = capsys.readouterr().out.splitlines()
            assert lines[0].startswith(f"{old.study_uid} 20240102 to-retrieve")
            assert len(lines) == 2
        store = JobStore(load_settings(data_dir=tmp_path / "data").effective_database_url)
        assert store.list_backfills() == [] and store.list_jobs() == []
        store.dispose()
        settings = _settings(tmp_path, orthanc.destination, backfill_max_studies_per_minute=600)
        store, run = _run(settings)
        rows = {r.study_instance_uid: r for r in store.backfill_studies(run.id)}
        assert rows[ivoct.study_uid].state == BackfillState.NOTHING_TO_SCORE
        for study in (old, new):
            assert rows[study.study_uid].state == BackfillState.FAILED
            assert rows[study.study_uid].reason == (
                f"C-MOVE of series 1/1: RetrieveError: {orthanc.destination}: C-MOVE refused "
                "with status 0xC000 (unable to process)")
        store.dispose()
    finally:
        orthanc.stop()


def test_pullback_scored_by_another_algorithm_version_is_rescored_from_the_spool(
        tmp_path: Path) -> None:
    """The job store knows the pullback from an earlier version: a new job, no C-MOVE."""
    from sqlalchemy import update

    from srservice import ALGORITHM_VERSION
    from srservice.jobs.models import Job
    from tests.support.jobs import stored

    pacs = SilentMovePacs()
    try:
        settings = _settings(tmp_path, f"SILENT@127.0.0.1:{pacs.port}", dimse_timeout=2,
                             backfill_study_timeout_seconds=1)
        store = JobStore(settings.effective_database_url)
        old = store.add_instance(stored(pacs.sop, series=pacs.series), trigger="job").job_id
        with store.engine.begin() as conn:
            conn.execute(update(Job).where(Job.id == old).values(
                algorithm_version="0.0-earlier", state="delivered", sr_path="/x/sr.dcm"))
        engine = Backfill(settings, store, settings.backfill_sources[0], Limits.of(settings))
        assert engine.examine(pacs.study).units[0].rescore
        run = engine.run()
        (row,) = store.backfill_studies(run.id)
        (new, earlier) = store.list_jobs(sop_instance_uid=pacs.sop)
        assert earlier.id == old and earlier.algorithm_version == "0.0-earlier"
        assert new.algorithm_version == ALGORITHM_VERSION and new.instance_id == earlier.instance_id
        assert pacs.moves == 0 and row.retrieved_at is not None
        assert row.reason == f"not scored within 1 s of the retrieve: job {new.id} still " \
                             f"{new.state}", row.reason
        assert engine.store.add_rescore_job(pacs.sop) is None  # once only
        store.dispose()
    finally:
        pacs.release.set()
        pacs.server.shutdown()
