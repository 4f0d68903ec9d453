"""Speed and memory of analyze_pullback on one core.

Run: ``.venv/bin/python benchmarks/speed.py [--frames N] [--rows 512] [--json]``

A 512 x 512 phantom pullback is rendered (a short one, repeated along the pullback to reach
``--frames``), then :func:`srservice.analysis.pipeline.analyze_pullback` is timed with every
BLAS/OpenMP pool limited to one thread. Peak memory is the process's maximum resident set
size (``resource.getrusage``) compared with the target ``1.5 x decoded pixels + 300 MB``.
Wall-clock frames/s suffer when other processes share the core; frames per CPU second
(``time.process_time``) is the figure for "one core"; the best of ``--repeat`` runs is
reported (with the median wall-clock rate), the usual way to time code on a shared machine.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from srservice.analysis.pipeline import analyze_pullback  # noqa: E402
from srservice.analysis.types import Pullback  # noqa: E402
from srservice.phantom import CaseSpec, LesionSpec, make_case  # noqa: E402


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv: list[str] | None = None) -> int:
    """Render, time, print."""
    ap = argparse.ArgumentParser(description="analyze_pullback speed on one core")
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--rows", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs (best is reported)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    ps = 0.015 * 512 / args.rows
    spec = CaseSpec(name="speed", seed=7, rows=args.rows, pixel_spacing_mm=ps, frame_count=60,
                    pullback_rate_mm_s=1.0,
                    lesions=(LesionSpec(1.0, 1.2, 300, over_270_mm=0.4),))
    case = make_case(spec)
    base = case.pullback().frames
    reps = -(-args.frames // base.shape[0])
    frames = np.ascontiguousarray(np.concatenate([base] * reps)[: args.frames])
    pullback = Pullback(frames=frames, pixel_spacing_mm=ps,
                        frame_spacing_mm=case.frame_spacing_mm,
                        catheter_center=case.catheter_center)
    analyze_pullback(Pullback(frames=frames[:30], pixel_spacing_mm=ps,
                              frame_spacing_mm=case.frame_spacing_mm,
                              catheter_center=case.catheter_center))  # warm-up
    rss_before = _maxrss_mb()
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(max(1, args.repeat)):
        t0 = time.perf_counter()
        c0 = time.process_time()
        analysis = analyze_pullback(pullback)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    peak = _maxrss_mb()
    dt, cpu = min(walls), min(cpus)
    decoded_mb = frames.nbytes / 2**20
    out = {
        "frames": int(frames.shape[0]),
        "rows": args.rows,
        "seconds": dt,
        "frames_per_second": frames.shape[0] / dt,
        "cpu_seconds": cpu,
        "frames_per_cpu_second": frames.shape[0] / cpu,
        "median_frames_per_second": frames.shape[0] / float(np.median(walls)),
        "repeats": len(walls),
        "decoded_mb": decoded_mb,
        "peak_rss_mb": peak,
        "rss_before_analysis_mb": rss_before,
        "memory_target_mb": 1.5 * decoded_mb + 300.0,
        "lesions": len(analysis.lesions),
    }
    out["speed_target_met"] = out["frames_per_cpu_second"] >= 300.0
    out["memory_target_met"] = peak <= out["memory_target_mb"]
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k}: {v:.2f}" if isinstance(v, float) else f"{k}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
