"""Helpers for the listener tests: settings, a recording ``on_stored`` callback, spool
inspection, the bare listener as a child process, and a PKI for DICOM TLS."""

from __future__ import annotations

import os
import selectors
import signal
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from srservice.config import Settings, load_settings
from srservice.listener.spool import Spool, StoredInstance
from tests.support.environment import ROOT


def listener_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Listener settings on 127.0.0.1, any free port, ``data_dir``, small timeouts."""
    values: dict[str, Any] = {
        "data_dir": data_dir, "host": "127.0.0.1", "port": 0,
        "min_free_disk_mb": 1, "acse_timeout": 10.0, "dimse_timeout": 30.0,
        "network_timeout": 30.0,
    }
    values.update(overrides)
    return load_settings(**values)


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    """:func:`listener_settings` with the data directory ``tmp_path / "data"``."""
    return listener_settings(tmp_path / "data", **overrides)


class Recorder:
    """on_stored callback recording calls; optionally raising a given exception."""

    def __init__(self, raise_exc: BaseException | None = None) -> None:
        self.calls: list[StoredInstance] = []
        self.raise_exc = raise_exc
        self._lock = threading.Lock()

    def __call__(self, instance: StoredInstance) -> None:
        with self._lock:
            self.calls.append(instance)
        if self.raise_exc is not None:
            raise self.raise_exc


def spool_files(settings: Settings) -> list[Path]:
    """Every final .dcm file in the spool (not tmp/incoming)."""
    root = settings.spool_dir
    return sorted(p for p in root.glob("*/*.dcm") if p.parent.name not in {"tmp", "incoming"})


def instance_paths(spool: Spool, sop_instance_uid: str) -> list[Path]:
    """Every stored version of one instance in ``spool`` (different content, same UID)."""
    directory = spool.instance_dir(sop_instance_uid)
    return sorted(directory.glob(f"{sop_instance_uid}.*.dcm")) if directory.is_dir() else []


def leftovers(settings: Settings) -> list[Path]:
    """Files in the spool's tmp and incoming directories."""
    out: list[Path] = []
    for name in ("tmp", "incoming"):
        d = settings.spool_dir / name
        if d.is_dir():
            out.extend(d.iterdir())
    return out


def rss_peak_kb(pid: int) -> int:
    """Peak resident set size (VmHWM) of a process in kB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def rss_now_kb(pid: int) -> int:
    """Current resident set size (VmRSS) of a process in kB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def child_env(**extra: str) -> dict[str, str]:
    """Environment for child processes: this repo on PYTHONPATH, no inherited SRSERVICE_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SRSERVICE_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def read_line_with_deadline(proc: subprocess.Popen[str], timeout: float) -> str:
    """Read one stdout line of ``proc`` or return '' after ``timeout`` s / at EOF."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            return ""
        return proc.stdout.readline()
    finally:
        sel.close()


class ListenerProcess:
    """``python -m srservice.listener.scp`` (bare listener) as a child process on a free port."""

    def __init__(self, data_dir: Path, **settings: str) -> None:
        self.data_dir = data_dir
        env = child_env(SRSERVICE_DATA_DIR=str(data_dir), SRSERVICE_HOST="127.0.0.1",
                        SRSERVICE_PORT="0", SRSERVICE_MIN_FREE_DISK_MB="1",
                        SRSERVICE_LOG_LEVEL="WARNING",
                        **{f"SRSERVICE_{k.upper()}": v for k, v in settings.items()})
        self.proc = subprocess.Popen([sys.executable, "-m", "srservice.listener.scp"], cwd=ROOT,
                                     env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        line = read_line_with_deadline(self.proc, 60.0)
        assert line.startswith("LISTENING "), f"listener did not start: {line!r}"
        self.port = int(line.split()[1])

    @property
    def spool(self) -> Path:
        return self.data_dir / "spool"

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    def finals(self) -> list[Path]:
        """Every published instance file in the spool (not tmp/incoming)."""
        return sorted(p for p in self.spool.glob("*/*.dcm")
                      if p.parent.name not in {"tmp", "incoming"})

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the process (default SIGKILL) and reap it."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)


class RunningScp:
    """An in-process listener started with :func:`srservice.listener.scp.start_scp`."""

    def __init__(self, settings: Settings, callback: Recorder, server: Any) -> None:
        self.settings = settings
        self.callback = callback
        self.server = server

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def spool(self) -> Path:
        return self.settings.spool_dir


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


def tls_client_context(pki: dict[str, Path], cert: str | None) -> ssl.SSLContext:
    """A client context trusting ``pki``'s CA and presenting ``cert`` (None: no certificate)."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki["ca"]))
    ctx.check_hostname = False
    if cert is not None:
        ctx.load_cert_chain(str(pki[cert]), str(pki[f"{cert}_key"]))
    return ctx
