"""The DICOM listener with real associations: pynetdicom SCU, DCMTK storescu and echoscu."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, _config
from pynetdicom.association import Association

from srservice.config import Settings
from srservice.errors import InvalidDicomError, TransientError
from srservice.listener.scp import start_scp
from tests.support.datasets import (
    CT_IMAGE,
    US_MULTIFRAME,
    dataset_bytes,
    make_dataset,
    write_dataset,
)
from tests.support.environment import require_tool
from tests.support.listener import Recorder, leftovers, settings_for, spool_files

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.filterwarnings("ignore:Invalid value for VR UI")]

Started = tuple[Settings, Recorder, int]


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Callable[..., Started]]:
    servers: list[Any] = []

    def start(recorder: Recorder | None = None, **overrides: Any) -> Started:
        settings = settings_for(tmp_path / f"l{len(servers)}", **overrides)
        rec = recorder or Recorder()
        server = start_scp(settings, rec)
        servers.append(server)
        return settings, rec, int(server.server_address[1])

    yield start
    for server in servers:
        server.shutdown()


def associate(port: int, *, calling: str = "SENDER", called: str = "SRSERVICE",
              classes: tuple[str, ...] = (US_MULTIFRAME,),
              ts: tuple[str, ...] = (ExplicitVRLittleEndian, ImplicitVRLittleEndian),
              **kwargs: Any) -> Association:
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
    for cls in classes:
        ae.add_requested_context(cls, list(ts))
    return ae.associate("127.0.0.1", port, ae_title=called, **kwargs)


def c_store(port: int, ds_or_path: Any, **kwargs: Any) -> int:
    assoc = associate(port, **kwargs)
    assert assoc.is_established
    try:
        rsp = assoc.send_c_store(ds_or_path)
        assert "Status" in rsp, "no C-STORE response"
        return int(rsp.Status)
    finally:
        assoc.release()


def reject_reason(assoc: Association) -> tuple[int, int, int]:
    assert assoc.is_rejected
    prim = assoc.acceptor.primitive
    return (prim.result, prim.result_source, prim.diagnostic)


def test_store_byte_for_byte_and_callback(listener: Callable[..., Started], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    settings, rec, port = listener()
    ds = make_dataset(frames=5, rows=64, cols=48)
    source = write_dataset(ds, tmp_path / "src.dcm")
    # Send the file's encoded data set as is (pynetdicom's chunked send).
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    assert c_store(port, source, ts=(ExplicitVRLittleEndian,)) == 0x0000
    files = spool_files(settings)
    assert len(files) == 1 and len(rec.calls) == 1
    stored = rec.calls[0]
    assert stored.path == files[0]
    assert dataset_bytes(files[0]) == dataset_bytes(source)
    meta = dcmread(files[0], stop_before_pixels=True).file_meta
    assert meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert (stored.sop_instance_uid, stored.series_instance_uid, stored.study_instance_uid) == (
        ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.StudyInstanceUID)
    assert (stored.number_of_frames, stored.calling_ae, stored.peer_host) == (5, "SENDER",
                                                                            "127.0.0.1")
    assert leftovers(settings) == []
    audit = (settings.data_dir / "audit.log").read_text()
    assert "instance-stored" in audit and ds.SOPInstanceUID in audit
    assert "SECRET" not in audit and "PID-SECRET-42" not in audit


def test_resend_is_idempotent_and_stored_as_received_implicit(
        listener: Callable[..., Started]) -> None:
    settings, rec, port = listener()
    ds = make_dataset()
    assert c_store(port, ds, ts=(ImplicitVRLittleEndian,)) == 0x0000
    assert c_store(port, ds, ts=(ImplicitVRLittleEndian,)) == 0x0000
    files = spool_files(settings)
    assert len(files) == 1 and len(rec.calls) == 2
    assert rec.calls[0].path == rec.calls[1].path == files[0]
    back = dcmread(files[0])
    assert back.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert back.PixelData == ds.PixelData and back.SOPInstanceUID == ds.SOPInstanceUID


def test_storescu_and_echoscu(listener: Callable[..., Started], tmp_path: Path) -> None:
    storescu, echoscu = require_tool("storescu"), require_tool("echoscu")
    _settings, rec, port = listener()
    ds = make_dataset(frames=7)
    source = write_dataset(ds, tmp_path / "src.dcm")
    echo = subprocess.run([echoscu, "-aet", "SENDER", "-aec", "SRSERVICE", "127.0.0.1",
                           str(port)], capture_output=True, text=True, timeout=60)
    assert echo.returncode == 0, echo.stderr
    out = subprocess.run([storescu, "-v", "-aet", "SENDER", "-aec", "SRSERVICE", "127.0.0.1",
                          str(port), str(source)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Received Store Response (Success)" in out.stdout + out.stderr
    assert len(rec.calls) == 1
    back = dcmread(rec.calls[0].path)
    assert back.PixelData == ds.PixelData and back.NumberOfFrames == 7
    assert back.file_meta.SourceApplicationEntityTitle == "SENDER"


def test_unknown_calling_ae_and_host_rejected(listener: Callable[..., Started]) -> None:
    settings, _rec, port = listener(allowed_calling_aes="GOOD,HOSTBOUND@10.255.255.1,"
                                                       "LOCAL@127.0.0.1")
    assert reject_reason(associate(port, calling="BAD")) == (1, 1, 3)
    assert reject_reason(associate(port, calling="HOSTBOUND")) == (1, 1, 3)
    for calling in ("GOOD", "LOCAL"):
        assoc = associate(port, calling=calling)
        assert assoc.is_established
        assoc.release()
    audit = (settings.data_dir / "audit.log").read_text()
    assert '"calling_ae":"BAD"' in audit and "not in allow-list" in audit


def test_wrong_called_ae_rejected(listener: Callable[..., Started]) -> None:
    _, _, port = listener()
    assert reject_reason(associate(port, called="SOMEONEELSE")) == (1, 1, 7)
    _, _, port2 = listener(require_called_ae=False)
    assoc = associate(port2, called="SOMEONEELSE")
    assert assoc.is_established
    assoc.release()


@pytest.mark.parametrize("uid", ["1.2.3/../../etc", "1.2.03", "1.2.3.."])
def test_invalid_uid_refused_no_file(listener: Callable[..., Started], uid: str) -> None:
    settings, rec, port = listener()
    assert c_store(port, make_dataset(sop_instance_uid=uid)) == 0xC211
    assert spool_files(settings) == [] and leftovers(settings) == [] and rec.calls == []
    assert not list(settings.data_dir.parent.rglob("etc"))


@pytest.mark.parametrize(("policy", "status", "stored"),
                         [("discard", 0x0000, False), ("reject", 0x0122, False),
                          ("store", 0x0000, True)])
def test_non_ivus_policy(listener: Callable[..., Started], policy: str, status: int,
                         stored: bool) -> None:
    settings, rec, port = listener(non_ivus_policy=policy)
    ct = make_dataset(frames=1, sop_class_uid=CT_IMAGE)
    assert c_store(port, ct, classes=(CT_IMAGE,)) == status
    assert bool(spool_files(settings)) is stored
    assert [c.sop_class_uid for c in rec.calls] == ([CT_IMAGE] if stored else [])
    # IVUS objects are stored whatever the policy.
    assert c_store(port, make_dataset()) == 0x0000


def test_disk_watermark_out_of_resources(listener: Callable[..., Started]) -> None:
    settings, rec, port = listener(min_free_disk_mb=10**9)
    assert c_store(port, make_dataset()) == 0xA700
    assert spool_files(settings) == [] and leftovers(settings) == [] and rec.calls == []


@pytest.mark.parametrize(("exc", "status"), [(TransientError("db down"), 0xA700),
                                             (InvalidDicomError("no frames"), 0xC210),
                                             (RuntimeError("bug"), 0xC210)])
def test_on_stored_failure_maps_to_status(listener: Callable[..., Started],
                                          exc: Exception, status: int) -> None:
    settings, rec, port = listener(Recorder(raise_exc=exc))
    ds = make_dataset()
    assert c_store(port, ds) == status
    files = spool_files(settings)
    assert len(files) == 1 and len(rec.calls) == 1  # file stays; a resend is idempotent
    rec.raise_exc = None
    assert c_store(port, ds) == 0x0000
    assert spool_files(settings) == files and rec.calls[1].path == files[0]


def test_undecodable_dataset(listener: Callable[..., Started], tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    settings, rec, port = listener()
    source = write_dataset(make_dataset(), tmp_path / "ok.dcm")
    raw = source.read_bytes()
    body = dataset_bytes(source)
    bad = tmp_path / "bad.dcm"
    # Valid file meta, then an element whose length runs past the end of the data.
    bad.write_bytes(raw[:len(raw) - len(body)] + b"\x08\x00\x18\x00UI\xf0\xff" + b"1.2" * 10)
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    assert c_store(port, bad, ts=(ExplicitVRLittleEndian,)) == 0xC210
    truncated = tmp_path / "trunc.dcm"
    truncated.write_bytes(raw[:-200])
    assert c_store(port, truncated, ts=(ExplicitVRLittleEndian,)) == 0xC210
    assert spool_files(settings) == [] and leftovers(settings) == [] and rec.calls == []


def test_max_associations(listener: Callable[..., Started]) -> None:
    _, _, port = listener(max_associations=2)
    held = [associate(port), associate(port)]
    assert all(a.is_established for a in held)
    assert reject_reason(associate(port)) == (2, 3, 2)
    for a in held:
        a.release()
    assoc = associate(port)
    assert assoc.is_established
    assoc.release()


def test_verification_with_pynetdicom(listener: Callable[..., Started]) -> None:
    _, _, port = listener()
    assoc = associate(port, classes=("1.2.840.10008.1.1",))
    assert assoc.is_established
    assert int(assoc.send_c_echo().Status) == 0
    assoc.release()


@pytest.mark.parametrize("ts", ["1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.90",
                                "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.1.99"])
def test_compressed_and_deflated_stored_as_received(listener: Callable[..., Started],
                                                    ts: str) -> None:
    _settings, rec, port = listener()
    ds = make_dataset(frames=2)
    if ts == "1.2.840.10008.1.2.1.99":
        ds.file_meta.TransferSyntaxUID = ts
    else:
        ds.compress(ts)
    sent_pixels = ds.PixelData
    # Propose the tested syntax first: the listener accepts the sender's first choice.
    assert c_store(port, ds, ts=(ts, ExplicitVRLittleEndian)) == 0x0000
    back = dcmread(rec.calls[0].path)
    assert rec.calls[0].transfer_syntax_uid == ts == back.file_meta.TransferSyntaxUID
    assert back.PixelData == sent_pixels
