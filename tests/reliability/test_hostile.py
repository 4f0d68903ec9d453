"""Hostile and malformed input against the real listener (promises P9, P10 of docs/reliability.md).

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
from tests.support import figures
from tests.support.datasets import US_MULTIFRAME
from tests.support.hostile import (
    CASES,
    bad_compressed_cases,
    check_outcome,
    encode,
    phantom_dataset,
    pixel_mismatch_cases,
)
from tests.support.listener import RunningScp, tls_client_context
from tests.support.reliability import (
    EXPLICIT_LE,
    JPEG_BASELINE,
    RLE,
    RawInstance,
    Sender,
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


@pytest.mark.parametrize("client_cert", ["rogue", None])
def test_tls_client_without_trusted_certificate(scp: Callable[..., RunningScp], tmp_path: Path,
                                                pki: dict[str, Path],
                                                client_cert: str | None) -> None:
    running = scp(tls_certificate=pki["server"], tls_private_key=pki["server_key"],
                  tls_ca_certificates=pki["ca"], acse_timeout=5.0)
    inst = with_new_uids(phantom_part10())
    try:
        bad = Sender(running.port, CONTEXTS, tmp_path / "s", timeout=5.0,
                     tls_args=(tls_client_context(pki, client_cert), "127.0.0.1"))
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
                  tls_args=(tls_client_context(pki, "client"), "127.0.0.1"))
    assert good.established and good.send(inst) == 0x0000  # positive control
    good.release()
    assert len(spool_finals(running.spool)) == 1


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

    for name, inst in pixel_mismatch_cases() + bad_compressed_cases():
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
