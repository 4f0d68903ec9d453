"""Accuracy of srservice.analysis on the phantom suite (issue 2 targets).

Run: ``.venv/bin/python benchmarks/accuracy.py [--json] [--cases NAME,NAME]``

For each case of :func:`srservice.phantom.standard_suite` the pullback is rendered, analysed
with :func:`srservice.analysis.pipeline.analyze_pullback` and compared with the phantom's
ground truth: IVUS calcium score (exact agreement, per component), per-frame calcium arc MAE
(all and superficial), per-A-line calcium Dice, lumen and EEM area relative error, nodule
frame sensitivity/precision.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from srservice.analysis.pipeline import analyze_pullback
from srservice.analysis.types import LesionFeatures, PullbackAnalysis
from srservice.phantom import make_case, standard_suite
from srservice.phantom.case import PhantomCase

COMPONENTS = ("long_calcium", "circumferential", "nodule", "small_vessel")


def components(lesion: LesionFeatures) -> dict[str, int]:
    """The four IVUS calcium score points (Zhang et al. 2021), via srservice.scoring if present.

    Unknown length or diameter count as 0 points here (the benchmark always has spacings).
    """
    try:
        from srservice.scoring import ivus_calcium_score

        score = ivus_calcium_score(lesion)
        names = {"long_superficial_calcium": "long_calcium",
                 "circumferential_calcium": "circumferential",
                 "calcified_nodule": "nodule", "small_vessel": "small_vessel"}
        pts = {names.get(c.name, c.name): int(c.points or 0) for c in score.components}
        if set(pts) == set(COMPONENTS):
            return pts
    except ImportError:
        pass
    length = lesion.length_superficial_calcium_over_270_mm or 0.0
    diam = lesion.vessel_diameter_at_max_calcium_mm
    return {
        "long_calcium": int(length > 5.0),
        "circumferential": int(lesion.circumferential_superficial_calcium),
        "nodule": int(lesion.calcified_nodule),
        "small_vessel": int(diam is not None and diam < 3.5),
    }


def total(lesion: LesionFeatures) -> int:
    """Score 0-4 of one lesion."""
    return sum(components(lesion).values())


def match(truth: LesionFeatures, found: tuple[LesionFeatures, ...]) -> LesionFeatures | None:
    """Detected lesion overlapping the truth lesion most (by frames), or None."""
    best: LesionFeatures | None = None
    best_ov = 0
    for f in found:
        ov = min(truth.end_frame, f.end_frame) - max(truth.start_frame, f.start_frame) + 1
        if ov > best_ov:
            best, best_ov = f, ov
    return best


@dataclass
class CaseResult:
    """Figures of one case."""

    name: str
    seconds: float
    score_truth: int
    score_found: int
    comp_agree: dict[str, list[bool]] = field(default_factory=dict)
    arc_err: list[float] = field(default_factory=list)
    sup_err: list[float] = field(default_factory=list)
    inter: int = 0
    denom: int = 0
    lumen_rel: list[float] = field(default_factory=list)
    eem_rel: list[float] = field(default_factory=list)
    nod_tp: int = 0
    nod_fp: int = 0
    nod_fn: int = 0
    assess_agree: int = 0
    frames: int = 0

    @property
    def dice(self) -> float:
        """Per-A-line calcium Dice over the whole pullback."""
        return 2.0 * self.inter / self.denom if self.denom else 1.0


def evaluate(case: PhantomCase, analysis: PullbackAnalysis, seconds: float) -> CaseResult:
    """Compare one analysis with the phantom truth."""
    tr = case.truth
    found = analysis.lesions
    res = CaseResult(name=case.spec.name, seconds=seconds, score_truth=tr.expected_score,
                     score_found=max((total(x) for x in found), default=0))
    res.comp_agree = {c: [] for c in COMPONENTS}
    for tl in tr.lesions:
        want = components(tl)
        m = match(tl, found)
        got = components(m) if m is not None else dict.fromkeys(COMPONENTS, 0)
        for c in COMPONENTS:
            res.comp_agree[c].append(want[c] == got[c])
    for fm, ft in zip(analysis.frames, tr.frames, strict=True):
        res.frames += 1
        res.assess_agree += int(fm.assessable == ft.assessable)
        if not (fm.assessable and ft.assessable):
            continue
        res.arc_err.append(abs(fm.calcium_arc_deg - ft.calcium_arc_deg))
        res.sup_err.append(abs(fm.superficial_calcium_arc_deg - ft.superficial_calcium_arc_deg))
        res.inter += int((fm.calcium_mask & ft.calcium_mask).sum())
        res.denom += int(fm.calcium_mask.sum() + ft.calcium_mask.sum())
        if fm.lumen_area_mm2 and ft.lumen_area_mm2:
            res.lumen_rel.append(abs(fm.lumen_area_mm2 - ft.lumen_area_mm2) / ft.lumen_area_mm2)
        if fm.eem_area_mm2 and ft.eem_area_mm2:
            res.eem_rel.append(abs(fm.eem_area_mm2 - ft.eem_area_mm2) / ft.eem_area_mm2)
        res.nod_tp += int(fm.calcified_nodule and ft.calcified_nodule)
        res.nod_fp += int(fm.calcified_nodule and not ft.calcified_nodule)
        res.nod_fn += int(ft.calcified_nodule and not fm.calcified_nodule)
    return res


def _med(x: list[float]) -> float:
    return float(np.median(x)) if x else float("nan")


def _mean(x: list[float]) -> float:
    return float(np.mean(x)) if x else float("nan")


def summarise(results: list[CaseResult]) -> dict[str, Any]:
    """Overall figures and pass/fail against the issue's targets."""
    n = len(results)
    comp = {c: [a for r in results for a in r.comp_agree[c]] for c in COMPONENTS}
    tp = sum(r.nod_tp for r in results)
    fp = sum(r.nod_fp for r in results)
    fn = sum(r.nod_fn for r in results)
    inter = sum(r.inter for r in results)
    denom = sum(r.denom for r in results)
    out: dict[str, Any] = {
        "cases": n,
        "score_exact_agreement": sum(r.score_truth == r.score_found for r in results) / n,
        "component_agreement": {c: (sum(v) / len(v) if v else 1.0) for c, v in comp.items()},
        "arc_mae_deg": _mean([e for r in results for e in r.arc_err]),
        "superficial_arc_mae_deg": _mean([e for r in results for e in r.sup_err]),
        "calcium_dice": 2.0 * inter / denom if denom else 1.0,
        "lumen_area_median_rel_error": _med([e for r in results for e in r.lumen_rel]),
        "eem_area_median_rel_error": _med([e for r in results for e in r.eem_rel]),
        "nodule_frame_sensitivity": tp / (tp + fn) if tp + fn else float("nan"),
        "nodule_frame_precision": tp / (tp + fp) if tp + fp else float("nan"),
        "assessable_agreement": sum(r.assess_agree for r in results)
        / max(1, sum(r.frames for r in results)),
    }
    out["targets_met"] = {
        "score_exact_agreement>=0.95": out["score_exact_agreement"] >= 0.95,
        "every_component>=0.95": all(v >= 0.95 for v in out["component_agreement"].values()),
        "superficial_arc_mae<=15": out["superficial_arc_mae_deg"] <= 15.0,
        "calcium_dice>=0.90": out["calcium_dice"] >= 0.90,
        "lumen_area_median_rel_error<=0.08": out["lumen_area_median_rel_error"] <= 0.08,
        "eem_area_median_rel_error<=0.08": out["eem_area_median_rel_error"] <= 0.08,
    }
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table (or JSON)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--cases", help="comma-separated case names (default: all)")
    args = ap.parse_args(argv)
    specs = standard_suite()
    if args.cases:
        wanted = set(args.cases.split(","))
        specs = [s for s in specs if s.name in wanted]
    results: list[CaseResult] = []
    if not args.json:
        print(f"{'case':26s} {'score':>7s} {'arcMAE':>7s} {'supMAE':>7s} {'Dice':>5s} "
              f"{'lumen%':>7s} {'eem%':>6s} {'nodTP/FP/FN':>12s} {'s':>6s}")
    for spec in specs:
        case = make_case(spec)
        t0 = time.perf_counter()
        analysis = analyze_pullback(case.pullback())
        r = evaluate(case, analysis, time.perf_counter() - t0)
        results.append(r)
        if not args.json:
            mark = "" if r.score_truth == r.score_found else " X"
            print(f"{r.name:26s} {r.score_found:>3d}/{r.score_truth:<3d} "
                  f"{_mean(r.arc_err):7.1f} {_mean(r.sup_err):7.1f} {r.dice:5.2f} "
                  f"{100 * _med(r.lumen_rel):7.1f} {100 * _med(r.eem_rel):6.1f} "
                  f"{r.nod_tp:>4d}/{r.nod_fp}/{r.nod_fn:<4d} {r.seconds:6.2f}{mark}", flush=True)
    summary = summarise(results)
    if args.json:
        summary["per_case"] = [
            {"name": r.name, "score_truth": r.score_truth, "score_found": r.score_found,
             "arc_mae_deg": _mean(r.arc_err), "superficial_arc_mae_deg": _mean(r.sup_err),
             "dice": r.dice, "lumen_rel": _med(r.lumen_rel), "eem_rel": _med(r.eem_rel),
             "nodule_tp_fp_fn": [r.nod_tp, r.nod_fp, r.nod_fn], "seconds": r.seconds}
            for r in results]
        print(json.dumps(summary, indent=2))
    else:
        print()
        for k, v in summary.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
