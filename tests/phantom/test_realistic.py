"""Realistic phantom: image statistics in the real-export target ranges, calcium look, truth,
DICOM export, and the suite's coverage of the score space."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pydicom
import pytest

from srservice.dicomio import load_pullback
from srservice.phantom.imagestats import (
    calcium_figures,
    pair_indices,
    pullback_stats,
    target_failures,
    to_polar,
)
from srservice.phantom.realistic_geometry import REASON_DEPTH, REASON_GUIDE, RealisticSpec
from srservice.phantom.realistic_suite import (
    RealisticCase,
    calcium_geometry,
    make_realistic_case,
    realistic_suite,
    small_realistic_case,
    truth_document,
)
from srservice.phantom.spec import CaseSpec
from srservice.phantom.writer import write_pullback

REPO = Path(__file__).resolve().parents[2]


def _stats_tool() -> ModuleType | None:
    """The independent image-statistics tool, when a checkout of it sits beside the repo."""
    env = os.environ.get("IVUS_TOOLS_DIR")
    base = Path(env) if env else REPO.parent / "shared" / "tools"
    path = base / "ivus_image_stats.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("ivus_image_stats", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def free_case() -> RealisticCase:
    return small_realistic_case("none", frames=16, seed=3)


def test_calcium_free_case_falls_in_the_target_ranges(free_case: RealisticCase) -> None:
    rc = free_case
    s = pullback_stats(rc.case.frames, rc.case.pixel_spacing_mm, rc.case.catheter_center)
    assert target_failures(s) == [], s
    # the clean phantom's look is outside them (the figures can fail)
    from srservice.phantom import small_case

    clean = small_case("none", frames=8, rows=320)
    sc = pullback_stats(clean.frames, clean.pixel_spacing_mm, clean.catheter_center)
    assert target_failures(sc)


def test_calcium_free_stretches_of_a_calcified_case_fall_in_the_target_ranges() -> None:
    rc = small_realistic_case("stretch", frames=24, seed=11)
    free = rc.calcium_free_frames()
    calcified = [k for k, f in enumerate(rc.case.truth.frames) if f.calcium_arc_deg > 0]
    assert calcified and len(free) >= 10
    assert not set(free) & set(calcified)
    s = pullback_stats(rc.case.frames[free], rc.case.pixel_spacing_mm, rc.case.catheter_center)
    assert target_failures(s) == [], s


def test_calcium_look_matches_real_exports() -> None:
    rc = small_realistic_case("calcium", frames=10, seed=5)
    figs = []
    for k, ft in enumerate(rc.case.truth.frames):
        if ft.calcium_arc_deg < 60:
            continue
        pol = to_polar(rc.case.frames[k : k + 1], rc.case.pixel_spacing_mm,
                       rc.case.catheter_center)[0]
        figs.append(calcium_figures(pol, *calcium_geometry(rc, k)))
    assert len(figs) >= 4
    # saturated leading edge only moderately brighter than plaque, permeable shadow
    assert all(f.edge_peak >= 245 for f in figs)
    ratio = float(np.median([f.peak_over_plaque for f in figs]))
    shadow = float(np.median([f.shadow_ratio for f in figs]))
    assert 1.4 <= ratio <= 3.8, ratio
    assert 0.10 <= shadow <= 0.32, shadow
    assert all(0.05 <= f.shadow_ratio <= 0.45 for f in figs)
    assert float(np.median([f.bright_fraction for f in figs])) >= 0.87


def test_project_statistics_equal_the_independent_tool(tmp_path: Path,
                                                       free_case: RealisticCase) -> None:
    tool = _stats_tool()
    if tool is None:
        pytest.skip("independent ivus_image_stats.py not found beside the repository")
    rc = free_case
    path = write_pullback(rc.case, tmp_path / "r.dcm")
    pol, r_mm = tool.polar_frames(str(path), 200)
    theirs = tool.stats(pol, r_mm)
    loaded = load_pullback(path)
    pb = loaded.pullback
    assert pb.pixel_spacing_mm is not None and pb.catheter_center is not None
    ours = pullback_stats(pb.frames, pb.pixel_spacing_mm, pb.catheter_center).as_dict()
    for key, val in theirs.items():
        if isinstance(val, list):
            assert np.allclose(ours[key], val, atol=0.02), key
        elif val is not None:
            assert ours[key] == pytest.approx(val, rel=0.02, abs=0.02), key


def test_pair_indices_are_adjacent_pairs() -> None:
    idx = pair_indices(100, 20)
    assert len(idx) == 20
    assert np.all(idx[1::2] - idx[0::2] == 1)
    sub = pair_indices(100, 10, first=41, last=60)
    assert sub.min() >= 40 and sub.max() <= 59


def test_depth_change_guide_and_truth_reasons(tmp_path: Path) -> None:
    base = CaseSpec(name="depth", seed=4, rows=256, pixel_spacing_mm=5.2 / 124, frame_count=9,
                    pullback_rate_mm_s=2.0, overlays="grey", catheter_offset_px=(0.5, 0.5),
                    rotation_seam=False, guide_catheter_frames=3)
    spec = RealisticSpec(base=base, depth_change_mm=0.2, depth_scale=1.3, touch=((0.0, 0.1),))
    rc = make_realistic_case(spec)
    reasons = [rf.reason for rf in rc.frames_info]
    assert reasons[:3] == [None, None, None]
    assert reasons[3:6] == [REASON_DEPTH] * 3
    assert reasons[6:] == [REASON_GUIDE] * 3
    assert rc.frames_info[0].touching
    # the field of view (and catheter) shrink on screen after the change
    def fov_radius(img: np.ndarray) -> float:
        c = 128
        row = img[c, c:]
        return float(np.flatnonzero(row == 140).max())
    assert fov_radius(rc.case.frames[4]) < 0.85 * fov_radius(rc.case.frames[0])
    # the truth keeps the true areas on depth-changed frames (drawn at the other spacing)
    t = rc.case.truth.frames
    assert not t[4].assessable and t[4].lumen_area_mm2 is not None
    assert t[4].lumen_area_mm2 == pytest.approx(t[2].lumen_area_mm2, rel=0.15)
    assert t[7].lumen_area_mm2 is None
    doc = truth_document(rc, "depth.dcm", "1.2.840.10008.1.2.1")
    assert doc["frames"][4]["reason"] == REASON_DEPTH
    assert doc["frames"][4]["pixel_spacing_mm"] == pytest.approx(
        base.pixel_spacing_mm * 1.3, rel=1e-4)
    assert doc["expected"] == {"score": 0, "L": 0, "C": 0, "N": 0, "D": 0}


def test_written_as_ultrasound_multiframe_with_truth_json(tmp_path: Path) -> None:
    spec = next(s for s in realistic_suite() if s.name == "r_full4_gated")
    base = dataclasses.replace(spec.base, rows=160, pixel_spacing_mm=5.4 / 76)
    rc = make_realistic_case(dataclasses.replace(spec, base=base))
    path = write_pullback(rc.case, tmp_path / "g.dcm", transfer_syntax="jpeg_baseline")
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.3.1"
    assert ds.Modality == "IVUS"
    assert int(ds.NumberOfFrames) == base.frame_count
    reg = ds.SequenceOfUltrasoundRegions[0]
    assert float(reg.PhysicalDeltaX) * 10 == pytest.approx(base.pixel_spacing_mm)
    assert ds.IVUSAcquisition == "GATED_PULLBACK"
    assert float(ds.IVUSGatedRate) == pytest.approx(0.5)
    doc = truth_document(rc, path.name, str(ds.file_meta.TransferSyntaxUID))
    assert doc["expected"] == {"score": 4, "L": 1, "C": 1, "N": 1, "D": 1}
    assert doc["lesion"]["ivus_calcium_score"] == 4
    assert set(doc["lesion"]["score_components"]) == {
        "length_superficial_calcium_over_270_gt_5mm", "circumferential_superficial_calcium",
        "calcified_nodule", "vessel_diameter_lt_3_5mm"}
    f = doc["frames"][0]
    for key in ("frame", "assessable", "reason", "lumen_area_mm2", "eem_area_mm2",
                "calcium_arc_deg", "superficial_calcium_arc_deg", "calcified_nodule"):
        assert key in f
    json.dumps(doc, allow_nan=False)
    loaded = load_pullback(path)
    assert loaded.pullback.frame_spacing_mm == pytest.approx(0.5)


def test_suite_spans_the_score_space() -> None:
    suite = realistic_suite()
    assert 25 <= len(suite) <= 30
    intended = [s.base.intended_score for s in suite]
    assert set(intended) == {0, 1, 2, 3, 4}
    les = [x for s in suite for x in s.base.lesions]
    arcs = [x.max_arc_deg for x in les]
    assert any(255 <= a <= 270 for a in arcs) and any(270 < a <= 290 for a in arcs)
    diams = [x.vessel_diameter_mm for x in les]
    assert any(3.35 <= d < 3.5 for d in diams) and any(3.5 <= d <= 3.7 for d in diams)
    assert any(s.depth_change_mm is not None for s in suite)
    assert any(s.base.side_branches for s in suite) and any(s.fibrous for s in suite)
    assert any(s.base.guide_catheter_frames for s in suite) and any(s.touch for s in suite)
    # the truth of a few cases (frames not rendered) agrees with their design
    for name in ("r_circ_only", "r_small_3p3", "r_vessel_3p65", "r_full4_gated"):
        spec = next(s for s in suite if s.name == name)
        rc = make_realistic_case(spec, render=False)
        doc = truth_document(rc, "x.dcm", "x")
        assert doc["expected"]["score"] == spec.base.intended_score, name


def test_make_phantoms_script_rejects_unknown_cases(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_phantoms.py"), "--suite", "realistic",
         "--out", str(tmp_path), "--case", "no_such_case"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert r.returncode == 2
    assert "no_such_case" in r.stderr
