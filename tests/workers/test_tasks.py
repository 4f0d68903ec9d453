"""Celery app configuration and the task bodies run in-process on a real job store.

The real analysis, reporting and outbox are used; real Celery worker processes are exercised
by tests/test_e2e*.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import UltrasoundImageStorage as US_IMAGE
from pydicom.uid import UltrasoundMultiFrameImageStorage as US_MULTIFRAME
from pydicom.uid import generate_uid

from srservice.config import Settings, load_settings
from srservice.jobs import JobState, JobStore
from srservice.jobs.dispatch import ANALYZE_TASK, DELIVER_TASK, celery_config
from srservice.jobs.intake import make_on_stored
from srservice.jobs.runner import Heartbeat
from srservice.jobs.sweeper import sweep_once
from srservice.listener.spool import StoredInstance
from tests.support.jobs import SentRecorder, stored_from_file
from workers.app import create_app


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Settings, JobStore]]:
    settings = load_settings(data_dir=tmp_path / "data", single_frame_quiet_seconds=0.0)
    create_app(settings)  # the task bodies read this process's settings
    store = JobStore(settings.effective_database_url)
    yield settings, store
    store.dispose()


@pytest.fixture(scope="module")
def pullback_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from srservice.phantom import small_case
    from srservice.phantom.writer import write_pullback

    return write_pullback(small_case("calcium", frames=20, rows=128),
                          tmp_path_factory.mktemp("pb") / "pullback.dcm")


def test_celery_config_is_safe() -> None:
    s = load_settings(broker_url="redis://127.0.0.1:6379/3", task_time_limit=100)
    conf = celery_config(s)
    assert conf["accept_content"] == ["json"] and conf["task_serializer"] == "json"
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_prefetch_multiplier"] == 1 and conf["task_ignore_result"]
    assert conf["broker_transport_options"]["visibility_timeout"] > conf["task_time_limit"]
    assert conf["task_soft_time_limit"] < conf["task_time_limit"]
    assert conf["broker_url"] == "redis://127.0.0.1:6379/3"


def test_filesystem_broker_is_default(tmp_path: Path) -> None:
    conf = celery_config(load_settings(data_dir=tmp_path))
    assert conf["broker_url"].startswith("filesystem://")
    opts = conf["broker_transport_options"]
    assert opts["data_folder_in"] == opts["data_folder_out"]
    assert Path(opts["data_folder_in"]).is_dir()
    assert Path(opts["control_folder"]).parent == Path(opts["data_folder_in"]).parent
    app = create_app(load_settings(data_dir=tmp_path))
    assert {ANALYZE_TASK, DELIVER_TASK} <= set(app.tasks)


def test_analyze_and_deliver_to_outbox_idempotent(env: tuple[Settings, JobStore],
                                                  pullback_file: Path) -> None:
    from workers.tasks import analyze_job, deliver

    settings, store = env
    rec = SentRecorder()
    make_on_stored(settings, store, rec)(stored_from_file(pullback_file))
    (job_id,) = rec.jobs
    assert analyze_job(job_id) == "reported"
    assert analyze_job(job_id) == "done"  # redelivered message: nothing happens
    job = store.get_job(job_id)
    assert job is not None and job.state == JobState.REPORTED and job.attempts == 1
    assert job.sr_path and Path(job.sr_path).is_file()
    sr = dcmread(job.sr_path)
    assert sr.SOPInstanceUID == job.sr_sop_instance_uid
    assert job.summary is not None and job.summary["ivus_calcium_score"] == job.score_total
    (delivery,) = job.deliveries
    assert delivery.destination == "outbox"
    assert deliver(delivery.id) == "delivered"
    assert deliver(delivery.id) == "skipped"
    job = store.get_job(job_id)
    assert job is not None and job.state == JobState.DELIVERED
    entry = settings.outbox_dir / f"job-{job_id}"
    assert sorted(p.name for p in entry.iterdir()) == ["pdf.dcm", "pr.dcm", "sr.dcm",
                                                       "summary.json"]
    assert dcmread(entry / "sr.dcm").SOPInstanceUID == sr.SOPInstanceUID
    pr = dcmread(entry / "pr.dcm")
    assert pr.Modality == "PR" and pr.StudyInstanceUID == sr.StudyInstanceUID


def test_undecodable_input_fails_with_reason(env: tuple[Settings, JobStore],
                                             tmp_path: Path, pullback_file: Path) -> None:
    from workers.tasks import analyze_job

    settings, store = env
    broken = tmp_path / "broken.dcm"
    data = pullback_file.read_bytes()
    broken.write_bytes(data[: len(data) // 3])  # truncated pixel data
    rec = SentRecorder()
    inst = stored_from_file(pullback_file)
    make_on_stored(settings, store, rec)(StoredInstance(**{
        **inst.__dict__, "path": broken, "sop_instance_uid": generate_uid(),
        "sha256": hashlib.sha256(broken.read_bytes()).hexdigest()}))
    assert analyze_job(rec.jobs[0]) == "failed"
    job = store.get_job(rec.jobs[0])
    assert job is not None and job.state == JobState.FAILED
    assert job.reason and "Error" in job.reason and "\n" not in job.reason


def test_superseding_content_gets_new_report_uids(env: tuple[Settings, JobStore],
                                                  pullback_file: Path,
                                                  tmp_path: Path) -> None:
    from workers.tasks import analyze_job

    settings, store = env
    rec = SentRecorder()
    on_stored = make_on_stored(settings, store, rec)
    on_stored(stored_from_file(pullback_file))
    ds = dcmread(pullback_file)
    ds.PatientComments = "re-sent with corrected header"
    second = tmp_path / "second.dcm"
    ds.save_as(second)
    on_stored(stored_from_file(second))
    first_id, second_id = rec.jobs
    assert analyze_job(second_id) == "reported"
    assert analyze_job(first_id) == "done"  # superseded before it ran
    old, new = store.get_job(first_id), store.get_job(second_id)
    assert old is not None and new is not None
    assert old.state == JobState.FAILED and "superseded" in (old.reason or "")
    from srservice.reporting.uids import derived_uid

    assert new.revision and new.sr_sop_instance_uid != derived_uid(ds.SOPInstanceUID,
                                                                   "sr-instance")
    sr = dcmread(new.sr_path or "")
    assert sr.SOPInstanceUID == new.sr_sop_instance_uid
    assert sr.file_meta.MediaStorageSOPInstanceUID == sr.SOPInstanceUID
    assert new.summary and new.summary["sr_sop_instance_uid"] == sr.SOPInstanceUID


def test_single_frame_series_job(env: tuple[Settings, JobStore], pullback_file: Path,
                                 tmp_path: Path) -> None:
    from workers.tasks import analyze_job

    settings, store = env
    src = dcmread(pullback_file)
    frames = src.pixel_array
    series_uid = generate_uid()
    rec = SentRecorder()
    on_stored = make_on_stored(settings, store, rec)
    order = list(range(len(frames)))[::-1]  # arrive in reverse order
    by_number: dict[int, str] = {}
    for i in order:
        ds = dcmread(pullback_file)
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = US_IMAGE
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID, ds.InstanceNumber = series_uid, i + 1
        by_number[i + 1] = str(ds.SOPInstanceUID)
        for kw in ("NumberOfFrames", "FrameIncrementPointer", "FrameTime"):
            if kw in ds:
                delattr(ds, kw)
        ds.PixelData = frames[i].tobytes()
        path = tmp_path / f"f{i:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        on_stored(stored_from_file(path))
    assert rec.jobs == []  # waits for the quiet period
    jobs = store.list_jobs()
    assert len(jobs) == 1 and jobs[0].kind == "series"
    found = sweep_once(settings, store, rec)
    assert found.jobs == (jobs[0].id,)
    assert analyze_job(jobs[0].id) == "reported"
    job = store.get_job(jobs[0].id)
    assert job is not None and job.summary is not None
    assert job.summary["frame_count"] == len(frames)
    uids = job.summary["source_sop_instance_uids"]
    assert uids == [by_number[k] for k in sorted(by_number)]  # frame order = Instance Number
    sr = dcmread(job.sr_path or "")
    evidence = {item.ReferencedSOPInstanceUID
                for study in sr.CurrentRequestedProcedureEvidenceSequence
                for series in study.ReferencedSeriesSequence
                for item in series.ReferencedSOPSequence}
    assert evidence == set(uids)
    stack, frame_numbers = list(sr.ContentSequence), []
    while stack:
        item = stack.pop()
        if item.get("ValueType") == "IMAGE":
            ref = item.ReferencedSOPSequence[0]
            assert ref.ReferencedSOPInstanceUID in evidence
            frame_numbers += [ref] if "ReferencedFrameNumber" in ref else []
        stack.extend(item.get("ContentSequence", []))
    assert frame_numbers == []  # single-frame instances: no Referenced Frame Number


def test_heartbeat_refreshes(env: tuple[Settings, JobStore], pullback_file: Path) -> None:
    settings, store = env
    rec = SentRecorder()
    make_on_stored(settings, store, rec)(stored_from_file(pullback_file))
    job_id = rec.jobs[0]
    store.claim_job(job_id, "me:1", stale_after_seconds=60)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE jobs SET heartbeat_at = '2000-01-01 00:00:00'")
    with Heartbeat(store, job_id, "me:1", 0.05):
        import time

        time.sleep(0.3)
    found = store.sweep(stuck_seconds=30, grace_seconds=0, alive=lambda _o: True)
    assert job_id not in found.jobs  # fresh heartbeat: not considered lost
    assert US_MULTIFRAME  # (the class the pullback uses)


def test_configuration_doc_lists_every_setting() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    missing_names = [n for n in Settings.model_fields if f"`SRSERVICE_{n.upper()}`" not in doc]
    assert missing_names == []


def test_worker_module_reads_no_settings_at_import() -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "SRSERVICE_PORT": "not-a-port"}
    code = ("import workers.app, workers.tasks; "
            "print(sorted(t for t in workers.app.app.tasks if t.startswith('workers.')))")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert "workers.tasks.analyze_job" in done.stdout


def test_jobs_and_retry_commands(env: tuple[Settings, JobStore], tmp_path: Path,
                                 pullback_file: Path, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from srservice.cli.main import main as cli_main

    settings, store = env
    monkeypatch.setenv("SRSERVICE_DATA_DIR", str(settings.data_dir))
    rec = SentRecorder()
    make_on_stored(settings, store, rec)(stored_from_file(pullback_file))
    job_id = rec.jobs[0]
    store.claim_job(job_id, "me:1", stale_after_seconds=60)
    store.fail_job(job_id, "me:1", "InvalidDicomError: test")
    assert cli_main(["jobs", "--state", "failed"]) == 0
    table = capsys.readouterr().out
    assert "InvalidDicomError: test" in table and f"{job_id:>6} failed" in table
    assert cli_main(["jobs", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["id"] == job_id and listed[0]["state"] == "failed"
    assert cli_main(["retry", str(job_id)]) == 0
    assert "re-queued (analysis)" in capsys.readouterr().out
    job = store.get_job(job_id)
    assert job is not None and job.state == JobState.QUEUED and job.attempts == 0
    assert list((settings.data_dir / "broker" / "out").iterdir())  # the task was sent
    assert cli_main(["retry", str(job_id)]) == 1  # queued: not retryable
    assert cli_main(["retry", "99999"]) == 1
