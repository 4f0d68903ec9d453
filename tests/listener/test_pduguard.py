"""PDU size cap and per-PDU deadline of the listener (:mod:`srservice.listener.pduguard`).

Raw sockets play the hostile peer; the listener is the real one (in-process, free port).
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE

from srservice.config import Settings
from srservice.listener.pduguard import MAX_CONTROL_PDU, PduLimits
from srservice.listener.scp import start_scp
from tests.support.datasets import US_MULTIFRAME, make_dataset
from tests.support.listener import Recorder, settings_for

pytestmark = [pytest.mark.timeout(60)]

Started = tuple[Settings, int]


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Callable[..., Started]]:
    servers: list[Any] = []

    def start(**overrides: Any) -> Started:
        settings = settings_for(tmp_path / f"l{len(servers)}", **overrides)
        server = start_scp(settings, Recorder())
        servers.append(server)
        return settings, int(server.server_address[1])

    yield start
    for server in servers:
        server.shutdown()


def _item(item_type: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", item_type, 0, len(payload)) + payload


def associate_rq(max_length: int = 16384) -> bytes:
    """A-ASSOCIATE-RQ, US Multi-frame / Explicit VR LE (PS3.8 Section 9.3.2)."""
    ctx = bytes([1, 0, 0, 0]) + _item(0x30, US_MULTIFRAME.encode()) + _item(
        0x40, ExplicitVRLittleEndian.encode())
    body = (struct.pack(">HH", 1, 0) + b"SRSERVICE".ljust(16) + b"RAWPEER".ljust(16)
            + b"\x00" * 32 + _item(0x10, b"1.2.840.10008.3.1.1.1") + _item(0x20, ctx)
            + _item(0x50, _item(0x51, struct.pack(">I", max_length))))
    return struct.pack(">BBI", 0x01, 0, len(body)) + body


def read_pdu(sock: socket.socket) -> bytes:
    head = b""
    while len(head) < 6:
        more = sock.recv(6 - len(head))
        assert more, f"closed after {head!r}"
        head += more
    length = struct.unpack(">I", head[2:6])[0]
    body = b""
    while len(body) < length:
        more = sock.recv(length - len(body))
        assert more
        body += more
    return head + body


def established(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(associate_rq())
    assert read_pdu(sock)[:1] == b"\x02", "association not accepted"
    return sock


def until_closed(sock: socket.socket, limit: float,
                 dribble: bytes = b"", every: float = 0.2) -> tuple[bytes, float]:
    """Send ``dribble`` one byte per ``every`` s; return (bytes received, s until EOF/reset)."""
    t0 = time.monotonic()
    sock.settimeout(every)
    got = b""
    sent = 0
    while time.monotonic() - t0 < limit:
        if sent < len(dribble):
            try:
                sock.sendall(dribble[sent:sent + 1])
            except OSError:
                return got, time.monotonic() - t0
            sent += 1
        try:
            data = sock.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            return got, time.monotonic() - t0
        if not data:
            return got, time.monotonic() - t0
        got += data
    raise AssertionError(f"still open after {limit} s")


def audit_records(settings: Settings) -> str:
    return (settings.data_dir / "audit.log").read_text()


def store_ok(port: int) -> bool:
    ae = AE(ae_title="SENDER")
    ae.add_requested_context(US_MULTIFRAME, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="SRSERVICE")
    assert assoc.is_established
    status = assoc.send_c_store(make_dataset())
    assoc.release()
    return int(status.Status) == 0x0000


def test_default_max_pdu_is_bounded_and_announced(listener: Callable[..., Started]) -> None:
    """Finding R2 (docs/reliability.md): the Maximum Length we announce (PS3.8 D.1) is bounded."""
    settings, port = listener()
    assert 0 < settings.max_pdu <= 1024 * 1024
    ae = AE(ae_title="SENDER")
    ae.add_requested_context(US_MULTIFRAME, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="SRSERVICE")
    assert assoc.is_established
    assert assoc.acceptor.maximum_length == settings.max_pdu
    assoc.release()


def test_oversized_pdata_aborted_from_its_header(listener: Callable[..., Started]) -> None:
    settings, port = listener(max_pdu=16384)
    with established(port) as sock:
        sock.sendall(b"\x04\x00" + struct.pack(">I", 64 * 1024**2) + b"\x00" * 100_000)
        got, seconds = until_closed(sock, 10)
    assert got[:1] == b"\x07", f"no A-ABORT: {got[:10]!r}"  # PS3.8 9.3.8
    assert got[8:10] == b"\x02\x06"  # source service provider, invalid PDU parameter value
    assert seconds < 5
    assert "association-aborted" in audit_records(settings)
    assert "announces 67108864 bytes" in audit_records(settings)
    assert store_ok(port)  # a sender honouring our Maximum Length is served


def test_pdata_just_within_the_limit_is_not_refused(listener: Callable[..., Started]) -> None:
    """A PDU of max_pdu + 6 (peers counting the header) is read, not aborted for its size."""
    settings, port = listener(max_pdu=16384, network_timeout=2.0)
    with established(port) as sock:
        # A valid P-DATA-TF framing would be needed for success; a garbage PDV is enough to
        # show the size check passed: the FSM then aborts for an invalid PDU, not the guard.
        sock.sendall(b"\x04\x00" + struct.pack(">I", 16384 + 6) + b"\x00" * (16384 + 6))
        until_closed(sock, 10)
    assert "announces" not in audit_records(settings)


def test_oversized_associate_rq_aborted(listener: Callable[..., Started]) -> None:
    settings, port = listener()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"\x01\x00" + struct.pack(">I", MAX_CONTROL_PDU + 1) + b"\x00\x01" * 1000)
        got, seconds = until_closed(sock, 10)
    assert got[:1] == b"\x07" and seconds < 5
    assert "association-aborted" in audit_records(settings)
    assert store_ok(port)


@pytest.mark.parametrize("phase", ["association request", "P-DATA-TF"])
def test_dribbled_pdu_dropped_at_its_deadline(listener: Callable[..., Started],
                                              phase: str) -> None:
    """Finding R4: one byte every 0.2 s never trips the idle timeout; the PDU deadline does."""
    timeout = 1.5  # the phase's own timeout; the other one is much longer
    other = 8.0
    settings, port = listener(acse_timeout=timeout if phase != "P-DATA-TF" else other,
                              network_timeout=timeout if phase == "P-DATA-TF" else other)
    if phase == "P-DATA-TF":
        sock = established(port)
        header = b"\x04\x00" + struct.pack(">I", 1000)
    else:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        header = b"\x01\x00" + struct.pack(">I", 1000)
    with sock:
        sock.sendall(header)
        _, seconds = until_closed(sock, 4 * timeout + 5, dribble=b"\x00" * 100, every=0.2)
    assert timeout - 0.3 < seconds < timeout + 2.0, seconds
    assert "within its deadline" in audit_records(settings)
    assert store_ok(port)


def test_limits_per_pdu_type(tmp_path: Path) -> None:
    from srservice.listener.audit import AuditLog

    audit = AuditLog(None)
    bounded = PduLimits(max_pdata=16384, acse_timeout=1, network_timeout=1, audit=audit)
    assert bounded.max_length(0x04) == 16384 + 6
    assert bounded.max_length(0x01) == MAX_CONTROL_PDU
    unlimited = PduLimits(max_pdata=None, acse_timeout=1, network_timeout=1, audit=audit)
    assert unlimited.max_length(0x04) is None
    assert unlimited.max_length(0x07) == MAX_CONTROL_PDU
