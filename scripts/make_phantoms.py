#!/usr/bin/env python3
"""Write a phantom suite (or some of its cases) as DICOM files plus truth JSON.

Usage:
  .venv/bin/python scripts/make_phantoms.py OUT_DIR [--case NAME ...] [--ts jpeg_baseline]
  .venv/bin/python scripts/make_phantoms.py --suite realistic --out DIR [--case NAME] [--stats]

``--suite standard`` (default) is the clean accuracy suite; ``--suite realistic`` the
console-export look (srservice.phantom.realistic_suite), whose truth JSON has the keys of
``srservice analyze --json`` plus ``expected`` {score, L, C, N, D}. Each case gives
OUT_DIR/NAME.dcm and OUT_DIR/NAME.truth.json; OUT_DIR/index.json lists the cases.
``--stats`` prints the image statistics of the calcium-free frames of every realistic case and
the figures outside the target ranges (srservice.phantom.imagestats).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from srservice.phantom import make_case, standard_suite
from srservice.phantom.writer import TRANSFER_SYNTAXES, write_pullback


def _selected(specs: list[Any], names: list[str] | None) -> list[Any] | None:
    """Return the cases named (all without names); None after naming the unknown ones."""
    if not names:
        return specs
    unknown = set(names) - {s.name for s in specs}
    if unknown:
        print(f"unknown case(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return None
    return [s for s in specs if s.name in names]


def _standard(out: Path, names: list[str] | None, ts: str) -> int:
    specs = _selected(standard_suite(), names)
    if specs is None:
        return 2
    index = []
    for spec in specs:
        t0 = time.perf_counter()
        case = make_case(spec)
        path = write_pullback(case, out / f"{spec.name}.dcm", transfer_syntax=ts)
        truth = {
            "name": spec.name,
            "description": spec.description,
            "intended_score": spec.intended_score,
            "expected_score": case.truth.expected_score,
            "pixel_spacing_mm": case.pixel_spacing_mm,
            "frame_spacing_mm": case.frame_spacing_mm,
            "lesions": [dataclasses.asdict(les) for les in case.truth.lesions],
            "scores": [
                {**dataclasses.asdict(s), "total": s.total} for s in case.truth.scores
            ],
            "frames": [
                {
                    "frame": f.frame,
                    "assessable": f.assessable,
                    "lumen_area_mm2": f.lumen_area_mm2,
                    "eem_area_mm2": f.eem_area_mm2,
                    "eem_mean_diameter_mm": f.eem_mean_diameter_mm,
                    "calcium_arc_deg": f.calcium_arc_deg,
                    "superficial_calcium_arc_deg": f.superficial_calcium_arc_deg,
                    "calcified_nodule": f.calcified_nodule,
                }
                for f in case.truth.frames
            ],
        }
        (out / f"{spec.name}.truth.json").write_text(json.dumps(truth, indent=1))
        index.append({"name": spec.name, "file": path.name,
                      "expected_score": case.truth.expected_score})
        print(f"{spec.name:24s} {spec.frame_count:4d} frames  score {case.truth.expected_score}"
              f"  {time.perf_counter() - t0:.1f} s", flush=True)
    (out / "index.json").write_text(json.dumps(index, indent=1))
    return 0


def _realistic(out: Path, names: list[str] | None, stats: bool) -> int:
    from srservice.phantom.imagestats import pullback_stats, target_failures
    from srservice.phantom.realistic_suite import make_realistic_case, realistic_suite
    from srservice.phantom.writer import write_realistic_case

    specs = _selected(realistic_suite(), names)
    if specs is None:
        return 2
    index: list[dict[str, Any]] = []
    outside = 0
    for spec in specs:
        t0 = time.perf_counter()
        rc = make_realistic_case(spec)
        path, _, doc = write_realistic_case(rc, out)
        index.append({"name": spec.name, "file": path.name, "expected": doc["expected"]})
        e = doc["expected"]
        comp = "".join(k for k in "LCND" if e[k]) or "-"
        line = (f"{spec.name:24s} {spec.base.frame_count:4d} frames  score {e['score']} "
                f"[{comp:4s}]  {time.perf_counter() - t0:5.1f} s")
        if stats:
            free = rc.calcium_free_frames()
            if len(free) >= 4:
                s = pullback_stats(rc.case.frames[free], rc.case.pixel_spacing_mm,
                                   rc.case.catheter_center)
                bad = target_failures(s)
                outside += bool(bad)
                line += (f"\n    {len(free)} calcium-free frames: {json.dumps(s.as_dict())}"
                         f"\n    outside target: {bad or 'none'}")
            else:
                line += "\n    fewer than 4 calcium-free frames: no statistics"
        print(line, flush=True)
    (out / "index.json").write_text(json.dumps(index, indent=1))
    if stats:
        print(f"{outside} case(s) with figures outside the target ranges")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Write the requested cases; return the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path, nargs="?", help="output directory (or --out)")
    ap.add_argument("--out", type=Path, help="output directory")
    ap.add_argument("--suite", choices=("standard", "realistic"), default="standard")
    ap.add_argument("--case", action="append", help="case name (repeatable); default: all")
    ap.add_argument("--ts", default="explicit", choices=sorted(TRANSFER_SYNTAXES),
                    help="transfer syntax (standard suite; realistic cases choose their own)")
    ap.add_argument("--stats", action="store_true",
                    help="print image statistics of calcium-free frames (realistic suite)")
    args = ap.parse_args(argv)
    out: Path | None = args.out or args.out_dir
    if out is None:
        ap.error("give OUT_DIR or --out DIR")
    out.mkdir(parents=True, exist_ok=True)
    if args.suite == "realistic":
        return _realistic(out, args.case, args.stats)
    return _standard(out, args.case, args.ts)


if __name__ == "__main__":
    sys.exit(main())
