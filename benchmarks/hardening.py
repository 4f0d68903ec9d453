"""Memory and time of the header and decompression bombs, for any checkout of the code.

Sends a header bomb (1.2 million tiny private elements, 11.5 MiB) and a deflate bomb (a
deflated phantom with 512 MiB of trailing padding, about 0.5 MiB sent) to ``python -m
srservice.listener.scp`` started from ``--code`` and reports the C-STORE status, the time and
the listener's peak RSS (VmHWM); then runs ``load_pullback`` (the worker's loader) from
``--code`` on the header bomb and on JPEG frames whose SOF claims 8000 x 8000 and 65535 x
65535 inside a 64 x 64 object, and reports the outcome, time and peak RSS of that process
(address space limited to ``--limit-gib`` so an old checkout cannot take the machine down).

    .venv/bin/python benchmarks/hardening.py                      # this checkout
    git archive e535c42 | tar -x -C /tmp/before                   # the code before the fix
    .venv/bin/python benchmarks/hardening.py --code /tmp/before
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.bombs import (  # noqa: E402
    deflate_bomb,
    frame_header_bomb,
    header_bomb,
)
from tests.support.datasets import US_MULTIFRAME  # noqa: E402
from tests.support.listener import read_line_with_deadline, rss_now_kb, rss_peak_kb  # noqa: E402
from tests.support.reliability import RawInstance, Sender  # noqa: E402

_LOAD = """
import json, resource, sys, time
from srservice.dicomio import load_pullback
t0 = time.monotonic()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    loaded = load_pullback(sys.argv[1])
    outcome = "loaded " + str(loaded.pullback.frames.shape)
except BaseException as exc:
    outcome = type(exc).__name__ + ": " + str(exc)
print(json.dumps({"outcome": outcome[:110], "seconds": time.monotonic() - t0,
                  "base_kb": base, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def _env(code: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SRSERVICE_")}
    env["PYTHONPATH"] = str(code)
    env["OMP_NUM_THREADS"] = "1"
    return env


def listener_bomb(code: Path, work: Path, bomb: RawInstance) -> str:
    """Send ``bomb`` to a listener from ``code``; return a one-line result."""
    env = _env(code) | {"SRSERVICE_DATA_DIR": str(work / "data"), "SRSERVICE_PORT": "0",
                        "SRSERVICE_HOST": "127.0.0.1", "SRSERVICE_MIN_FREE_DISK_MB": "1",
                        "SRSERVICE_LOG_LEVEL": "WARNING", "SRSERVICE_DIMSE_TIMEOUT": "600",
                        "SRSERVICE_NETWORK_TIMEOUT": "600"}
    proc = subprocess.Popen([sys.executable, "-m", "srservice.listener.scp"], cwd=code, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = read_line_with_deadline(proc, 60.0)
        port = int(line.split()[1])
        base = rss_now_kb(proc.pid)
        sender = Sender(port, [(US_MULTIFRAME, bomb.transfer_syntax_uid)], work / "s",
                        timeout=600)
        t0 = time.monotonic()
        status = sender.send(bomb)
        elapsed = time.monotonic() - t0
        sender.release()
        peak = rss_peak_kb(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    shown = "none" if status is None else f"0x{status:04X}"
    return (f"status {shown} after {elapsed:.1f} s; listener RSS {base / 1024:.0f} MiB -> "
            f"peak {peak / 1024:.0f} MiB")


def load(code: Path, path: Path, limit_gib: float) -> str:
    """Run load_pullback from ``code`` on ``path`` in a child; return a one-line result."""
    limit = int(limit_gib * 2**30)

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    proc = subprocess.run([sys.executable, "-c", _LOAD, str(path)], cwd=code, env=_env(code),
                          capture_output=True, text=True, timeout=1800, preexec_fn=cap,
                          check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        return f"process died rc={proc.returncode}: {proc.stderr.strip()[-200:]}"
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    return (f"{r['outcome']} | {r['seconds']:.2f} s, peak RSS {r['peak_kb'] / 1024:.0f} MiB "
            f"(+{(r['peak_kb'] - r['base_kb']) / 1024:.0f})")


def main() -> int:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout to measure")
    parser.add_argument("--limit-gib", type=float, default=6.0)
    args = parser.parse_args()
    code = args.code.resolve()
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        print(f"code: {code}")
        print(f"header bomb -> listener: {listener_bomb(code, work, header_bomb(1_200_000))}")
        deflated = deflate_bomb(512 * 1024**2)
        print(f"deflated, 512 MiB trailing padding ({len(deflated.data) >> 10} KiB) -> listener: "
              f"{listener_bomb(code, work, deflated)}")
        bomb = header_bomb(1_200_000).write(work / "header-bomb.dcm")
        print(f"header bomb -> load_pullback: {load(code, bomb, args.limit_gib)}")
        for size in (8000, 65535):
            path = frame_header_bomb("jpeg_baseline", size, size).write(work / f"j{size}.dcm")
            print(f"JPEG SOF {size}x{size} (4 frames, {path.stat().st_size} bytes) -> "
                  f"load_pullback: {load(code, path, args.limit_gib)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
