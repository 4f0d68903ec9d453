#!/usr/bin/env python3
"""Write the phantom accuracy suite (or some of its cases) as DICOM files plus truth JSON.

Usage: .venv/bin/python scripts/make_phantoms.py OUT_DIR [--case NAME ...] [--ts jpeg_baseline]

Each case gives OUT_DIR/NAME.dcm and OUT_DIR/NAME.truth.json (lesion features and the expected
IVUS calcium score with its components); OUT_DIR/index.json lists the cases.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from srservice.phantom import make_case, standard_suite
from srservice.phantom.writer import TRANSFER_SYNTAXES, write_pullback


def main(argv: list[str] | None = None) -> int:
    """Write the requested cases; return the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--case", action="append", help="case name (repeatable); default: all")
    ap.add_argument("--ts", default="explicit", choices=sorted(TRANSFER_SYNTAXES))
    args = ap.parse_args(argv)
    specs = standard_suite()
    if args.case:
        unknown = set(args.case) - {s.name for s in specs}
        if unknown:
            print(f"unknown case(s): {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        specs = [s for s in specs if s.name in args.case]
    index = []
    for spec in specs:
        t0 = time.perf_counter()
        case = make_case(spec)
        path = write_pullback(case, args.out_dir / f"{spec.name}.dcm", transfer_syntax=args.ts)
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
        (args.out_dir / f"{spec.name}.truth.json").write_text(json.dumps(truth, indent=1))
        index.append({"name": spec.name, "file": path.name,
                      "expected_score": case.truth.expected_score})
        print(f"{spec.name:24s} {spec.frame_count:4d} frames  score {case.truth.expected_score}"
              f"  {time.perf_counter() - t0:.1f} s")
    (args.out_dir / "index.json").write_text(json.dumps(index, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
