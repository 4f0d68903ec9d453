"""An archive for the backfill tests: Orthanc holding tiny phantom IVUS studies and others.

Every study is synthetic: the phantom's pullbacks (8 frames of 128 x 128, written with new
Study/Series/SOP Instance UIDs so each is a new study) and minimal CT and IVOCT instances.
"""

from __future__ import annotations

import io
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydicom import Dataset, dcmread
from pydicom.dataset import FileMetaDataset
from pydicom.uid import (
    Comprehensive3DSRStorage,
    CTImageStorage,
    ExplicitVRLittleEndian,
    IntravascularOpticalCoherenceTomographyImageStorageForPresentation,
    generate_uid,
)
from sqlalchemy import text

from srservice.phantom import PhantomCase
from srservice.phantom.suite import small_case
from srservice.phantom.writer import write_pullback
from tests.support.orthanc import OrthancServer
from tests.support.service import Proc, Service


def tiny_case(seed: int = 3) -> PhantomCase:
    """A calcified phantom pullback of 8 frames of 128 x 128 (about 130 kB)."""
    return small_case("calcium", frames=8, rows=128, seed=seed)


@dataclass(frozen=True)
class ArchivedStudy:
    """A study put into the test PACS."""

    study_uid: str
    series_uid: str
    sop_uid: str
    path: Path | None


def archive_pullback(orthanc: OrthancServer, case: PhantomCase, directory: Path,
                     date: str = "20240102") -> ArchivedStudy:
    """Write ``case`` as a new IVUS study and store it in Orthanc."""
    study, series, sop = generate_uid(), generate_uid(), generate_uid()
    path = write_pullback(case, directory / f"{sop}.dcm", study_instance_uid=study,
                          series_instance_uid=series, sop_instance_uid=sop)
    ds = dcmread(path)
    ds.StudyDate = date
    ds.save_as(path, enforce_file_format=True)
    orthanc.upload(path.read_bytes())
    return ArchivedStudy(study, series, sop, path)


def archive_other(orthanc: OrthancServer, modality: str, date: str = "20240102") -> ArchivedStudy:
    """Store a one-instance study of another modality (``CT`` or ``IVOCT``), no pixels."""
    cls = CTImageStorage if modality == "CT" else \
        IntravascularOpticalCoherenceTomographyImageStorageForPresentation
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = cls
    ds.SOPClassUID, ds.SOPInstanceUID = cls, generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality, ds.StudyDate = "OTHER1", "OTHER^STUDY", \
        modality, date
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    orthanc.upload(buffer.getvalue())
    return ArchivedStudy(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, None)


def archive_our_sr(orthanc: OrthancServer, study: ArchivedStudy) -> None:
    """Store an SR with the UIDs our report of ``study``'s pullback has (as a service that
    lost its job store would have sent it); its content does not matter to the backfill."""
    from srservice.reporting.uids import derived_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = Comprehensive3DSRStorage
    ds.SOPClassUID = Comprehensive3DSRStorage
    ds.SOPInstanceUID = derived_uid(study.sop_uid, "sr-instance")
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = study.study_uid
    ds.SeriesInstanceUID = derived_uid(study.sop_uid, "sr-series")
    ds.PatientID, ds.PatientName, ds.Modality = "PHANTOM0001", "PHANTOM^IVUS", "SR"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    orthanc.upload(buffer.getvalue())


def orthanc_for(root: Path, service: Service, **extra: Any) -> OrthancServer:
    """An Orthanc that knows the service's AE title (so it can C-MOVE to it)."""
    modalities = {"srservice": ["SRSERVICE", "127.0.0.1", service.port]}
    return OrthancServer(root, DicomModalities=modalities, **extra).start()


def start_backfill(service: Service, *args: str, log: str = "backfill.log") -> Proc:
    """``srservice backfill`` as a child process with the service's settings."""
    return Proc(["backfill", *args], service.env, service.tmp / log)


def run_backfill(service: Service, *args: str, timeout: float = 150,
                 log: str = "backfill.log") -> tuple[int, str]:
    """Run ``srservice backfill`` to its end; return (exit status, its output)."""
    proc = start_backfill(service, *args, log=log)
    try:
        code = proc.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill_group()
        raise AssertionError(f"backfill did not finish in {timeout} s:\n{proc.tail(60)}\n"
                             f"{service.logs()}") from None
    proc.fh.close()
    return code, proc.log.read_text()


def report_counts(output: str) -> dict[str, int]:
    """The counts of the last report in a backfill's output (``found: 5`` ...)."""
    counts: dict[str, int] = {}
    for key in ("found", "already scored", "nothing to score", "retrieved", "scored",
                "failed"):
        values = re.findall(rf"^  {key}:\s+(\d+)", output, re.M)
        if values:
            counts[key] = int(values[-1])
    return counts


def received_and_reported(service: Service, uids: list[str]) -> list[tuple[datetime, datetime]]:
    """For each source instance: when the listener recorded it and when its job reported.

    Written by the service, not by the backfill: an independent measure of what was in flight.
    """
    out = []
    with service.store.engine.connect() as conn:
        for uid in uids:
            row = conn.execute(text(
                "SELECT min(i.received_at), min(j.reported_at) FROM instances i JOIN jobs j "
                "ON j.instance_id = i.id WHERE i.sop_instance_uid = :u"), {"u": uid}).one()
            received, reported = (v if isinstance(v, datetime) or v is None
                                  else datetime.fromisoformat(str(v)) for v in row)
            assert received is not None and reported is not None, (uid, row)
            out.append((received, reported))
    return out


def max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    """The largest number of intervals open at one moment."""
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals],
                    key=lambda e: (e[0], e[1]))
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def sr_count(orthanc: OrthancServer, study_uid: str) -> int:
    """How many Comprehensive 3D SR instances Orthanc holds in a study."""
    from tests.support.service import SR_CLASS

    return sum(1 for i in orthanc.instances()
               if i.get("StudyInstanceUID") == study_uid and i.get("SOPClassUID") == SR_CLASS)
