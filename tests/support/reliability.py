"""Helpers of the reliability suite: phantom pullbacks as raw Part 10 bytes, a C-STORE sender
that sends those bytes unchanged, spool inspection, PKI and process trees.

Everything here talks to the real listener (:func:`srservice.listener.scp.start_scp` or the
``python -m srservice.listener.scp`` / ``srservice serve`` processes); nothing is mocked.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import struct
import subprocess
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, _config

from srservice.config import Settings
from tests.support.datasets import US_MULTIFRAME
from tests.support.listener import listener_settings

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
RLE = "1.2.840.10008.1.2.5"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"

LONG_RUN = os.environ.pop("SRSERVICE_LONG_RUN", "").lower() in {"1", "true", "yes"}
"""Bigger parameters (2 GiB instance, 10,000 fuzz cases, 50 associations): docs/reliability.md.

The variable is removed from this process's environment once read: it is not a service setting
and :func:`srservice.config.load_settings` refuses unknown ``SRSERVICE_*`` variables.
"""


# --- datasets as raw bytes -------------------------------------------------------------------
@dataclass(frozen=True)
class RawInstance:
    """A Part 10 object split into File Meta Information and the data set bytes as sent."""

    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    data: bytes

    @property
    def sha256(self) -> str:
        """SHA-256 of the data set bytes (what the spool's ``StoredInstance.sha256`` holds)."""
        return hashlib.sha256(self.data).hexdigest()

    def part10(self) -> bytes:
        """Preamble + meta + the data set bytes unchanged (PS3.10 7.1)."""
        from pydicom.dataset import FileMetaDataset

        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = UID(self.sop_class_uid)
        meta.MediaStorageSOPInstanceUID = UID(self.sop_instance_uid)
        meta.TransferSyntaxUID = UID(self.transfer_syntax_uid)
        meta.ImplementationClassUID = UID("1.2.826.0.1.3680043.10.1184.99")
        buf = DicomBytesIO()
        write_file_meta_info(buf, meta, enforce_standard=True)
        return b"\x00" * 128 + b"DICM" + buf.getvalue() + self.data

    def write(self, path: Path) -> Path:
        """Write :meth:`part10` to ``path``."""
        path.write_bytes(self.part10())
        return path


def split_part10(blob: bytes) -> tuple[bytes, bytes]:
    """Return (meta bytes with preamble, data set bytes) of a Part 10 file with group length."""
    assert blob[128:132] == b"DICM", "not a Part 10 file"
    group_length = int.from_bytes(blob[140:144], "little")
    cut = 144 + group_length
    return blob[:cut], blob[cut:]


@lru_cache(maxsize=16)
def phantom_part10(frames: int = 6, rows: int = 64, transfer_syntax: str = "explicit",
                   kind: str = "calcium", seed: int = 0) -> bytes:
    """A small phantom IVUS pullback (``srservice.phantom``) as Part 10 bytes (cached)."""
    import tempfile

    from srservice.phantom import small_case
    from srservice.phantom.writer import write_pullback

    case = small_case(kind, frames=frames, rows=rows, seed=seed)
    with tempfile.TemporaryDirectory() as d:
        path = write_pullback(case, Path(d) / "p.dcm", transfer_syntax=transfer_syntax)
        return path.read_bytes()


def set_uid_in_data(data: bytes, old: str, new: str) -> bytes:
    """Replace the value of a UID element in encoded data set bytes (same padded length)."""
    def padded(u: str) -> bytes:
        b = u.encode("ascii")
        return b + b"\x00" if len(b) % 2 else b
    o, n = padded(old), padded(new)
    assert len(o) == len(n), "UIDs must have the same padded length"
    assert data.count(o) >= 1
    return data.replace(o, n)


def with_new_uids(blob: bytes) -> RawInstance:
    """Return a phantom Part 10 blob as a :class:`RawInstance` with fresh SOP Instance UID."""
    from pydicom import dcmread

    _, data = split_part10(blob)
    meta = dcmread(DicomBytesIO(blob), stop_before_pixels=True).file_meta
    old = str(meta.MediaStorageSOPInstanceUID)
    new = same_length_uid(old)
    return RawInstance(str(meta.MediaStorageSOPClassUID), new, str(meta.TransferSyntaxUID),
                       set_uid_in_data(data, old, new))


_UID_RNG_LOCK = threading.Lock()


def same_length_uid(old: str) -> str:
    """A new random valid UID (``2.25.<digits>``, PS3.5 B.2) as long as ``old`` (for patching)."""
    import secrets

    n = max(len(old) - 5, 10)
    with _UID_RNG_LOCK:
        digits = str(secrets.randbelow(9) + 1) + "".join(
            str(secrets.randbelow(10)) for _ in range(n - 1))
    return "2.25." + digits


def dataset_from_part10(path: Path) -> bytes:
    """The data set bytes of a stored Part 10 file."""
    return split_part10(path.read_bytes())[1]


def sha256_of_stored(path: Path) -> str:
    """SHA-256 of the data set bytes of a stored file, streamed (large files)."""
    with path.open("rb") as fh:
        head = fh.read(144)
        assert head[128:132] == b"DICM"
        fh.seek(144 + int.from_bytes(head[140:144], "little"))
        h = hashlib.sha256()
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# --- sending -----------------------------------------------------------------------------------
def make_ae(contexts: Iterable[tuple[str, str]], ae_title: str = "RELSCU",
            timeout: float = 30.0) -> AE:
    """A requestor AE with the given (SOP class, transfer syntax) contexts."""
    ae = AE(ae_title=ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    seen: set[tuple[str, str]] = set()
    for sop_class, ts in contexts:
        if (sop_class, ts) not in seen:
            seen.add((sop_class, ts))
            ae.add_requested_context(sop_class, [ts])
    return ae


class Sender:
    """One association that sends :class:`RawInstance` bytes unchanged (chunked from a file).

    pynetdicom sends a Part 10 file's data set as it is on disk when
    ``STORE_SEND_CHUNKED_DATASET`` is set, so malformed bytes reach the listener unaltered.
    """

    def __init__(self, port: int, contexts: Iterable[tuple[str, str]], workdir: Path, *,
                 called_ae: str = "SRSERVICE", calling_ae: str = "RELSCU",
                 timeout: float = 30.0, tls_args: Any = None) -> None:
        _config.STORE_SEND_CHUNKED_DATASET = True
        self.ae = make_ae(contexts, calling_ae, timeout)
        self.port = port
        self.called_ae = called_ae
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        kwargs: dict[str, Any] = {"tls_args": tls_args} if tls_args is not None else {}
        self.assoc = self.ae.associate("127.0.0.1", port, ae_title=called_ae, **kwargs)

    @property
    def established(self) -> bool:
        return bool(self.assoc.is_established)

    def send(self, inst: RawInstance) -> int | None:
        """C-STORE the instance; return the status, or None when no response came."""
        path = inst.write(self.workdir / f"{threading.get_ident()}.dcm")
        try:
            status = self.assoc.send_c_store(path)
        finally:
            path.unlink(missing_ok=True)
        return int(status.Status) if "Status" in status else None

    def rejection(self) -> tuple[int, int, int]:
        """(result, source, diagnostic) of an A-ASSOCIATE-RJ (PS3.8 Table 9-21)."""
        prim = self.assoc.acceptor.primitive
        assert prim is not None, "no A-ASSOCIATE response"
        return (int(prim.result or 0), int(prim.result_source or 0),
                int(prim.diagnostic or 0))

    def release(self) -> None:
        if self.assoc.is_established:
            self.assoc.release()
        self.ae.shutdown()


# --- spool inspection ----------------------------------------------------------------------------
def spool_finals(spool: Path) -> list[Path]:
    """Every published instance file in a spool (not tmp/incoming)."""
    return sorted(p for p in spool.glob("*/*.dcm") if p.parent.name not in {"tmp", "incoming"})


def spool_partials(spool: Path) -> list[Path]:
    """Files left in the spool's ``tmp`` and ``incoming`` directories."""
    out: list[Path] = []
    for name in ("tmp", "incoming"):
        d = spool / name
        if d.is_dir():
            out.extend(p for p in d.iterdir() if p.is_file())
    return out


def finals_for(spool: Path, sop_instance_uid: str) -> list[Path]:
    """Published files of one SOP Instance UID (any fan-out directory)."""
    return sorted(p for p in spool.glob(f"*/{sop_instance_uid}.*.dcm")
                  if p.parent.name not in {"tmp", "incoming"})


def reliability_settings(data_dir: Path, **overrides: Any) -> Settings:
    """:func:`tests.support.listener.listener_settings` with WARNING logging."""
    return listener_settings(data_dir, **{"log_level": "WARNING", **overrides})


# --- child processes -------------------------------------------------------------------------
def kill_tree(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL a child started with ``start_new_session=True`` and its process group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def chunks(items: list[Any], n: int) -> Iterator[list[Any]]:
    """Split ``items`` into ``n`` nearly equal lists."""
    for i in range(n):
        yield items[i::n]


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
