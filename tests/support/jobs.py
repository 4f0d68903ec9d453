"""Inputs for the job store tests: stored-instance records, report records, PostgreSQL schemas
and a broker client that records what it was asked to send."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import UltrasoundMultiFrameImageStorage

from srservice.jobs import ReportRecord
from srservice.listener.spool import StoredInstance
from tests.support.environment import missing

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def pg_schema_url() -> Iterator[str]:
    """Yield a URL on a fresh PostgreSQL schema, dropped afterwards."""
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        admin = sa.create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        missing(f"PostgreSQL at 127.0.0.1:5432 not reachable: {exc}")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def stored(uid: str = "1.2.3.4", sha: str = "a" * 64, *,
           cls: str = UltrasoundMultiFrameImageStorage, modality: str = "IVUS",
           frames: int = 40, series: str = "1.2.3.9") -> StoredInstance:
    """A spool record of an instance that is not on disk (for the job store alone)."""
    return StoredInstance(sop_class_uid=cls, sop_instance_uid=uid, study_instance_uid="1.2.3",
                          series_instance_uid=series, modality=modality, number_of_frames=frames,
                          transfer_syntax_uid="1.2.840.10008.1.2.1",
                          path=Path(f"/spool/{uid}.{sha[:16]}.dcm"), sha256=sha, size=100,
                          calling_ae="CONSOLE", peer_host="127.0.0.1",
                          received_at=datetime.now(UTC))


def stored_from_file(path: Path, calling_ae: str = "CONSOLE") -> StoredInstance:
    """The spool record of a DICOM file as it is (its header and a hash of all its bytes)."""
    ds = dcmread(path, stop_before_pixels=True)
    return StoredInstance(
        sop_class_uid=str(ds.SOPClassUID), sop_instance_uid=str(ds.SOPInstanceUID),
        study_instance_uid=str(ds.StudyInstanceUID),
        series_instance_uid=str(ds.SeriesInstanceUID), modality=str(ds.Modality),
        number_of_frames=int(ds.get("NumberOfFrames", 1) or 1),
        transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID), path=path,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(), size=path.stat().st_size,
        calling_ae=calling_ae, peer_host="127.0.0.1", received_at=datetime.now(UTC))


def record(job_id: int) -> ReportRecord:
    """A report record with made-up paths and UIDs."""
    return ReportRecord(output_dir=f"/out/{job_id}", sr_path=f"/out/{job_id}/sr.dcm",
                        pdf_path=f"/out/{job_id}/pdf.dcm", sr_sop_instance_uid="2.25.1",
                        pdf_sop_instance_uid="2.25.2", score_total=3,
                        summary={"ivus_calcium_score": 3})


class SentRecorder:
    """A broker client that records the ids it is asked to send; ``ok=False``: broker down."""

    def __init__(self, ok: bool = True) -> None:
        self.ok = ok
        self.jobs: list[int] = []
        self.deliveries: list[int] = []

    def analyze(self, job_id: int) -> bool:
        self.jobs.append(job_id)
        return self.ok

    def deliver(self, delivery_id: int) -> bool:
        self.deliveries.append(delivery_id)
        return self.ok
