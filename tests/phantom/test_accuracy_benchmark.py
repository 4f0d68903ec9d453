"""benchmarks/accuracy.py: both truth schemas, the figures it computes, an end-to-end run."""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from srservice.analysis.types import ANGLE_BINS, FrameMeasurement, LesionFeatures, PullbackAnalysis
from srservice.phantom.realistic_suite import small_realistic_case
from srservice.phantom.writer import write_realistic_case

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("accuracy_bench",
                                                  REPO / "benchmarks" / "accuracy.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(mod)
    return mod


def _frame(k: int, arc: float, sup: float, lumen: float | None, eem: float | None,
           assessable: bool = True) -> FrameMeasurement:
    mask = np.zeros(ANGLE_BINS, dtype=bool)
    mask[: int(arc)] = True
    smask = np.zeros(ANGLE_BINS, dtype=bool)
    smask[: int(sup)] = True
    return FrameMeasurement(
        frame=k, assessable=assessable, center=(0.0, 0.0), lumen_contour=None,
        eem_contour=None, lumen_area_mm2=lumen, eem_area_mm2=eem, eem_mean_diameter_mm=3.0,
        eem_interpolated_fraction=0.0, calcium_mask=mask, superficial_calcium_mask=smask,
        calcium_arc_deg=arc, superficial_calcium_arc_deg=sup, calcified_nodule=False)


def _lesion(max_frame: int, diam: float) -> LesionFeatures:
    return LesionFeatures(
        start_frame=1, end_frame=3, max_calcium_frame=max_frame,
        max_superficial_calcium_arc_deg=200.0, length_superficial_calcium_over_270_mm=0.0,
        over_270_start_frame=None, over_270_end_frame=None,
        circumferential_superficial_calcium=False, calcified_nodule=False,
        vessel_diameter_at_max_calcium_mm=diam, lumen_area_at_max_calcium_mm2=5.0,
        eem_interpolated_fraction_at_max_calcium=0.0, calcium_length_mm=0.2)


def _write(path: Path, doc: dict[str, object]) -> Path:
    path.write_text(json.dumps(doc))
    stem = path.name.removesuffix(".truth.json")
    (path.parent / str(doc.get("dicom", f"{stem}.dcm"))).write_bytes(b"")
    return path


def test_both_truth_schemas(bench: ModuleType, tmp_path: Path) -> None:
    # independent generator: one lesion, no assessable key (every frame assessable)
    ind = _write(tmp_path / "hard_a.truth.json", {
        "case": "hard_a", "dicom": "hard_a.dcm",
        "expected": {"score": 2, "L": 1, "C": 0, "N": 0, "D": 1},
        "lesion": {"ivus_calcium_score": 2},
        "frames": [{"frame": 1, "lumen_area_mm2": 5.0, "eem_area_mm2": 10.0,
                    "calcium_arc_deg": 90.0, "superficial_calcium_arc_deg": 90.0}]})
    t = bench.parse_truth(ind)
    assert t.expected == {"score": 2, "L": 1, "C": 0, "N": 0, "D": 1}
    assert t.frames[1].assessable and t.frames[1].calcium_arc_deg == 90.0
    # the project's older schema: expected_score + scores[]
    old = _write(tmp_path / "old.truth.json", {
        "name": "old", "expected_score": 1,
        "scores": [{"long_calcium": 0, "circumferential": 0, "nodule": 0, "small_vessel": 1,
                    "total": 1}],
        "frames": [{"frame": 1, "assessable": False, "lumen_area_mm2": None}]})
    t2 = bench.parse_truth(old)
    assert t2.expected == {"score": 1, "L": 0, "C": 0, "N": 0, "D": 1}
    assert not t2.frames[1].assessable
    bad = _write(tmp_path / "bad.truth.json", {"case": "bad", "frames": []})
    with pytest.raises(ValueError, match="no expected score"):
        bench.parse_truth(bad)


def test_figures_of_one_case(bench: ModuleType, tmp_path: Path) -> None:
    truth = bench.CaseTruth(
        name="c", dicom=tmp_path / "c.dcm",
        expected={"score": 1, "L": 0, "C": 0, "N": 0, "D": 1},
        frames={
            1: bench.FrameTruth(True, 5.0, 10.0, 100.0, 80.0),
            2: bench.FrameTruth(True, 5.0, 10.0, 120.0, 120.0),
            3: bench.FrameTruth(False, 5.0, 10.0, 0.0, 0.0),  # e.g. side branch
        })
    analysis = PullbackAnalysis(
        frame_count=3, pixel_spacing_mm=0.02, frame_spacing_mm=0.1,
        frames=(_frame(1, 110, 70, 5.5, 9.0), _frame(2, 100, 100, 4.0, 10.0),
                _frame(3, 30, 30, 5.0, 10.0)),
        lesions=(_lesion(2, 3.3), _lesion(3, 3.8)))
    r = bench.evaluate(truth, analysis, 0.01)
    assert r.found == {"score": 1, "L": 0, "C": 0, "N": 0, "D": 1}
    assert r.score_agrees
    assert r.arc_err == [10.0, 20.0] and r.sup_err == [10.0, 20.0]
    assert r.lumen_rel == pytest.approx([0.1, 0.2]) and r.eem_rel == pytest.approx([0.1, 0.0])
    assert r.lesions_from_non_assessable == 1  # lesion 2's maximum site is a truth-NA frame
    assert r.truth_non_assessable_measured == 1
    s = bench.summarise([r])
    assert s["arc_mae_deg"] == pytest.approx(15.0)
    assert s["lumen_area_median_rel_error"] == pytest.approx(0.15)
    assert s["frames_per_s_per_core"] == pytest.approx(300.0)
    assert not s["targets_met"]["no_lesion_from_non_assessable_frame"]
    # a pullback the analysis says cannot be scored has no score and no components
    na = dataclasses.replace(analysis, reason="no assessable frame")
    assert bench.predicted(na) == {"score": None, "L": None, "C": None, "N": None, "D": None}
    assert not bench.evaluate(truth, na, 0.01).score_agrees


def test_end_to_end_on_a_written_case(bench: ModuleType, tmp_path: Path) -> None:
    rc = small_realistic_case("stretch", frames=8, rows=192, seed=2)
    _, truth_path, doc = write_realistic_case(rc, tmp_path)
    out = io.StringIO()
    with redirect_stdout(out):
        rc_ = bench.main([str(tmp_path), "--json"])
    assert rc_ == 0
    summary = json.loads(out.getvalue())
    assert summary["cases"] == 1 and summary["cases_failed"] == []
    case = summary["per_case"][0]
    assert case["name"] == rc.name and case["frames"] == 8
    assert case["expected"] == doc["expected"]
    assert summary["frames_per_s_per_core"] > 0
    assert 0.0 <= summary["score_exact_agreement"] <= 1.0
    assert set(summary["component_agreement"]) == {"L", "C", "N", "D"}
    # --cases filters; an unknown name finds nothing
    with redirect_stdout(io.StringIO()):
        assert bench.main([str(tmp_path), "--cases", "nothing_here"]) == 2
    # --jobs: worker processes (as a script); a second truth file for the same pullback
    copy = json.loads(truth_path.read_text())
    copy["case"] = "copy"
    (tmp_path / "copy.truth.json").write_text(json.dumps(copy))
    r = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "accuracy.py"), str(tmp_path), "--jobs", "2",
         "--json"], capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    both = json.loads(r.stdout)
    assert sorted(c["name"] for c in both["per_case"]) == sorted(["copy", rc.name])
    assert both["per_case"][0]["found"] == both["per_case"][1]["found"]
