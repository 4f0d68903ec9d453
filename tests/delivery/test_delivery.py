"""Delivery: pynetdicom C-STORE/C-ECHO SCU against real SCPs, backoff, deadline, outbox."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, AllStoragePresentationContexts, evt

from srservice.cli.main import main as cli_main
from srservice.config import OUTBOX, Destination, Settings, load_settings
from srservice.delivery.attempt import deliver_one
from srservice.delivery.outbox import copy_to_outbox
from srservice.delivery.scu import c_echo as echo
from srservice.delivery.scu import c_store as store
from srservice.errors import DeliveryError
from srservice.jobs import JobState, JobStore, ReportRecord
from srservice.reporting.outputs import Outputs, write_outputs
from tests.support.environment import free_port
from tests.support.orthanc import OrthancServer

PDF_CLASS = "1.2.840.10008.5.1.4.1.1.104.1"
SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.34"


def output(sop_class: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.Modality = "DELIV", "SR" if sop_class == SR_CLASS else "DOC"
    return ds


class FakePacs:
    """A real pynetdicom Storage SCP whose C-STORE status can be chosen."""

    def __init__(self) -> None:
        self.status = 0x0000
        self.received: list[str] = []
        self.port = free_port()
        ae = AE(ae_title="FAKEPACS")
        ae.supported_contexts = AllStoragePresentationContexts
        ae.add_supported_context("1.2.840.10008.1.1")
        self._lock = threading.Lock()
        self.server = ae.start_server(("127.0.0.1", self.port), block=False,
                                      evt_handlers=[(evt.EVT_C_STORE, self._store)])

    def _store(self, event: Any) -> int:
        with self._lock:
            if self.status in (0x0000, 0xB000):
                self.received.append(str(event.request.AffectedSOPInstanceUID))
            return self.status

    @property
    def dest(self) -> Destination:
        return Destination(ae_title="FAKEPACS", host="127.0.0.1", port=self.port)


@pytest.fixture
def pacs() -> Iterator[FakePacs]:
    p = FakePacs()
    yield p
    p.server.shutdown()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "data", acse_timeout=5, dimse_timeout=5,
                         network_timeout=5)


def test_store_checks_each_status(pacs: FakePacs, settings: Settings) -> None:
    sr, pdf = output(SR_CLASS), output(PDF_CLASS)
    store(pacs.dest, [sr, pdf], settings)
    assert pacs.received == [sr.SOPInstanceUID, pdf.SOPInstanceUID]
    pacs.status = 0xB000  # warning: stored
    store(pacs.dest, [sr], settings)
    pacs.status = 0xA700
    with pytest.raises(DeliveryError, match="0xA700"):
        store(pacs.dest, [sr, pdf], settings)


def test_unreachable_destination_is_delivery_error(settings: Settings) -> None:
    dest = Destination(ae_title="NOBODY", host="127.0.0.1", port=free_port())
    with pytest.raises(DeliveryError, match="NOBODY"):
        store(dest, [output(SR_CLASS)], settings)
    with pytest.raises(DeliveryError):
        echo(dest, settings)


def test_echo_command_against_orthanc(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    orthanc = OrthancServer(tmp_path / "orthanc").start()
    try:
        monkeypatch.setenv("SRSERVICE_DATA_DIR", str(tmp_path / "data"))
        assert cli_main(["echo", orthanc.destination]) == 0
        assert "0x0000 (Success)" in capsys.readouterr().out
    finally:
        orthanc.stop()
    assert cli_main(["echo", orthanc.destination]) == 2  # down: one clear error line
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("srservice: error: DeliveryError")
    assert cli_main(["echo", "not-a-destination"]) == 2
    assert "AE@host:port" in capsys.readouterr().err


def reported_job(settings: Settings, jobs: JobStore, destinations: list[str]) -> int:
    from tests.support.jobs import stored

    job_id = jobs.add_instance(stored(generate_uid()), trigger="job").job_id
    assert job_id is not None
    jobs.claim_job(job_id, "me:1", stale_after_seconds=60)
    written = write_outputs(settings.outputs_dir / str(job_id),
                            Outputs(output(SR_CLASS), output(PDF_CLASS), {"ivus_calcium_score": 1}))
    rec = ReportRecord(str(written.directory), str(written.sr_path), str(written.pdf_path),
                       written.sr_sop_instance_uid, written.pdf_sop_instance_uid, 1,
                       {"ivus_calcium_score": 1})
    ids = jobs.finish_report(job_id, "me:1", rec, destinations,
                             settings.delivery_deadline_seconds)
    assert ids is not None
    return job_id


def test_destinations_are_independent_and_die_at_deadline(pacs: FakePacs,
                                                          tmp_path: Path) -> None:
    # The deadline (3 s after the report) is far beyond the first attempt (a refused connection
    # right away), so the down destination is retried before it dies, however slow the machine
    # is at writing the outputs or at the good destination's association.
    settings = load_settings(data_dir=tmp_path / "data", acse_timeout=2, dimse_timeout=2,
                             network_timeout=2, delivery_backoff_seconds=0.05,
                             delivery_backoff_max_seconds=0.1, delivery_deadline_seconds=3.0)
    jobs = JobStore(settings.effective_database_url)
    down = f"DOWN@127.0.0.1:{free_port()}"
    job_id = reported_job(settings, jobs, [str(pacs.dest), down])
    job = jobs.get_job(job_id)
    assert job is not None
    good, bad = job.deliveries
    outcomes = [deliver_one(settings, jobs, bad.id)]
    assert deliver_one(settings, jobs, good.id) == "delivered"
    assert len(pacs.received) == 2
    deadline = time.monotonic() + 20
    while outcomes[-1] != "dead" and time.monotonic() < deadline:
        time.sleep(0.05)
        outcomes.append(deliver_one(settings, jobs, bad.id))
    assert outcomes[-1] == "dead" and outcomes[:-1] and set(outcomes[:-1]) == {"retry"}, outcomes
    job = jobs.get_job(job_id)
    assert job is not None and job.state == JobState.DEAD
    states = {d.destination: d for d in job.deliveries}
    assert states[str(pacs.dest)].state == "delivered"
    assert states[down].state == "dead" and "deadline" in (states[down].last_error or "")
    assert jobs.retry_job(job_id, 60) == "deliveries"
    jobs.dispose()


def test_outbox_delivery_atomic_and_idempotent(settings: Settings, tmp_path: Path) -> None:
    jobs = JobStore(settings.effective_database_url)
    job_id = reported_job(settings, jobs, [OUTBOX])
    job = jobs.get_job(job_id)
    assert job is not None
    assert deliver_one(settings, jobs, job.deliveries[0].id) == "delivered"
    entry = settings.outbox_dir / f"job-{job_id}"
    assert sorted(p.name for p in entry.iterdir()) == ["pdf.dcm", "sr.dcm", "summary.json"]
    again = copy_to_outbox(settings.outbox_dir, job_id, [Path(job.sr_path or "")])
    assert again == entry and len(list(entry.iterdir())) == 3
    assert [p.name for p in settings.outbox_dir.iterdir()] == [entry.name]  # no temp left
    job = jobs.get_job(job_id)
    assert job is not None and job.state == JobState.DELIVERED
    jobs.dispose()
