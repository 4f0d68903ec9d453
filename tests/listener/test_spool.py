"""Durable spool, UID grammar and audit log, without the network."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom import dcmread

from srservice.errors import (
    DataSetMismatchError,
    InstanceMismatchError,
    InvalidDicomError,
    InvalidUIDError,
    OutOfResourcesError,
)
from srservice.listener.audit import AuditLog
from srservice.listener.checks import is_valid_uid, validate_uid
from srservice.listener.spool import Spool
from tests.support.datasets import (
    CT_IMAGE,
    US_MULTIFRAME,
    dataset_bytes,
    make_dataset,
    write_dataset,
)
from tests.support.listener import instance_paths

IMPLICIT = "1.2.840.10008.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"

pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR UI")

BAD_UIDS = ["1.2.3/../../etc", "1.2.03", "", "1..2", ".1.2", "1.2.", " 1.2", "1.2 ", "1.2\x00",
            "../../x", "1.2.a", "1" * 65, "1.2/3", "１.２"]


@pytest.mark.parametrize("uid", BAD_UIDS)
def test_invalid_uids_refused(uid: str) -> None:
    assert not is_valid_uid(uid)
    with pytest.raises(InvalidUIDError, match="not a valid DICOM UID"):
        validate_uid(uid, "SOPInstanceUID")


@pytest.mark.parametrize("uid", ["0", "1.2.840.10008.5.1.4.1.1.3.1", "2.25.0", "1." + "2" * 62])
def test_valid_uids_accepted(uid: str) -> None:
    assert validate_uid(uid, "SOPInstanceUID") == uid


@given(st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=8))
def test_uid_grammar_property(components: list[int]) -> None:
    uid = ".".join(str(c) for c in components)
    assert is_valid_uid(uid) == (len(uid) <= 64)
    assert not is_valid_uid(uid + "/..")
    assert not is_valid_uid(uid.replace(".", "..", 1)) or "." not in uid


def _received(tmp_path: Path, name: str = "rx.dcm", **kwargs: object) -> tuple[Path, str, str]:
    ds = make_dataset(**kwargs)  # type: ignore[arg-type]
    path = write_dataset(ds, tmp_path / name)
    return path, str(ds.SOPClassUID), str(ds.SOPInstanceUID)


def _store(spool: Spool, path: Path, sop_class: str, sop_instance: str,
           ts: str = EXPLICIT):
    return spool.add(path, sop_class_uid=sop_class, sop_instance_uid=sop_instance,
                       transfer_syntax_uid=ts, calling_ae="SENDER", called_ae="SRSERVICE",
                       peer_host="127.0.0.1")


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    sp = Spool(tmp_path / "spool", min_free_disk_mb=0)
    sp.prepare()
    return sp


def _all_files(spool: Spool) -> list[Path]:
    return sorted(p for p in spool.root.rglob("*") if p.is_file())


def test_store_writes_part10_with_received_bytes(spool: Spool, tmp_path: Path) -> None:
    path, cls, inst = _received(tmp_path)
    stored = _store(spool, path, cls, inst)
    assert stored.path.parent.parent == spool.root
    assert stored.path.name.startswith(inst + ".") and stored.path.suffix == ".dcm"
    assert dataset_bytes(stored.path) == dataset_bytes(path)
    assert stored.size == len(dataset_bytes(path))
    ds = dcmread(stored.path)
    assert ds.file_meta.MediaStorageSOPInstanceUID == inst
    assert ds.file_meta.MediaStorageSOPClassUID == cls
    assert ds.file_meta.TransferSyntaxUID == EXPLICIT
    assert ds.file_meta.SourceApplicationEntityTitle == "SENDER"
    assert ds.file_meta.ReceivingApplicationEntityTitle == "SRSERVICE"
    assert (stored.number_of_frames, stored.modality) == (3, "IVUS")
    assert stored.study_instance_uid == ds.StudyInstanceUID
    assert list(spool.tmp_dir.iterdir()) == []


def test_resend_same_bytes_is_idempotent(spool: Spool, tmp_path: Path) -> None:
    path, cls, inst = _received(tmp_path)
    first = _store(spool, path, cls, inst)
    mtime = first.path.stat().st_mtime_ns
    second = _store(spool, path, cls, inst)
    assert second.path == first.path and second.sha256 == first.sha256
    assert first.path.stat().st_mtime_ns == mtime
    assert instance_paths(spool, inst) == [first.path]


def test_new_content_same_uid_never_overwrites(spool: Spool, tmp_path: Path) -> None:
    path1, cls, inst = _received(tmp_path, "a.dcm", seed=1)
    first = _store(spool, path1, cls, inst)
    before = first.path.read_bytes()
    path2, _, _ = _received(tmp_path, "b.dcm", seed=2, sop_instance_uid=inst)
    second = _store(spool, path2, cls, inst)
    assert second.path != first.path and second.sha256 != first.sha256
    assert first.path.read_bytes() == before
    assert instance_paths(spool, inst) == sorted([first.path, second.path])


@pytest.mark.parametrize("uid", ["1.2.3/../../etc", "1.2.03", "../../../tmp/x"])
def test_invalid_command_uid_touches_no_path(spool: Spool, tmp_path: Path, uid: str) -> None:
    path, cls, _ = _received(tmp_path, sop_instance_uid=uid)
    with pytest.raises(InvalidUIDError):
        _store(spool, path, cls, uid)
    assert _all_files(spool) == []


def test_invalid_study_uid_refused(spool: Spool, tmp_path: Path) -> None:
    ds = make_dataset()
    ds.StudyInstanceUID = "1.2.3/../.."
    path = write_dataset(ds, tmp_path / "x.dcm")
    with pytest.raises(InvalidUIDError, match="StudyInstanceUID"):
        _store(spool, path, ds.SOPClassUID, ds.SOPInstanceUID)
    assert _all_files(spool) == []


def test_instance_and_class_mismatch(spool: Spool, tmp_path: Path) -> None:
    path, cls, inst = _received(tmp_path)
    with pytest.raises(InstanceMismatchError) as exc:
        _store(spool, path, cls, "1.2.3.4")
    assert exc.value.dimse_status == 0xC212
    with pytest.raises(DataSetMismatchError) as exc2:
        _store(spool, path, CT_IMAGE, inst)
    assert exc2.value.dimse_status == 0xA900
    assert _all_files(spool) == []


def test_undecodable_and_truncated(spool: Spool, tmp_path: Path) -> None:
    path, cls, inst = _received(tmp_path)
    raw = path.read_bytes()
    truncated = tmp_path / "trunc.dcm"
    truncated.write_bytes(raw[:-100])
    with pytest.raises(InvalidDicomError, match="pixel data declares"):
        _store(spool, truncated, cls, inst)
    garbage = tmp_path / "garbage.dcm"
    offset = len(raw) - len(dataset_bytes(path))
    garbage.write_bytes(raw[:offset] + b"\x08\x00\x18\x00UI\xff\xff" + b"\xab" * 50)
    with pytest.raises(InvalidDicomError):
        _store(spool, garbage, cls, inst)
    nometa = tmp_path / "nometa.dcm"
    nometa.write_bytes(b"\x00" * 64)
    with pytest.raises(InvalidDicomError, match="File Meta"):
        _store(spool, nometa, cls, inst)
    assert _all_files(spool) == []


def test_watermark_refuses_without_writing(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "spool", min_free_disk_mb=10**9)
    sp.prepare()
    path, cls, inst = _received(tmp_path)
    with pytest.raises(OutOfResourcesError, match="watermark") as exc:
        _store(sp, path, cls, inst)
    assert exc.value.dimse_status == 0xA700
    assert _all_files(sp) == []


def test_prepare_removes_partials_keeps_finals(spool: Spool, tmp_path: Path) -> None:
    path, cls, inst = _received(tmp_path)
    stored = _store(spool, path, cls, inst)
    (spool.tmp_dir / "abc.part").write_bytes(b"partial")
    (spool.incoming_dir / "tmp123.dcm").write_bytes(b"partial")
    spool.prepare()
    assert _all_files(spool) == [stored.path]


def test_single_frame_object_defaults_to_one_frame(spool: Spool, tmp_path: Path) -> None:
    path, cls, inst = _received(tmp_path, frames=1, sop_class_uid=CT_IMAGE)
    stored = _store(spool, path, cls, inst)
    assert stored.number_of_frames == 1
    assert stored.sop_class_uid == CT_IMAGE != US_MULTIFRAME


def test_audit_log_json_lines_without_phi(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = AuditLog(tmp_path / "audit.log")
    with caplog.at_level(logging.INFO, logger="srservice.audit"):
        log.event("instance-stored", calling_ae="A", sop_instance_uid="1.2", size=3)
    with pytest.raises(ValueError, match="patient"):
        log.event("x", PatientName="SECRET")
    log.close()
    lines = (tmp_path / "audit.log").read_text().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "instance-stored" and record["size"] == 3
    assert any("instance-stored" in r.getMessage() for r in caplog.records)


def test_receive_file_disk_full_is_remembered(tmp_path: Path) -> None:
    """A write error while pynetdicom receives (here: /dev/full, ENOSPC) becomes 0xA700 later."""
    import errno
    import os

    from srservice.listener.receive import ReceiveFile

    rf = ReceiveFile(tmp_path)
    assert rf.write(b"x" * 10) == 10
    full = os.open("/dev/full", os.O_WRONLY)
    os.close(rf._fd)  # type: ignore[arg-type]
    rf._fd = full
    assert rf.write(b"y" * 4096) == 4096  # no exception escapes into pynetdicom
    assert rf.error is not None and rf.error.errno == errno.ENOSPC
    rf.discard()
    assert not Path(rf.name).exists()
