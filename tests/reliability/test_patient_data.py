"""Patient data through the real service: cleaned in the reports, absent from every log, and
in files no other local user can read.

One ``srservice serve`` with its embedded worker (filesystem broker, SQLite job store, outbox,
log level DEBUG) receives a pullback whose Patient Name holds control characters (BEL, CR,
LF, ESC), no component delimiter (highdicom warns about such a name, quoting it) and 10,000
characters.
The reports must carry the name cleaned and capped to 64 characters (PS3.5 Table 6.2-1); no
log or audit file may hold the name, the Patient ID or the birth date; every file the service
created must be closed to other users (umask 027 in ``serve`` and ``worker``).
"""

from __future__ import annotations

import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest

from srservice.phantom import small_case
from srservice.phantom.writer import write_pullback
from tests.support import figures
from tests.support.environment import require_tool
from tests.support.service import Service, c_store

pytestmark = pytest.mark.timeout(300)

FAMILY, GIVEN = "Kxqvzt", "Wymbrel"
NAME = f"{FAMILY}\x07\r\n{GIVEN}\x1b" + "Q" * 10_000
PATIENT_ID = "PIDZQX4711"
BIRTH_DATE = "19230417"
#: Every spelling of the patient data a log line could carry.
SECRETS = (FAMILY, GIVEN, PATIENT_ID, BIRTH_DATE, "1923-04-17", "QQQQQQQQ")


@dataclass
class Delivered:
    service: Service
    uid: str
    outbox_entry: Path


@pytest.fixture(scope="module")
def delivered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Delivered]:
    tmp = tmp_path_factory.mktemp("patient-data")
    case = small_case("calcium", frames=12, rows=128)
    ds = pydicom.dcmread(write_pullback(case, tmp / "source.dcm"))
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = BIRTH_DATE
    uid = str(ds.SOPInstanceUID)
    service = Service(tmp, single_frame_quiet_seconds="1", log_level="DEBUG").start()
    try:
        assert c_store(ds, service.port) == 0x0000
        job = service.wait_job(uid, ("delivered", "failed", "dead"), timeout=180)
        assert job.state == "delivered", (job.reason, service.logs())
        entries = list((service.data_dir / "outbox").glob(f"job-{job.id}"))
        assert len(entries) == 1
        yield Delivered(service, uid, entries[0])
    finally:
        service.stop()


def test_names_are_cleaned_in_the_reports(delivered: Delivered, tmp_path: Path) -> None:
    sr = pydicom.dcmread(delivered.outbox_entry / "sr.dcm")
    pdf = pydicom.dcmread(delivered.outbox_entry / "pdf.dcm")
    for ds in (sr, pdf):
        name = str(ds.PatientName)
        assert name.startswith(f"{FAMILY}  {GIVEN}QQ"), repr(name[:40])
        assert len(name) <= 64 and all(ord(ch) >= 0x20 for ch in name), repr(name)
        assert ds.SpecificCharacterSet == "ISO_IR 192"
    # the name as the PDF page draws it: no control character, 64 characters at most
    doc = tmp_path / "report.pdf"
    doc.write_bytes(pdf.EncapsulatedDocument[:pdf.EncapsulatedDocumentLength])
    text = subprocess.run([require_tool("pdftotext"), "-l", "1", doc, "-"], capture_output=True,
                          text=True, check=True, timeout=60).stdout
    line = next(ln for ln in text.splitlines() if FAMILY in ln)
    assert "\x07" not in text and "\x1b" not in text
    assert "Q" * 49 in line and "Q" * 50 not in line, line  # 64 characters in all
    figures.record("patient data", "Patient Name sent / in the reports (characters)",
                   f"{len(NAME)} / {len(str(sr.PatientName))}")


def _log_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix == ".log")


def test_no_patient_data_in_any_log(delivered: Delivered) -> None:
    service = delivered.service
    service.stop()  # every line flushed
    logs = _log_files(service.tmp)
    names = {p.name for p in logs}
    assert {"serve.log", "audit.log"} <= names, names
    found = []
    lines = 0
    for path in logs:
        text = path.read_text(encoding="utf-8", errors="replace")
        lines += text.count("\n")
        found += [f"{path.name}: {s}" for s in SECRETS if s in text]
    assert found == [], found
    # the logs did record this instance (the grep looked at the right files)
    assert any(delivered.uid in p.read_text(errors="replace") for p in logs)
    figures.record("patient data", "log and audit lines without name, ID or birth date", lines)


def test_files_with_patient_data_are_private(delivered: Delivered) -> None:
    data = delivered.service.data_dir
    files = [p for p in data.rglob("*") if p.is_file()]
    spool = [p for p in files if "spool" in p.parts]
    assert spool and (data / "audit.log").is_file() and (data / "jobs.sqlite3").is_file()
    assert any("outbox" in p.parts for p in files)
    opened = [f"{p.relative_to(data)} {stat.filemode(p.stat().st_mode)}"
              for p in (*files, *(d for d in data.rglob("*") if d.is_dir()))
              if p.stat().st_mode & 0o007]
    assert opened == [], opened
    modes = sorted({oct(p.stat().st_mode & 0o777) for p in files})
    figures.record("patient data", "modes of the files the service created", " ".join(modes))
