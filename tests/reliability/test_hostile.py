"""Hostile and malformed input against the real listener (issue 5 item 3).

Association level: unknown calling AE, wrong called AE, TLS clients without a trusted
certificate. Data set level: invalid UIDs (path traversal, '..', too long, leading zeros),
truncated data sets, wrong VRs, pixel data not matching Rows x Columns x Frames, absurd frame
counts, compressed data that does not decode. Each object must get a deliberate status and
leave nothing partial; an object accepted at the store level must be refused by the analysis
entry point with an :class:`SrServiceError` (see :func:`hostile.check_outcome`).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

from srservice.errors import InvalidDicomError
from tests.conftest import require_tool
from tests.reliability import figures
from tests.reliability.conftest import RunningScp
from tests.reliability.hostile import (
    check_outcome,
    encode,
    phantom_dataset,
    pixel_data_offset,
    replace_once,
)
from tests.reliability.support import (
    EXPLICIT_LE,
    JPEG_BASELINE,
    RLE,
    US_MULTIFRAME,
    RawInstance,
    Sender,
    issue_pki,
    phantom_part10,
    split_part10,
    spool_finals,
    spool_partials,
    with_new_uids,
)

pytestmark = pytest.mark.timeout(120)

CONTEXTS = [(US_MULTIFRAME, EXPLICIT_LE), (US_MULTIFRAME, JPEG_BASELINE), (US_MULTIFRAME, RLE),
            (US_MULTIFRAME, "1.2.840.10008.1.2")]


# --- association level -------------------------------------------------------------------------
def test_unknown_calling_ae_rejected(scp: Callable[..., RunningScp], tmp_path: Path) -> None:
    running = scp(allowed_calling_aes="GOODSCU")
    evil = Sender(running.port, CONTEXTS, tmp_path / "s", calling_ae="EVILSCU")
    assert not evil.established and evil.assoc.is_rejected
    assert evil.rejection() == (1, 1, 3)  # PS3.8 Table 9-21: calling AE not recognised
    good = Sender(running.port, CONTEXTS, tmp_path / "s", calling_ae="GOODSCU")
    assert good.established  # positive control: the allow-list is not just closed
    good.release()
    assert spool_finals(running.spool) == [] and running.callback.calls == []


def test_wrong_called_ae_rejected(scp: Callable[..., RunningScp], tmp_path: Path) -> None:
    running = scp()
    sender = Sender(running.port, CONTEXTS, tmp_path / "s", called_ae="NOTSRSERVICE")
    assert not sender.established and sender.assoc.is_rejected
    assert sender.rejection() == (1, 1, 7)  # called AE not recognised
    assert spool_finals(running.spool) == []


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return issue_pki(require_tool("openssl"), tmp_path_factory.mktemp("pki"))


def _client_ctx(pki: dict[str, Path], cert: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki["ca"]))
    ctx.check_hostname = False
    if cert is not None:
        ctx.load_cert_chain(str(pki[cert]), str(pki[f"{cert}_key"]))
    return ctx


@pytest.mark.parametrize("client_cert", ["rogue", None])
def test_tls_client_without_trusted_certificate(scp: Callable[..., RunningScp], tmp_path: Path,
                                                pki: dict[str, Path],
                                                client_cert: str | None) -> None:
    running = scp(tls_certificate=pki["server"], tls_private_key=pki["server_key"],
                  tls_ca_certificates=pki["ca"], acse_timeout=5.0)
    inst = with_new_uids(phantom_part10())
    try:
        bad = Sender(running.port, CONTEXTS, tmp_path / "s", timeout=5.0,
                     tls_args=(_client_ctx(pki, client_cert), "127.0.0.1"))
        established = bad.established
        if established:  # TLS 1.3: the refusal can surface only after the handshake
            status = bad.send(inst)
            assert status != 0x0000
    except (OSError, ssl.SSLError, RuntimeError):
        established = False
    assert not established
    # Plain TCP to the TLS port: no association either.
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as raw:
        raw.sendall(b"\x01\x00" + b"\x00" * 200)
        raw.settimeout(10)
        try:
            answer = raw.recv(64)
        except OSError:
            answer = b""
        assert not answer.startswith(b"\x02")  # never an A-ASSOCIATE-AC
    good = Sender(running.port, CONTEXTS, tmp_path / "g", timeout=10.0,
                  tls_args=(_client_ctx(pki, "client"), "127.0.0.1"))
    assert good.established and good.send(inst) == 0x0000  # positive control
    good.release()
    assert len(spool_finals(running.spool)) == 1


# --- data set level ------------------------------------------------------------------------------
BAD_UIDS = [
    "1.2.3/../../x", "..", "../../../../tmp/evil", "1.2.3.%2F..%2Fx", "1.02.3", "1.2.3.",
    "1.2.840.abc", "1.2.3.4 5",
]


def _bad_uid_instances() -> list[tuple[str, RawInstance]]:
    out = []
    for uid in BAD_UIDS:
        out.append((f"sop-uid {uid[:24]!r}", encode(phantom_dataset(), sop_instance_uid=uid)))
    # pynetdicom will not send an Affected SOP Instance UID over 64 characters; a data set
    # UID is not checked by the sender.
    for keyword, value in (("StudyInstanceUID", "1.2.3/../../x"),
                           ("SeriesInstanceUID", "../../x"),
                           ("StudyInstanceUID", "1." + "2" * 70)):
        ds = phantom_dataset()
        setattr(ds, keyword, value)
        out.append((f"{keyword} {value[:12]!r}", encode(ds)))
    return out


def _truncated() -> list[tuple[str, RawInstance]]:
    base = encode(phantom_dataset())
    pix = pixel_data_offset(base.data)
    cuts = {"mid first element": 5, "mid header": 300, "mid pixel header": pix + 6,
            "mid pixel data": pix + 12 + 1000, "last byte missing": len(base.data) - 1}
    return [(f"truncated {k}", RawInstance(base.sop_class_uid, base.sop_instance_uid,
                                           base.transfer_syntax_uid, base.data[:v]))
            for k, v in cuts.items()]


def _wrong_vrs() -> list[tuple[str, RawInstance]]:
    out = []
    rows_elem = b"\x28\x00\x10\x00US\x02\x00"
    for name, new in [("Rows VR ZZ", b"\x28\x00\x10\x00ZZ\x02\x00"),
                      ("Rows VR OB", b"\x28\x00\x10\x00OB\x02\x00"),
                      ("Rows VR SQ", b"\x28\x00\x10\x00SQ\x02\x00"),
                      ("Rows length 0xFFFF", b"\x28\x00\x10\x00US\xff\xff")]:
        base = encode(phantom_dataset())
        out.append((name, RawInstance(base.sop_class_uid, base.sop_instance_uid,
                                      base.transfer_syntax_uid,
                                      replace_once(base.data, rows_elem, new))))
    base = encode(phantom_dataset())
    pix = pixel_data_offset(base.data)
    data = base.data[:pix + 4] + b"UN" + base.data[pix + 6:]
    out.append(("PixelData VR UN", RawInstance(base.sop_class_uid, base.sop_instance_uid,
                                               base.transfer_syntax_uid, data)))
    base = encode(phantom_dataset())
    data = replace_once(base.data, b"\x28\x00\x08\x00IS\x02\x006 ", b"\x28\x00\x08\x00IS\x02\x00ab")
    out.append(("NumberOfFrames 'ab'", RawInstance(base.sop_class_uid, base.sop_instance_uid,
                                                   base.transfer_syntax_uid, data)))
    ds = phantom_dataset()
    ds["BitsAllocated"].value = 7
    out.append(("BitsAllocated 7", encode(ds)))
    return out


def _pixel_mismatch() -> list[tuple[str, RawInstance]]:
    out = []
    for name, kw, value in [("Rows doubled", "Rows", 128), ("Columns 1", "Columns", 1),
                            ("NumberOfFrames 10^9", "NumberOfFrames", 1_000_000_000),
                            ("NumberOfFrames 0", "NumberOfFrames", 0),
                            ("NumberOfFrames -5", "NumberOfFrames", -5),
                            ("Rows 65535", "Rows", 65535),
                            ("SamplesPerPixel 3", "SamplesPerPixel", 3),
                            ("Photometric PALETTE", "PhotometricInterpretation",
                             "PALETTE COLOR")]:
        ds = phantom_dataset()
        setattr(ds, kw, value)
        out.append((name, encode(ds)))
    ds = phantom_dataset()
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    out.append(("PixelData half length", encode(ds)))
    ds = phantom_dataset()
    ds.PixelData = b""
    out.append(("PixelData empty", encode(ds)))
    ds = phantom_dataset()
    del ds.PixelData
    out.append(("PixelData missing", encode(ds)))
    return out


def _bad_compressed() -> list[tuple[str, RawInstance]]:
    out = []
    for ts in ("jpeg_baseline", "rle"):
        base = with_new_uids(phantom_part10(6, 64, ts))
        pix = pixel_data_offset(base.data)
        data = bytearray(base.data)
        # Keep the item structure; overwrite the inside of the fragments with garbage.
        start = pix + 12 + 8 + 16  # element header, empty offset table item, first item header
        for i in range(start, len(data) - 8, 7):
            data[i] = (data[i] * 31 + 17) & 0xFF
        out.append((f"{ts} garbage fragments",
                    RawInstance(base.sop_class_uid, base.sop_instance_uid,
                                base.transfer_syntax_uid, bytes(data))))
    native = encode(phantom_dataset())
    out.append(("native pixels labelled JPEG",
                RawInstance(native.sop_class_uid, native.sop_instance_uid, JPEG_BASELINE,
                            native.data)))
    return out


CASES = _bad_uid_instances() + _truncated() + _wrong_vrs() + _pixel_mismatch() + _bad_compressed()


def test_hostile_objects_get_a_status_and_leave_nothing_partial(
        scp: Callable[..., RunningScp], tmp_path: Path) -> None:
    running = scp()
    sender = Sender(running.port, CONTEXTS, tmp_path / "s")
    assert sender.established
    results: dict[str, str] = {}
    refused = accepted = 0
    for name, inst in CASES:
        status = sender.send(inst)
        outcome = check_outcome(status, inst, running.spool)
        results[name] = f"0x{outcome.status or 0:04X} {outcome.analysis}"
        refused += not outcome.stored
        accepted += outcome.stored
    # One good object on the same association: hostile input did not damage the listener.
    good = with_new_uids(phantom_part10())
    assert sender.send(good) == 0x0000
    sender.release()
    assert spool_partials(running.spool) == []
    # Nothing escaped the spool through a path-traversal UID.
    outside = [p for p in tmp_path.rglob("*") if p.is_file()
               and running.spool not in p.parents and p.name != "audit.log"]
    assert outside == [], outside
    # These must never be accepted as analysable. (Pixel Data with VR UN is legitimately
    # readable: PS3.5 6.2.2 lets a reader use the element's known VR.)
    for name in results:
        if name.startswith(("sop-uid", "truncated mid", "StudyInstanceUID", "SeriesInstance")):
            assert results[name].split()[1] == "refused", (name, results[name])
        elif name != "PixelData VR UN":
            assert results[name].split()[1] != "ok", (name, results[name])
    figures.record("hostile", "malformed objects sent", len(CASES))
    figures.record("hostile", "refused by the listener", refused)
    figures.record("hostile", "stored, then refused by analysis", accepted)
    figures.record("hostile", "crashes / partial files", 0)


def test_accepted_hostile_objects_raise_invalid_dicom(tmp_path: Path) -> None:
    """The analysis entry point itself: each unusable object raises InvalidDicomError."""
    from srservice.dicomio import load_pullback

    for name, inst in _pixel_mismatch() + _bad_compressed():
        path = inst.write(tmp_path / "x.dcm")
        with pytest.raises(InvalidDicomError) as info:
            load_pullback(path)
        assert str(info.value).strip(), name


def test_sop_class_mismatch_and_undeclared_class(scp: Callable[..., RunningScp],
                                                 tmp_path: Path) -> None:
    """A data set whose SOP Class differs from the command's is refused (0xA900 range)."""
    running = scp()
    ds = phantom_dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    inst = encode(ds)
    inst = RawInstance(US_MULTIFRAME, inst.sop_instance_uid, inst.transfer_syntax_uid, inst.data)
    sender = Sender(running.port, CONTEXTS, tmp_path / "s")
    status = sender.send(inst)
    sender.release()
    assert (status is not None and 0xA900 <= status <= 0xA9FF) or status in (0xC210, 0xC212)
    assert spool_finals(running.spool) == []
    _, data = split_part10(inst.part10())
    assert data == inst.data
