"""Helpers of the reliability suite: phantom pullbacks as raw Part 10 bytes, a C-STORE sender
that sends those bytes unchanged, spool inspection, child processes, PKI and waiting.

Everything here talks to the real listener (:func:`srservice.scp.start_scp` or the
``python -m srservice.scp`` / ``srservice serve`` processes); nothing is mocked.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID
from pynetdicom import AE, _config

from srservice.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
RLE = "1.2.840.10008.1.2.5"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"

LONG_RUN = os.environ.pop("SRSERVICE_LONG_RUN", "").lower() in {"1", "true", "yes"}
"""Bigger parameters (2 GiB instance, 10,000 fuzz cases, 50 associations): docs/reliability.md.

The variable is removed from this process's environment once read: it is not a service setting
and :func:`srservice.config.load_settings` refuses unknown ``SRSERVICE_*`` variables.
"""


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, step: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


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
    """Listener settings on 127.0.0.1, port 0, a private data dir, short timeouts."""
    values: dict[str, Any] = {
        "data_dir": data_dir, "host": "127.0.0.1", "port": 0, "min_free_disk_mb": 1,
        "acse_timeout": 10.0, "dimse_timeout": 30.0, "network_timeout": 30.0,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return load_settings(**values)


# --- child processes -------------------------------------------------------------------------
def child_env(**extra: str) -> dict[str, str]:
    """Environment for child processes: this repo on PYTHONPATH, no inherited SRSERVICE_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SRSERVICE_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


class ListenerProcess:
    """``python -m srservice.scp`` (bare listener) as a child process on a free port."""

    def __init__(self, data_dir: Path, **settings: str) -> None:
        self.data_dir = data_dir
        env = child_env(SRSERVICE_DATA_DIR=str(data_dir), SRSERVICE_HOST="127.0.0.1",
                        SRSERVICE_PORT="0", SRSERVICE_MIN_FREE_DISK_MB="1",
                        SRSERVICE_LOG_LEVEL="WARNING",
                        **{f"SRSERVICE_{k.upper()}": v for k, v in settings.items()})
        self.proc = subprocess.Popen([sys.executable, "-m", "srservice.scp"], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        assert self.proc.stdout is not None
        line = read_line_with_deadline(self.proc, 60.0)
        assert line.startswith("LISTENING "), f"listener did not start: {line!r}"
        self.port = int(line.split()[1])

    @property
    def spool(self) -> Path:
        return self.data_dir / "spool"

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the process (default SIGKILL) and reap it."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)


def read_line_with_deadline(proc: subprocess.Popen[str], timeout: float) -> str:
    """Read one stdout line of ``proc`` or return '' after ``timeout`` s / at EOF."""
    import selectors

    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            return ""
        return proc.stdout.readline()
    finally:
        sel.close()


def rss_peak_kb(pid: int) -> int:
    """Peak resident set size (VmHWM) of a Linux process in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc status")


def rss_now_kb(pid: int) -> int:
    """Current resident set size (VmRSS) of a Linux process in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc status")


# --- PKI with the openssl CLI ------------------------------------------------------------------
def issue_pki(openssl: str, d: Path) -> dict[str, Path]:
    """CA, server and client certificates signed by the CA, and a self-signed rogue client."""
    def run(*args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, timeout=60)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    out: dict[str, Path] = {}
    for name in ("ca", "rogue"):
        out[f"{name}_key"], out[name] = d / f"{name}.key", d / f"{name}.pem"
        run(openssl, "req", "-x509", *ec, "-keyout", str(out[f"{name}_key"]), "-out",
            str(out[name]), "-days", "2", "-subj", f"/CN=rel-{name}")
    for name in ("server", "client"):
        key, crt, csr, ext = (d / f"{name}.key", d / f"{name}.pem", d / f"{name}.csr",
                              d / f"{name}.ext")
        ext.write_text("subjectAltName=IP:127.0.0.1\n")
        run(openssl, "req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", f"/CN=rel-{name}")
        run(openssl, "x509", "-req", "-in", str(csr), "-CA", str(out["ca"]), "-CAkey",
            str(out["ca_key"]), "-CAcreateserial", "-out", str(crt), "-days", "2",
            "-extfile", str(ext))
        out[f"{name}_key"], out[name] = key, crt
    return out


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
