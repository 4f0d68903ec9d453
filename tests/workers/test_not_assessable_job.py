"""A pullback that cannot be scored is a reported, delivered job, shown as "not assessable".

The task bodies run in-process on a real job store and the real outbox. The analysis is the
real one; its verdict is set to "cannot be scored" here (the analysis decides that on real
input; what is tested is what the job store, the outputs and ``srservice jobs`` do with it).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread

from srservice.analysis import pipeline
from srservice.analysis.types import Pullback, PullbackAnalysis
from srservice.config import Settings, load_settings
from srservice.jobs import JobState, JobStore
from srservice.jobs.intake import make_on_stored
from tests.support.jobs import SentRecorder, stored_from_file
from workers.app import create_app

REASON = "no assessable frame of 12 (at least 10 needed): transducer inside the guide catheter"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Settings, JobStore]]:
    settings = load_settings(data_dir=tmp_path / "data", single_frame_quiet_seconds=0.0)
    create_app(settings)  # the task bodies read this process's settings
    store = JobStore(settings.effective_database_url)
    yield settings, store
    store.dispose()


@pytest.fixture
def pullback_file(tmp_path: Path) -> Path:
    from srservice.phantom import small_case
    from srservice.phantom.writer import write_pullback

    return write_pullback(small_case("calcium", frames=12, rows=128), tmp_path / "pb.dcm")


@pytest.fixture
def not_assessable(monkeypatch: pytest.MonkeyPatch) -> None:
    real = pipeline.analyze_pullback

    def analyze(pullback: Pullback) -> PullbackAnalysis:
        return dataclasses.replace(real(pullback), lesions=(), reason=REASON)

    monkeypatch.setattr(pipeline, "analyze_pullback", analyze)


@pytest.mark.usefixtures("not_assessable")
def test_not_assessable_job_is_reported_delivered_and_listed(
        env: tuple[Settings, JobStore], pullback_file: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from srservice.cli.main import main as cli_main
    from workers.tasks import analyze_job, deliver

    settings, store = env
    rec = SentRecorder()
    make_on_stored(settings, store, rec)(stored_from_file(pullback_file))
    (job_id,) = rec.jobs
    assert analyze_job(job_id) == "reported"
    job = store.get_job(job_id)
    assert job is not None and job.state == JobState.REPORTED and job.reason is None
    assert job.score_total is None and job.summary is not None
    assert job.summary["assessable"] is False and job.summary["reason"] == REASON
    assert job.assessable is False and job.result == f"not assessable: {REASON}"
    (delivery,) = job.deliveries
    assert deliver(delivery.id) == "delivered"
    job = store.get_job(job_id)
    assert job is not None and job.state == JobState.DELIVERED
    entry = settings.outbox_dir / f"job-{job_id}"
    sr = dcmread(entry / "sr.dcm")
    texts = [item.TextValue for item in sr.ContentSequence[-1].ContentSequence]
    assert any(t.startswith(f"IVUS calcium score cannot be determined: {REASON}")
               for t in texts)
    assert json.loads((entry / "summary.json").read_text())["ivus_calcium_score"] is None

    monkeypatch.setenv("SRSERVICE_DATA_DIR", str(settings.data_dir))
    assert cli_main(["jobs"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines()
               if line.startswith(f"{job_id:>6} "))
    assert " delivered " in row and " n/a " in row and row.endswith(f"not assessable: {REASON}")
    assert cli_main(["jobs", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["state"] == "delivered" and listed["assessable"] is False
    assert listed["result"] == f"not assessable: {REASON}" and listed["score_total"] is None
