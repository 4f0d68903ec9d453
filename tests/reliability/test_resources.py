"""Resource bounds of the listener process (issue 5 item 4).

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

import hashlib
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from tests.reliability import figures
from tests.reliability.conftest import RunningScp
from tests.reliability.support import (
    EXPLICIT_LE,
    LONG_RUN,
    US_MULTIFRAME,
    ListenerProcess,
    Sender,
    phantom_part10,
    rss_now_kb,
    rss_peak_kb,
    sha256_of_stored,
    spool_finals,
    spool_partials,
    wait_for,
    with_new_uids,
)

HUGE_BYTES = (2 * 1024**3) if LONG_RUN else (256 * 1024**2)


def write_huge(path: Path, total_bytes: int) -> tuple[str, str, int]:
    """Write a multi-frame US object of about ``total_bytes`` pixel bytes, chunk by chunk.

    Returns (SOP Instance UID, SHA-256 of the data set bytes, file size).
    """
    rows = cols = 512
    frames = max(1, total_bytes // (rows * cols))
    uid = generate_uid()
    ds = Dataset()
    ds.SOPClassUID = US_MULTIFRAME
    ds.SOPInstanceUID = uid
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "IVUS"
    ds.PatientID = "RELIABILITY"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.NumberOfFrames = frames
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(US_MULTIFRAME)
    meta.MediaStorageSOPInstanceUID = UID(uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.save_as(path, enforce_file_format=True)
    head = path.read_bytes()
    group_length = int.from_bytes(head[140:144], "little")
    digest = hashlib.sha256(head[144 + group_length:])
    length = frames * rows * cols
    element = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, length)
    digest.update(element)
    frame = (np.arange(rows * cols, dtype=np.uint32) % 251).astype(np.uint8)
    with path.open("ab") as fh:
        fh.write(element)
        for k in range(frames):
            chunk = np.roll(frame, k).tobytes()
            digest.update(chunk)
            fh.write(chunk)
    return uid, digest.hexdigest(), path.stat().st_size


@pytest.mark.timeout(1800 if LONG_RUN else 240)
def test_huge_instance_streamed_with_bounded_memory(
        tmp_path: Path, listener_processes: list[ListenerProcess]) -> None:
    source = tmp_path / "huge.dcm"
    uid, digest, size = write_huge(source, HUGE_BYTES)
    listener = ListenerProcess(tmp_path / "data", dimse_timeout="600", network_timeout="600")
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
    assert peak_kb * 1024 < size / 2, f"listener peak RSS {peak_kb} kB for a {size} B object"
    assert growth < 64 * 1024**2, f"listener RSS grew by {growth / 2**20:.0f} MiB"
    source.unlink()
    figures.record("resources", "huge instance size", size / 2**20, "MiB")
    figures.record("resources", "listener peak RSS (VmHWM)", peak_kb / 1024, "MiB")
    figures.record("resources", "listener RSS growth while receiving", growth / 2**20, "MiB")
    figures.record("resources", "huge instance throughput", size / 2**20 / elapsed, "MiB/s")


def _time_to_drop(sock: socket.socket, limit: float, dribble: bytes = b"") -> float:
    """Seconds until the listener closes ``sock`` (EOF or reset); dribble bytes meanwhile."""
    t0 = time.monotonic()
    sock.settimeout(0.5)
    sent = 0
    while time.monotonic() - t0 < limit:
        if sent < len(dribble):
            try:
                sock.sendall(dribble[sent:sent + 1])
            except OSError:
                return time.monotonic() - t0
            sent += 1
        try:
            data = sock.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - t0
        if data == b"":
            return time.monotonic() - t0
        if data[:1] == b"\x07":  # A-ABORT: the association is being dropped
            continue
    raise AssertionError(f"connection still open after {limit} s")


def _associate_raw(port: int) -> socket.socket:
    """An established association on a raw socket (A-ASSOCIATE-RQ built by pynetdicom)."""
    from pynetdicom.pdu import A_ASSOCIATE_RQ
    from pynetdicom.pdu_primitives import A_ASSOCIATE, MaximumLengthNotification
    from pynetdicom.presentation import build_context

    prim = A_ASSOCIATE()
    prim.application_context_name = "1.2.840.10008.3.1.1.1"
    prim.calling_ae_title = "SLOWLORIS"
    prim.called_ae_title = "SRSERVICE"
    prim.calling_presentation_address = ("127.0.0.1", 0)
    prim.called_presentation_address = ("127.0.0.1", port)
    ctx = build_context(US_MULTIFRAME, [EXPLICIT_LE])
    ctx.context_id = 1
    prim.presentation_context_definition_list = [ctx]
    mln = MaximumLengthNotification()
    mln.maximum_length_received = 16384
    prim.user_information = [mln]
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(prim)
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(pdu.encode())
    head = sock.recv(6)
    assert head[:1] == b"\x02", f"association not accepted: {head!r}"
    length = struct.unpack(">I", head[2:6])[0]
    got = 0
    while got < length:
        got += len(sock.recv(length - got))
    return sock


@pytest.mark.timeout(180)
def test_slowloris_senders_are_dropped(tmp_path: Path,
                                       listener_processes: list[ListenerProcess]) -> None:
    acse, network = 2.0, 3.0
    listener = ListenerProcess(tmp_path / "data", acse_timeout=str(acse),
                               network_timeout=str(network), dimse_timeout=str(network),
                               max_associations="20")
    listener_processes.append(listener)
    limit = 4 * max(acse, network) + 10
    results: dict[str, float] = {}
    errors: list[BaseException] = []

    def run(name: str, make: Callable[[], tuple[socket.socket, bytes]]) -> None:
        try:
            sock, dribble = make()
            with sock:
                results[name] = _time_to_drop(sock, limit, dribble)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)

    def silent() -> tuple[socket.socket, bytes]:
        return socket.create_connection(("127.0.0.1", listener.port), timeout=10), b""

    def partial_rq() -> tuple[socket.socket, bytes]:
        # A-ASSOCIATE-RQ header announcing 1,000 bytes, then one byte per half second.
        return (socket.create_connection(("127.0.0.1", listener.port), timeout=10),
                b"\x01\x00" + struct.pack(">I", 1000) + b"\x00\x01" + b"\x00" * 200)

    def idle_association() -> tuple[socket.socket, bytes]:
        return _associate_raw(listener.port), b""

    def stalled_pdata() -> tuple[socket.socket, bytes]:
        # P-DATA-TF announcing 100,000 bytes, dribbled.
        return _associate_raw(listener.port), b"\x04\x00" + struct.pack(">I", 100000) + b"\x00" * 50

    threads = [threading.Thread(target=run, args=(n, f)) for n, f in
               [("silent TCP connection", silent), ("partial A-ASSOCIATE-RQ dribbled", partial_rq),
                ("idle established association", idle_association),
                ("stalled P-DATA dribbled", stalled_pdata)]]
    for t in threads:
        t.start()
    # Meanwhile a normal sender is served.
    inst = with_new_uids(phantom_part10())
    sender = Sender(listener.port, [(US_MULTIFRAME, EXPLICIT_LE)], tmp_path / "s", timeout=10)
    assert sender.established and sender.send(inst) == 0x0000
    sender.release()
    for t in threads:
        t.join(timeout=limit + 30)
    assert errors == [], errors
    assert set(results) == {"silent TCP connection", "partial A-ASSOCIATE-RQ dribbled",
                            "idle established association", "stalled P-DATA dribbled"}
    for name, seconds in results.items():
        assert seconds <= 2 * max(acse, network) + 5, f"{name}: dropped after {seconds:.1f} s"
        figures.record("slowloris", f"{name}: dropped after", seconds,
                       f"s (acse {acse:g} s, network {network:g} s)")
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
    prim = extra.assoc.acceptor.primitive
    assert (int(prim.result), int(prim.result_source), int(prim.diagnostic)) == (2, 3, 2)
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
