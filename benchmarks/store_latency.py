"""Where the time of a C-STORE answer goes: per-case latency and the listener's phases.

Sends the fuzz corpus of ``tests/support/fuzz.py`` (the cases of
``tests/reliability/test_fuzz.py::test_fuzz_store_path``) with ``--senders`` concurrent
associations to the real listener (:func:`srservice.listener.scp.start_scp`, in process, as
the test does) and prints the slowest answers, and for the listener the time spent in
``check_received``, in ``fsync`` of the spool file and of its directory, in ``Spool.add`` and
in the whole C-STORE handler (median, p99, max). ``--burn N`` runs N busy-looping processes
meanwhile, as a loaded CI machine would.

Usage: ``nice .venv/bin/python benchmarks/store_latency.py [--senders 4] [--count 1000]
[--burn 2]``
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import srservice.listener.scp as scp_module
import srservice.listener.spool as spool_module
from srservice.listener.scp import start_scp
from tests.support.fuzz import SEED, FuzzCase, contexts, corpus
from tests.support.listener import Recorder
from tests.support.reliability import Sender, reliability_settings

PHASES: dict[str, list[float]] = collections.defaultdict(list)
_LOCK = threading.Lock()


def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``fn`` so that each call's duration is added to ``PHASES[name]``."""
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            with _LOCK:
                PHASES[name].append(time.perf_counter() - start)
    return wrapper


def instrument() -> None:
    """Time the listener's phases (the names the spool module calls)."""
    # The names the spool module imported (not re-exported, hence the ignores).
    spool_module.fsync_file = timed(  # type: ignore[attr-defined]
        "fsync spool file", spool_module.fsync_file)  # type: ignore[attr-defined]
    spool_module.fsync_dir = timed(  # type: ignore[attr-defined]
        "fsync directory", spool_module.fsync_dir)  # type: ignore[attr-defined]
    spool_module.check_received = timed(  # type: ignore[attr-defined]
        "check_received", spool_module.check_received)  # type: ignore[attr-defined]
    spool_module.Spool.add = timed("Spool.add", spool_module.Spool.add)  # type: ignore[method-assign]
    scp_module.Listener.on_store = timed(  # type: ignore[method-assign]
        "C-STORE handler", scp_module.Listener.on_store)


def quantiles(values: list[float]) -> str:
    """Median, p99 and max in ms."""
    v = sorted(values)
    return (f"n={len(v)} median {v[len(v) // 2] * 1e3:.1f} ms, p99 "
            f"{v[int(len(v) * 0.99)] * 1e3:.1f} ms, max {v[-1] * 1e3:.1f} ms")


def main() -> None:
    """Run the corpus and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--burn", type=int, default=0)
    args = parser.parse_args()
    instrument()
    cases = corpus(SEED, args.count)
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
               for _ in range(args.burn)]
    latency: dict[int, tuple[float, int | None, str]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            server = start_scp(reliability_settings(Path(tmp) / "data"), Recorder())
            port = int(server.server_address[1])

            def send_all(share: list[FuzzCase], k: int) -> None:
                sender = Sender(port, contexts(), Path(tmp) / f"s{k}", timeout=300.0)
                for case in share:
                    start = time.perf_counter()
                    status = sender.send(case.instance)
                    latency[case.number] = (time.perf_counter() - start, status,
                                            case.description)
                sender.release()

            start = time.perf_counter()
            threads = [threading.Thread(target=send_all, args=(cases[k::args.senders], k))
                       for k in range(args.senders)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - start
            server.shutdown()
            server.server_close()
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    print(f"{len(latency)} cases, {args.senders} senders, {args.burn} busy processes: "
          f"{elapsed:.1f} s ({len(latency) / elapsed:.1f} cases/s)")
    print("answer latency:", quantiles([v[0] for v in latency.values()]))
    for number, (seconds, status, what) in sorted(latency.items(), key=lambda kv: -kv[1][0])[:5]:
        print(f"  #{number}: {seconds:.2f} s, status {status}, {what[:70]}")
    for name, values in PHASES.items():
        print(f"{name}: {quantiles(values)}, total {sum(values):.1f} s")


if __name__ == "__main__":
    main()
