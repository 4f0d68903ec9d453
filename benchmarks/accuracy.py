"""Accuracy and speed of srservice.analysis on a folder of IVUS pullbacks with ground truth.

Run::

    .venv/bin/python benchmarks/accuracy.py DIR [--jobs N] [--cases A,B] [--json]
    .venv/bin/python benchmarks/accuracy.py --suite realistic [--out DIR] [--jobs N]
    .venv/bin/python benchmarks/accuracy.py --suite standard [--out DIR]

DIR holds ``NAME.dcm`` + ``NAME.truth.json`` pairs. Two truth schemas are read: the one of
``scripts/make_phantoms.py`` / ``srservice.phantom`` (``expected`` {score, L, C, N, D} or the
older ``expected_score`` + ``scores``) and the one of independent generators that use the same
``expected`` / ``frames[]`` keys (every frame assessable unless ``assessable`` says otherwise).
``--suite`` first writes that phantom suite into ``--out`` (default: a temporary directory).

Every pullback goes through the path ``srservice analyze`` takes: ``load_pullback`` (with the
default spacings of the settings), ``analyze_pullback`` and ``ivus_calcium_score`` per lesion;
the case score is the highest lesion score (0 without a calcified lesion; "not assessable" when
the analysis says the pullback cannot be scored). Printed per case and overall:

- IVUS calcium score exact agreement, and agreement of each component L, C, N, D (Zhang et al.,
  Circ Cardiovasc Interv 2021;14:e010296), components taken from the highest-scoring lesion;
- calcium arc and superficial arc mean absolute error (degrees) over frames assessable both in
  the truth and in the analysis;
- lumen and EEM area median relative error over the same frames;
- lesions scored from a non-assessable frame (maximum calcium site not assessable in the
  analysis or in the truth): must be 0;
- frames per second per core of ``analyze_pullback`` after decoding (CPU time of the analysis
  in a single-threaded worker process).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from srservice.analysis.types import PullbackAnalysis  # noqa: E402

COMPONENTS = ("L", "C", "N", "D")
_COMPONENT_NAMES = {
    "long_superficial_calcium": "L", "long_calcium": "L",
    "length_superficial_calcium_over_270_gt_5mm": "L",
    "circumferential_calcium": "C", "circumferential": "C",
    "circumferential_superficial_calcium": "C",
    "calcified_nodule": "N", "nodule": "N",
    "small_vessel": "D", "vessel_diameter_lt_3_5mm": "D",
}

# Targets of the accuracy work (README of this folder).
TARGETS = {
    "score_exact_agreement": 0.95,
    "component_agreement": 0.95,
    "arc_mae_deg": 15.0,
    "superficial_arc_mae_deg": 15.0,
    "lumen_area_median_rel_error": 0.10,
    "eem_area_median_rel_error": 0.10,
    "lesions_from_non_assessable_frames": 0,
    "frames_per_s_per_core": 300.0,
}


@dataclass(frozen=True)
class FrameTruth:
    """The truth of one frame the benchmark compares (None: not given)."""

    assessable: bool
    lumen_area_mm2: float | None
    eem_area_mm2: float | None
    calcium_arc_deg: float | None
    superficial_calcium_arc_deg: float | None


@dataclass(frozen=True)
class CaseTruth:
    """Expected score and per-frame truth of one case, whatever the truth schema."""

    name: str
    dicom: Path
    expected: dict[str, int]
    frames: dict[int, FrameTruth]


def _components_from(mapping: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, value in mapping.items():
        short = _COMPONENT_NAMES.get(key)
        if short is not None and isinstance(value, (int, bool)):
            out[short] = int(value)
    return out


def parse_truth(path: Path) -> CaseTruth:
    """Read a truth JSON (either schema, see the module docstring).

    Raises
    ------
    ValueError
        When no expected score or DICOM file can be found.
    """
    doc = json.loads(path.read_text())
    name = str(doc.get("case") or doc.get("name") or path.name.removesuffix(".truth.json"))
    dicom = path.parent / str(doc.get("dicom") or f"{name}.dcm")
    expected: dict[str, int]
    if isinstance(doc.get("expected"), dict) and "score" in doc["expected"]:
        e = doc["expected"]
        expected = {"score": int(e["score"]), **{c: int(e.get(c, 0)) for c in COMPONENTS}}
    elif "expected_score" in doc:
        best = max(doc.get("scores") or [], key=lambda s: int(s.get("total", 0)), default={})
        comps = _components_from(best)
        expected = {"score": int(doc["expected_score"]),
                    **{c: comps.get(c, 0) for c in COMPONENTS}}
    elif isinstance(doc.get("lesion"), dict) and "ivus_calcium_score" in doc["lesion"]:
        les = doc["lesion"]
        comps = _components_from(les.get("score_components", {}))
        expected = {"score": int(les["ivus_calcium_score"]),
                    **{c: comps.get(c, 0) for c in COMPONENTS}}
    else:
        raise ValueError(f"{path.name}: no expected score in the truth file")
    if not dicom.is_file():
        raise ValueError(f"{path.name}: DICOM file {dicom.name} not found")

    def num(v: Any) -> float | None:
        return None if v is None else float(v)

    frames = {
        int(f["frame"]): FrameTruth(
            assessable=bool(f.get("assessable", True)),
            lumen_area_mm2=num(f.get("lumen_area_mm2")),
            eem_area_mm2=num(f.get("eem_area_mm2")),
            calcium_arc_deg=num(f.get("calcium_arc_deg")),
            superficial_calcium_arc_deg=num(f.get("superficial_calcium_arc_deg")),
        )
        for f in doc.get("frames", [])
    }
    return CaseTruth(name=name, dicom=dicom, expected=expected, frames=frames)


@dataclass
class CaseResult:
    """Figures of one case."""

    name: str
    frames: int
    expected: dict[str, int]
    found: dict[str, int | None]
    analysis_cpu_s: float
    arc_err: list[float] = field(default_factory=list)
    sup_err: list[float] = field(default_factory=list)
    lumen_rel: list[float] = field(default_factory=list)
    eem_rel: list[float] = field(default_factory=list)
    lesions_from_non_assessable: int = 0
    truth_non_assessable_measured: int = 0
    reason: str = ""
    error: str = ""

    @property
    def score_agrees(self) -> bool:
        """Exact agreement of the case score."""
        return self.found.get("score") == self.expected["score"]


def predicted(analysis: PullbackAnalysis) -> dict[str, int | None]:
    """Case score and components as the reports give them (highest-scoring lesion)."""
    from srservice.scoring import ivus_calcium_score

    if analysis.reason:
        return {"score": None, **dict.fromkeys(COMPONENTS)}
    if not analysis.lesions:
        return {"score": 0, **dict.fromkeys(COMPONENTS, 0)}
    scores = [ivus_calcium_score(les) for les in analysis.lesions]

    def rank(s: Any) -> int:
        return s.total if s.total is not None else s.maximum_total

    best = max(scores, key=rank)
    comps: dict[str, int | None] = dict.fromkeys(COMPONENTS)
    for c in best.components:
        short = _COMPONENT_NAMES.get(c.name)
        if short is not None:
            comps[short] = c.points
    total = best.total
    if any(s.total is None and s.maximum_total > (total or 0) for s in scores):
        total = None
    return {"score": total, **comps}


def evaluate(truth: CaseTruth, analysis: PullbackAnalysis, cpu_s: float) -> CaseResult:
    """Compare one analysis with the truth."""
    res = CaseResult(name=truth.name, frames=analysis.frame_count, expected=truth.expected,
                     found=predicted(analysis), analysis_cpu_s=cpu_s, reason=analysis.reason)
    measured = {f.frame: f for f in analysis.frames}
    for k, ft in truth.frames.items():
        fm = measured.get(k)
        if fm is None or not fm.assessable:
            continue
        if not ft.assessable:
            res.truth_non_assessable_measured += 1
            continue
        if ft.calcium_arc_deg is not None:
            res.arc_err.append(abs(fm.calcium_arc_deg - ft.calcium_arc_deg))
        if ft.superficial_calcium_arc_deg is not None:
            res.sup_err.append(abs(fm.superficial_calcium_arc_deg
                                   - ft.superficial_calcium_arc_deg))
        if fm.lumen_area_mm2 is not None and ft.lumen_area_mm2:
            res.lumen_rel.append(abs(fm.lumen_area_mm2 - ft.lumen_area_mm2) / ft.lumen_area_mm2)
        if fm.eem_area_mm2 is not None and ft.eem_area_mm2:
            res.eem_rel.append(abs(fm.eem_area_mm2 - ft.eem_area_mm2) / ft.eem_area_mm2)
    if not analysis.reason:
        for les in analysis.lesions:
            site = measured.get(les.max_calcium_frame)
            tsite = truth.frames.get(les.max_calcium_frame)
            if (site is None or not site.assessable
                    or (tsite is not None and not tsite.assessable)):
                res.lesions_from_non_assessable += 1
    return res


def run_case(truth_path: str) -> CaseResult:
    """Load, analyse (timed) and evaluate one case; errors become a result with ``error``."""
    from srservice.analysis.pipeline import analyze_pullback
    from srservice.config import load_settings
    from srservice.dicomio import load_pullback

    try:
        truth = parse_truth(Path(truth_path))
    except (ValueError, KeyError, json.JSONDecodeError) as exc:
        name = Path(truth_path).name.removesuffix(".truth.json")
        return CaseResult(name=name, frames=0, expected={"score": -1}, found={},
                          analysis_cpu_s=0.0, error=f"truth: {exc}")
    settings = load_settings()
    try:
        loaded = load_pullback(truth.dicom,
                               default_pixel_spacing_mm=settings.default_pixel_spacing_mm,
                               default_frame_spacing_mm=settings.default_frame_spacing_mm)
        t0 = time.process_time()
        analysis = analyze_pullback(loaded.pullback)
        cpu = time.process_time() - t0
    except Exception as exc:  # a benchmark reports every failure and goes on
        return CaseResult(name=truth.name, frames=0, expected=truth.expected, found={},
                          analysis_cpu_s=0.0, error=f"{type(exc).__name__}: {exc}")
    return evaluate(truth, analysis, cpu)


def _med(x: list[float]) -> float:
    return float(np.median(x)) if x else float("nan")


def _mean(x: list[float]) -> float:
    return float(np.mean(x)) if x else float("nan")


def summarise(results: list[CaseResult]) -> dict[str, Any]:
    """Overall figures and whether each target is met."""
    ok = [r for r in results if not r.error]
    n = len(ok)
    frames = sum(r.frames for r in ok)
    cpu = sum(r.analysis_cpu_s for r in ok)
    out: dict[str, Any] = {
        "cases": len(results),
        "cases_failed": [r.name for r in results if r.error],
        "score_exact_agreement": (sum(r.score_agrees for r in ok) / n) if n else float("nan"),
        "component_agreement": {
            c: (sum(r.found.get(c) == r.expected.get(c) for r in ok) / n) if n else float("nan")
            for c in COMPONENTS},
        "arc_mae_deg": _mean([e for r in ok for e in r.arc_err]),
        "superficial_arc_mae_deg": _mean([e for r in ok for e in r.sup_err]),
        "lumen_area_median_rel_error": _med([e for r in ok for e in r.lumen_rel]),
        "eem_area_median_rel_error": _med([e for r in ok for e in r.eem_rel]),
        "lesions_from_non_assessable_frames": sum(r.lesions_from_non_assessable for r in ok),
        "truth_non_assessable_frames_measured": sum(r.truth_non_assessable_measured for r in ok),
        "frames": frames,
        "frames_per_s_per_core": frames / cpu if cpu > 0 else float("nan"),
    }
    t = TARGETS
    out["targets_met"] = {
        "score_exact_agreement>=0.95": out["score_exact_agreement"] >= t["score_exact_agreement"],
        "every_component>=0.95": all(v >= t["component_agreement"]
                                     for v in out["component_agreement"].values()),
        "arc_mae<=15": out["arc_mae_deg"] <= t["arc_mae_deg"],
        "superficial_arc_mae<=15": out["superficial_arc_mae_deg"]
        <= t["superficial_arc_mae_deg"],
        "lumen_area_median_rel_error<=0.10": out["lumen_area_median_rel_error"]
        <= t["lumen_area_median_rel_error"],
        "eem_area_median_rel_error<=0.10": out["eem_area_median_rel_error"]
        <= t["eem_area_median_rel_error"],
        "no_lesion_from_non_assessable_frame": out["lesions_from_non_assessable_frames"] == 0,
        "frames_per_s_per_core>=300": out["frames_per_s_per_core"]
        >= t["frames_per_s_per_core"],
        "no_case_failed": not out["cases_failed"],
    }
    return out


def _fmt_score(d: dict[str, Any]) -> str:
    s = d.get("score")
    comp = "".join(c if d.get(c) else ("?" if d.get(c) is None else "-") for c in COMPONENTS)
    return f"{'NA' if s is None else s} {comp}"


def _line(r: CaseResult) -> str:
    if r.error:
        return f"{r.name:32s} ERROR {r.error}"
    mark = "" if r.score_agrees else "  X"
    comp_bad = [c for c in COMPONENTS if r.found.get(c) != r.expected.get(c)]
    if comp_bad and r.score_agrees:
        mark = "  x" + "".join(comp_bad)
    fps = r.frames / r.analysis_cpu_s if r.analysis_cpu_s > 0 else float("nan")
    return (f"{r.name:32s} {_fmt_score(r.found):>8s} / {_fmt_score(r.expected):<8s} "
            f"{_mean(r.arc_err):7.1f} {_mean(r.sup_err):7.1f} {100 * _med(r.lumen_rel):7.1f} "
            f"{100 * _med(r.eem_rel):6.1f} {r.lesions_from_non_assessable:4d} {fps:7.0f}{mark}")


HEADER = (f"{'case':32s} {'found':>8s} / {'expected':<8s} {'arcMAE':>7s} {'supMAE':>7s} "
          f"{'lumen%':>7s} {'eem%':>6s} {'NAls':>4s} {'fr/s':>7s}")


def _generate(suite: str, out: Path, names: list[str] | None) -> None:
    """Write a phantom suite into ``out`` (DICOM + truth JSON)."""
    out.mkdir(parents=True, exist_ok=True)
    if suite == "realistic":
        from srservice.phantom.realistic_suite import make_realistic_case, realistic_suite
        from srservice.phantom.writer import write_realistic_case

        for spec in realistic_suite():
            if names and spec.name not in names:
                continue
            if (out / f"{spec.name}.truth.json").is_file():
                continue  # already generated (the suite is deterministic)
            write_realistic_case(make_realistic_case(spec), out)
            print(f"generated {spec.name}", file=sys.stderr, flush=True)
        return
    script = Path(__file__).resolve().parents[1] / "scripts" / "make_phantoms.py"
    import runpy

    argv = [str(script), "--out", str(out)] + [a for n in names or [] for a in ("--case", n)]
    old = sys.argv
    try:
        sys.argv = argv
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    finally:
        sys.argv = old


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print per-case lines and the summary (or JSON)."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("folder", nargs="?", type=Path, help="folder of NAME.dcm + NAME.truth.json")
    ap.add_argument("--suite", choices=("realistic", "standard"),
                    help="generate this phantom suite first (into --out)")
    ap.add_argument("--out", type=Path, help="where --suite writes (default: a temp dir)")
    ap.add_argument("--cases", help="comma-separated case names (default: all)")
    ap.add_argument("--jobs", type=int, default=1, help="cases analysed in parallel")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args(argv)
    names = [c for c in (args.cases or "").split(",") if c] or None
    tmp: tempfile.TemporaryDirectory[str] | None = None
    folder: Path | None = args.folder
    if args.suite:
        if args.out is None and folder is None:
            tmp = tempfile.TemporaryDirectory(prefix="srservice-accuracy-")
            folder = Path(tmp.name)
        else:
            folder = args.out or folder
        assert folder is not None
        _generate(args.suite, folder, names)
    if folder is None:
        ap.error("give a folder or --suite")
    try:
        paths = sorted(folder.glob("*.truth.json"))
        if names:
            paths = [p for p in paths if p.name.removesuffix(".truth.json") in names]
        if not paths:
            print(f"no *.truth.json in {folder}", file=sys.stderr)
            return 2
        if not args.json:
            print(HEADER, flush=True)
        results: list[CaseResult] = []
        jobs = max(1, args.jobs)
        if jobs > 1 and len(paths) > 1:
            # spawn: forking a parent that runs the pool's threads can deadlock a child
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(jobs, maxtasksperchild=1) as pool:
                for r in pool.imap_unordered(run_case, [str(p) for p in paths]):
                    results.append(r)
                    if not args.json:
                        print(_line(r), flush=True)
        else:
            for p in paths:
                r = run_case(str(p))
                results.append(r)
                if not args.json:
                    print(_line(r), flush=True)
        results.sort(key=lambda r: r.name)
        summary = summarise(results)
        if args.json:
            summary["per_case"] = [
                {**{k: v for k, v in asdict(r).items()
                    if k not in {"arc_err", "sup_err", "lumen_rel", "eem_rel"}},
                 "arc_mae_deg": _mean(r.arc_err), "superficial_arc_mae_deg": _mean(r.sup_err),
                 "lumen_area_median_rel_error": _med(r.lumen_rel),
                 "eem_area_median_rel_error": _med(r.eem_rel)}
                for r in results]
            print(json.dumps(summary, indent=1))
        else:
            print()
            for k, v in summary.items():
                print(f"{k}: {v}")
        return 0
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
