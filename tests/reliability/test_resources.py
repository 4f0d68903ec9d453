"""Resource bounds of the listener process (promise P12 of docs/reliability.md).

- One huge multi-frame instance (CI 256 MiB; ``SRSERVICE_LONG_RUN=1``: 2 GiB), generated on
  disk in chunks and sent in chunks, is streamed to the spool: the listener's peak RSS
  (``/proc/<pid>/status`` VmHWM) stays far below the object size, and the stored bytes are
  exactly the sent ones.
- Slowloris senders (silent TCP, a partial PDU dribbled byte by byte, an idle association, a
  stalled P-DATA) are dropped by the ACSE / network timeouts while a normal sender is served.
- The association limit is enforced: ``max_associations`` + 1 concurrent -> A-ASSOCIATE-RJ
  (transient, local limit exceeded, PS3.8 Table 9-21) and a slot frees on release.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import figures
from tests.support.datasets import US_MULTIFRAME
from tests.support.environment import wait_for
from tests.support.listener import ListenerProcess, RunningScp, rss_now_kb, rss_peak_kb
from tests.support.reliability import (
    EXPLICIT_LE,
    LONG_RUN,
    Sender,
    phantom_part10,
    sha256_of_stored,
    spool_finals,
    spool_partials,
    with_new_uids,
    write_huge,
)

HUGE_BYTES = (2 * 1024**3) if LONG_RUN else (256 * 1024**2)


@pytest.mark.timeout(1800 if LONG_RUN else 240)
@pytest.mark.parametrize("max_pdu", [
    pytest.param(None, id="default-settings"),
    pytest.param("65536", id="max_pdu-65536"),
])
def test_huge_instance_streamed_with_bounded_memory(
        tmp_path: Path, listener_processes: list[ListenerProcess], max_pdu: str | None) -> None:
    source = tmp_path / "huge.dcm"
    uid, digest, size = write_huge(source, HUGE_BYTES)
    extra = {"max_pdu": max_pdu} if max_pdu is not None else {}
    listener = ListenerProcess(tmp_path / "data", dimse_timeout="600", network_timeout="600",
                               **extra)
    listener_processes.append(listener)
    baseline_kb = rss_now_kb(listener.pid)
    sender = Sender(listener.port, [(US_MULTIFRAME, EXPLICIT_LE)], tmp_path / "s", timeout=600)
    t0 = time.monotonic()
    status = sender.assoc.send_c_store(source)
    elapsed = time.monotonic() - t0
    sender.release()
    assert int(status.Status) == 0x0000
    finals = spool_finals(listener.spool)
    assert len(finals) == 1 and uid in finals[0].name
    assert sha256_of_stored(finals[0]) == digest
    peak_kb = rss_peak_kb(listener.pid)
    growth = (peak_kb - baseline_kb) * 1024
    source.unlink()
    label = f"max_pdu {max_pdu or 'default'}"
    figures.record("resources", f"huge instance size ({label})", size / 2**20, "MiB")
    figures.record("resources", f"listener peak RSS VmHWM ({label})", peak_kb / 1024, "MiB")
    figures.record("resources", f"listener RSS growth ({label})", growth / 2**20, "MiB")
    figures.record("resources", f"huge instance throughput ({label})", size / 2**20 / elapsed,
                   "MiB/s")
    assert peak_kb * 1024 < size / 2, f"listener peak RSS {peak_kb} kB for a {size} B object"
    assert growth < 64 * 1024**2, f"listener RSS grew by {growth / 2**20:.0f} MiB"


def _time_to_drop(sock: socket.socket, limit: float,
                  dribble: bytes = b"") -> tuple[float, float]:
    """Seconds (since connecting, since the last byte sent) until the listener closes ``sock``.

    ``dribble`` is sent one byte per half second first (the slowloris pattern); the listener
    may drop the connection in the middle of it.
    """
    t0 = last = time.monotonic()
    sock.settimeout(0.5)
    sent = 0
    while time.monotonic() - last < limit:
        if sent < len(dribble):
            try:
                sock.sendall(dribble[sent:sent + 1])
            except OSError:
                break
            sent += 1
            last = time.monotonic()
        try:
            data = sock.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            break
        if data == b"":
            break
    else:
        raise AssertionError(f"connection still open {limit} s after the last byte "
                             f"({time.monotonic() - t0:.0f} s in all)")
    now = time.monotonic()
    return now - t0, now - last


def _item(item_type: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", item_type, 0, len(payload)) + payload


def associate_rq_pdu(calling: str = "SLOWLORIS", called: str = "SRSERVICE",
                     max_length: int = 16384) -> bytes:
    """A-ASSOCIATE-RQ for US Multi-frame / Explicit VR LE (PS3.8 Section 9.3.2)."""
    ctx = bytes([1, 0, 0, 0]) + _item(0x30, US_MULTIFRAME.encode()) + _item(
        0x40, EXPLICIT_LE.encode())
    user = _item(0x51, struct.pack(">I", max_length))
    body = (struct.pack(">HH", 1, 0) + called.ljust(16).encode() + calling.ljust(16).encode()
            + b"\x00" * 32 + _item(0x10, b"1.2.840.10008.3.1.1.1") + _item(0x20, ctx)
            + _item(0x50, user))
    return struct.pack(">BBI", 0x01, 0, len(body)) + body


def _associate_raw(port: int) -> socket.socket:
    """An established association on a raw socket."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(associate_rq_pdu())
    head = b""
    while len(head) < 6:
        more = sock.recv(6 - len(head))
        assert more, "connection closed during association"
        head += more
    assert head[:1] == b"\x02", f"association not accepted: {head!r}"
    length = struct.unpack(">I", head[2:6])[0]
    got = 0
    while got < length:
        got += len(sock.recv(length - got))
    return sock


ACSE_S, NETWORK_S = 2.0, 3.0


def _silent(port: int) -> tuple[socket.socket, bytes]:
    return socket.create_connection(("127.0.0.1", port), timeout=10), b""


def _partial_rq(port: int) -> tuple[socket.socket, bytes]:
    # A-ASSOCIATE-RQ header announcing 1,000 bytes; the rest is never completed.
    return (socket.create_connection(("127.0.0.1", port), timeout=10),
            b"\x01\x00" + struct.pack(">I", 1000) + b"\x00\x01" + b"\x00" * 200)


def _partial_rq_stop(port: int) -> tuple[socket.socket, bytes]:
    # The same header and 10 bytes, then silence.
    return (socket.create_connection(("127.0.0.1", port), timeout=10),
            b"\x01\x00" + struct.pack(">I", 1000) + b"\x00\x01" + b"\x00" * 8)


def _idle_association(port: int) -> tuple[socket.socket, bytes]:
    return _associate_raw(port), b""


def _stalled_pdata(port: int) -> tuple[socket.socket, bytes]:
    # P-DATA-TF announcing 100,000 bytes, 10 bytes sent, then silence.
    return _associate_raw(port), b"\x04\x00" + struct.pack(">I", 100000) + b"\x00" * 10


def _dribbled_pdata(port: int) -> tuple[socket.socket, bytes]:
    # P-DATA-TF announcing 16,000 bytes (within the Maximum Length), one byte per half second.
    return _associate_raw(port), b"\x04\x00" + struct.pack(">I", 16000) + b"\x00" * 200


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name,make", [
    ("silent TCP connection", _silent),
    ("partial A-ASSOCIATE-RQ then silence", _partial_rq_stop),
    ("idle established association", _idle_association),
    ("partial P-DATA-TF then silence", _stalled_pdata),
    ("partial A-ASSOCIATE-RQ dribbled", _partial_rq),
    ("partial P-DATA-TF dribbled", _dribbled_pdata),
])
def test_slowloris_sender_is_dropped(tmp_path: Path, listener_processes: list[ListenerProcess],
                                     name: str,
                                     make: Callable[[int], tuple[socket.socket, bytes]]) -> None:
    listener = ListenerProcess(tmp_path / "data", acse_timeout=str(ACSE_S),
                               network_timeout=str(NETWORK_S), dimse_timeout=str(NETWORK_S))
    listener_processes.append(listener)
    limit = 2 * max(ACSE_S, NETWORK_S) + 6
    result: dict[str, tuple[float, float] | BaseException] = {}

    def run() -> None:
        try:
            sock, dribble = make(listener.port)
            with sock:
                result["t"] = _time_to_drop(sock, limit, dribble)
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    # Meanwhile a normal sender is served.
    inst = with_new_uids(phantom_part10())
    sender = Sender(listener.port, [(US_MULTIFRAME, EXPLICIT_LE)], tmp_path / "s", timeout=10)
    assert sender.established and sender.send(inst) == 0x0000
    sender.release()
    thread.join(timeout=limit + 30)
    times = result.get("t")
    figures.record("slowloris", f"{name}: dropped after",
                   f"{times[0]:.1f} s ({times[1]:.1f} s after its last byte)"
                   if isinstance(times, tuple) else f"not within {limit:g} s",
                   f"(acse {ACSE_S:g} s, network {NETWORK_S:g} s)")
    if "error" in result:
        raise AssertionError(f"{name}: {result['error']}")
    assert isinstance(times, tuple) and times[1] <= limit
    assert listener.proc.poll() is None
    assert spool_partials(listener.spool) == []
    assert len(spool_finals(listener.spool)) == 1


def test_association_limit_enforced(scp: Callable[..., RunningScp], tmp_path: Path) -> None:
    limit = 3
    running = scp(max_associations=limit)
    contexts = [(US_MULTIFRAME, EXPLICIT_LE)]
    held = [Sender(running.port, contexts, tmp_path / f"h{i}") for i in range(limit)]
    assert all(s.established for s in held)
    extra = Sender(running.port, contexts, tmp_path / "x")
    assert not extra.established and extra.assoc.is_rejected
    assert extra.rejection() == (2, 3, 2)
    held[0].release()
    # The slot frees once the server has finished the released association.
    again: list[Sender] = []

    def try_again() -> bool:
        s = Sender(running.port, contexts, tmp_path / "y")
        if s.established:
            again.append(s)
            return True
        return False

    assert wait_for(try_again, timeout=10, step=0.2)
    inst = with_new_uids(phantom_part10())
    assert again[0].send(inst) == 0x0000
    for s in [*held[1:], *again]:
        s.release()
    figures.record("resources", "association limit", f"{limit} held, +1 rejected (2,3,2)")


@pytest.mark.timeout(120)
def test_oversized_pdu_is_not_buffered(tmp_path: Path,
                                       listener_processes: list[ListenerProcess]) -> None:
    """A peer announcing a 96 MiB P-DATA-TF (we accept 64 KiB) must not grow the listener's RSS."""
    listener = ListenerProcess(tmp_path / "data", max_pdu="65536", network_timeout="10")
    listener_processes.append(listener)
    baseline_kb = rss_now_kb(listener.pid)
    announced = 96 * 1024**2
    sock = _associate_raw(listener.port)
    block = b"\x00" * (1 << 20)
    sent = 0
    with sock:
        try:
            sock.sendall(b"\x04\x00" + struct.pack(">I", announced))
            while sent < announced:
                sock.sendall(block)
                sent += len(block)
        except OSError:
            pass  # dropped by the listener: what we want
    growth_kb = rss_peak_kb(listener.pid) - baseline_kb
    figures.record("resources", "RSS growth from a 96 MiB announced PDU", growth_kb / 1024,
                   f"MiB ({sent / 2**20:.0f} MiB sent before drop)")
    assert growth_kb < 32 * 1024, f"listener buffered {growth_kb / 1024:.0f} MiB of one PDU"
