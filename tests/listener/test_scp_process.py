"""The listener as a separate process: bounded memory for a large pullback, SIGKILL mid-transfer."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, _config, evt

from tests.support.datasets import US_MULTIFRAME, dataset_bytes, make_dataset, write_dataset
from tests.support.environment import require_tool, wait_for
from tests.support.listener import ListenerProcess, rss_peak_kb


def _sha(data_path: Path) -> str:
    return hashlib.sha256(dataset_bytes(data_path)).hexdigest()


def _big_file(path: Path, frames: int) -> Path:
    rows = cols = 512
    pixels = (np.arange(frames * rows * cols, dtype=np.uint32) % 251).astype(np.uint8)
    ds = make_dataset(frames=frames, rows=rows, cols=cols, pixel_bytes=pixels.tobytes())
    return write_dataset(ds, path)


def _send_large_and_measure(tmp_path: Path, listener_processes: list[ListenerProcess],
                            frames: int) -> tuple[int, int]:
    storescu = require_tool("storescu")
    source = _big_file(tmp_path / "big.dcm", frames)
    size = source.stat().st_size
    listener = ListenerProcess(tmp_path / "data")
    listener_processes.append(listener)
    before = rss_peak_kb(listener.proc.pid)
    out = subprocess.run([storescu, "-aet", "SENDER", "-aec", "SRSERVICE", "127.0.0.1",
                          str(listener.port), str(source)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    finals = listener.finals()
    assert len(finals) == 1
    assert _sha(finals[0]) == _sha(source)
    growth_kb = rss_peak_kb(listener.proc.pid) - before
    print(f"\nlarge instance: {size / 2**20:.0f} MiB; listener peak RSS growth "
          f"{growth_kb / 1024:.1f} MiB")
    return size, growth_kb * 1024


@pytest.mark.timeout(300)
def test_large_multiframe_bounded_memory(tmp_path: Path,
                                         listener_processes: list[ListenerProcess]) -> None:
    size, growth = _send_large_and_measure(tmp_path, listener_processes, frames=160)  # 40 MiB
    assert growth < size / 2


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_200mb_multiframe_bounded_memory(tmp_path: Path,
                                         listener_processes: list[ListenerProcess]) -> None:
    size, growth = _send_large_and_measure(tmp_path, listener_processes, frames=800)  # 200 MiB
    assert size > 200e6
    assert growth < 64 * 2**20


def _slow_send(port: int, path: Path, result: dict[str, Any]) -> None:
    """C-STORE ``path`` throttled to ~1.5 MB/s (sleep after each PDU sent)."""
    ae = AE(ae_title="SENDER")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
    ae.add_requested_context(US_MULTIFRAME, [ExplicitVRLittleEndian])
    handlers = [(evt.EVT_PDU_SENT, lambda event: time.sleep(0.01))]
    try:
        assoc = ae.associate("127.0.0.1", port, ae_title="SRSERVICE", max_pdu=16384,
                             evt_handlers=handlers)
        rsp = assoc.send_c_store(path) if assoc.is_established else None
        result["status"] = int(rsp.Status) if rsp is not None and "Status" in rsp else None
        assoc.release()
    except Exception as exc:  # the peer vanished: the sender sees a failure
        result["error"] = repr(exc)


@pytest.mark.timeout(180)
def test_sigkill_mid_transfer_leaves_no_partial_file(
        tmp_path: Path, listener_processes: list[ListenerProcess],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    source = write_dataset(make_dataset(frames=40, rows=256, cols=256), tmp_path / "src.dcm")
    listener = ListenerProcess(tmp_path / "data")
    listener_processes.append(listener)
    result: dict[str, Any] = {}
    sender = threading.Thread(target=_slow_send, args=(listener.port, source, result))
    sender.start()
    incoming = listener.spool / "incoming"
    assert wait_for(lambda: any(p.stat().st_size > 200_000 for p in incoming.iterdir()),
                    timeout=60)
    listener.kill(signal.SIGKILL)
    sender.join(timeout=60)
    assert result.get("status") != 0x0000  # no Success for a killed listener
    assert listener.finals() == []
    assert list(incoming.iterdir()), "expected the crash to leave a partial receive file"
    restarted = ListenerProcess(tmp_path / "data")
    listener_processes.append(restarted)
    assert list(incoming.iterdir()) == [] and list((restarted.spool / "tmp").iterdir()) == []
    ae = AE(ae_title="SENDER")
    ae.add_requested_context(US_MULTIFRAME, [ExplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", restarted.port, ae_title="SRSERVICE")
    assert int(assoc.send_c_store(source).Status) == 0
    assoc.release()
    finals = restarted.finals()
    assert len(finals) == 1 and _sha(finals[0]) == _sha(source)
