"""Phantom generator: determinism, truth sanity, suite coverage, appearance."""

from __future__ import annotations

import collections
import time
from pathlib import Path

import numpy as np
import pytest

from srservice.analysis.types import ANGLE_BINS
from srservice.phantom import (
    CaseSpec,
    LesionSpec,
    make_case,
    small_case,
    standard_suite,
)
from srservice.phantom.truth import _bridge, longest_over_270_run


def test_make_case_is_deterministic() -> None:
    a = small_case("calcium", frames=8, rows=128, seed=5)
    b = small_case("calcium", frames=8, rows=128, seed=5)
    c = small_case("calcium", frames=8, rows=128, seed=6)
    assert np.array_equal(a.frames, b.frames)
    assert not np.array_equal(a.frames, c.frames)
    assert a.truth.expected_score == b.truth.expected_score
    for fa, fb in zip(a.truth.frames, b.truth.frames, strict=True):
        assert np.array_equal(fa.calcium_mask, fb.calcium_mask)


def test_frames_shape_dtype_and_fov() -> None:
    case = small_case("nodule", frames=6, rows=160)
    assert case.frames.shape == (6, 160, 160)
    assert case.frames.dtype == np.uint8
    f = case.frames[0]
    assert f[0, 0] == 0 and f[-1, -1] == 0  # outside the circular field of view
    cx, cy = (round(v) for v in case.catheter_center)
    ring = case.pixel_spacing_mm
    r_px = round(0.45 / ring)
    # bright catheter ring-down around the centre, dark transducer in the middle
    assert f[cy, cx + r_px] > 150 or f[cy + r_px, cx] > 150
    assert f[cy, cx] < 60


def test_superficial_subset_and_arcs() -> None:
    case = small_case("circumferential", frames=24, rows=160)
    seen_360 = False
    for ft in case.truth.frames:
        assert ft.calcium_mask.shape == (ANGLE_BINS,)
        assert not (ft.superficial_calcium_mask & ~ft.calcium_mask).any()
        assert ft.calcium_arc_deg == pytest.approx(ft.calcium_mask.sum() * 360 / ANGLE_BINS)
        seen_360 |= bool(ft.superficial_calcium_mask.all())
    assert seen_360
    lesion = case.truth.lesions[0]
    assert lesion.circumferential_superficial_calcium
    assert lesion.max_superficial_calcium_arc_deg == 360.0


def test_arcs_wrap_across_zero() -> None:
    spec = CaseSpec("wrap", 3, rows=160, pixel_spacing_mm=0.03, frame_count=10,
                    pullback_rate_mm_s=2.0, guidewire=False, motion=0.0,
                    lesions=(LesionSpec(0.3, 0.6, 100, center_angle_deg=0.0,
                                        vessel_diameter_mm=3.8),))
    case = make_case(spec)
    ft = max(case.truth.frames, key=lambda f: f.calcium_arc_deg)
    m = ft.calcium_mask
    assert m[0] and m[-1] and m[5] and m[-5]  # both sides of 0 degrees
    assert not m[180]
    assert 90 <= ft.calcium_arc_deg <= 110


def test_bridging_rule() -> None:
    hidden = np.zeros(360, dtype=bool)
    hidden[100:120] = True
    both = np.zeros(360, dtype=bool)
    both[50:150] = True
    both[100:120] = False
    assert _bridge(both, hidden)[100:120].all()
    one = np.zeros(360, dtype=bool)
    one[50:110] = True
    out = _bridge(one, hidden)
    assert not out[100:120].any() and out[50:100].all()
    # wrapping hidden run across 0
    hidden2 = np.zeros(360, dtype=bool)
    hidden2[355:] = True
    hidden2[:5] = True
    full = np.ones(360, dtype=bool)
    full[355:] = False
    full[:5] = False
    assert _bridge(full, hidden2).all()


def test_guidewire_over_calcium_is_bridged() -> None:
    spec = next(s for s in standard_suite() if s.name == "guidewire_over_calcium")
    spec = CaseSpec(**{**spec.__dict__, "frame_count": 40, "rows": 160,
                       "pixel_spacing_mm": 0.03})
    case = make_case(spec)
    hidden_frames = [f for f in case.truth.frames if f.guidewire_hidden_mask.any()
                     and f.calcium_arc_deg > 250]
    assert hidden_frames
    for f in hidden_frames:
        assert f.calcium_mask[f.guidewire_hidden_mask].all()


def test_run_rule_single_unassessable_gap() -> None:
    case = small_case("calcium", frames=24, rows=128)
    frames = list(case.truth.frames)
    run = longest_over_270_run(frames)
    assert run is not None
    mid = (run[0] + run[1]) // 2
    import dataclasses
    gap = [dataclasses.replace(f, assessable=False) if f.frame == mid else f for f in frames]
    assert longest_over_270_run(gap) == run
    two = [dataclasses.replace(f, assessable=False) if f.frame in (mid, mid + 1) else f
           for f in frames]
    r2 = longest_over_270_run(two)
    assert r2 is not None and r2[1] - r2[0] < run[1] - run[0]


def test_guide_catheter_frames_not_assessable() -> None:
    case = small_case("guide", frames=12, rows=128)
    flags = [f.assessable for f in case.truth.frames]
    assert flags[:8] == [True] * 8 and flags[8:] == [False] * 4
    assert case.truth.frames[-1].lumen_contour is None


def test_suite_design_and_coverage(tmp_path: Path) -> None:
    specs = standard_suite()
    assert len(specs) >= 24
    assert len({s.name for s in specs}) == len(specs)
    names = {s.name for s in specs}
    for required in ("run4p1", "run5p5", "run8p9", "arc260", "arc280_short", "arc340",
                     "circ_only", "small_vessel_3p3", "vessel_3p7", "nodule_only",
                     "smooth_protrusion", "deep_only", "attenuated_only",
                     "guidewire_over_calcium", "none_025", "full4_gated"):
        assert required in names
    assert {round(s.pixel_spacing_mm, 3) for s in specs} >= {0.015, 0.02, 0.025, 0.03}
    assert {s.pullback_rate_mm_s for s in specs if not s.gated} >= {0.5, 1.0, 2.0}
    assert any(s.gated for s in specs)
    intended = collections.Counter(s.intended_score for s in specs)
    assert all(intended[k] >= 3 for k in range(5)), intended


@pytest.mark.slow
def test_whole_suite_truth_matches_intention() -> None:
    t0 = time.perf_counter()
    for spec in standard_suite():
        case = make_case(spec)
        assert case.truth.expected_score == spec.intended_score, spec.name
    assert time.perf_counter() - t0 < 240


@pytest.mark.parametrize("name", ["run4p1", "run8p9", "arc340", "circ_only", "vessel_3p7",
                                  "smooth_protrusion", "nodule_small", "full4_gated"])
def test_threshold_cases_truth(name: str) -> None:
    spec = next(s for s in standard_suite() if s.name == name)
    spec = CaseSpec(**{**spec.__dict__, "rows": 128, "pixel_spacing_mm": 0.045,
                       "overlays": "none"})
    case = make_case(spec)
    assert case.truth.expected_score == spec.intended_score
    les = case.truth.lesions[0]
    if name == "run4p1":
        assert 3.8 < (les.length_superficial_calcium_over_270_mm or 0) < 5.0
    if name == "run8p9":
        assert (les.length_superficial_calcium_over_270_mm or 0) > 8.5
    if name == "arc340":
        assert 330 <= les.max_superficial_calcium_arc_deg < 360
    if name == "vessel_3p7":
        assert 3.55 < (les.vessel_diameter_at_max_calcium_mm or 0) < 3.85
    if name == "smooth_protrusion":
        assert not les.calcified_nodule


def test_montage_looks_like_ivus(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    case = small_case("calcium", frames=12, rows=192)
    fig, axes = plt.subplots(1, 3, figsize=(9, 3))
    for ax, k in zip(axes, (0, 6, 11), strict=True):
        ax.imshow(case.frames[k], cmap="gray", vmin=0, vmax=255)
        ax.axis("off")
    out = tmp_path / "phantom_montage.png"
    fig.savefig(out, dpi=60)
    plt.close(fig)
    assert out.stat().st_size > 10_000
    # intensity ordering: blood darker than the adventitia; far field dark
    f = case.frames[6].astype(float)
    ps = case.pixel_spacing_mm
    cx, cy = case.catheter_center
    yy, xx = np.mgrid[0 : f.shape[0], 0 : f.shape[1]]
    rr = np.hypot(xx - cx, yy - cy) * ps
    ft = case.truth.frames[0]  # no calcium in frame 1: clean rings
    f0 = case.frames[0].astype(float)
    assert ft.eem_mean_diameter_mm is not None
    r_eem = ft.eem_mean_diameter_mm / 2
    blood = f0[(rr > 0.65) & (rr < 0.8)].mean()
    adv = f0[(rr > r_eem + 0.02) & (rr < r_eem + 0.2)].mean()
    far = f0[(rr > r_eem + 1.2) & (rr < r_eem + 1.5)].mean()
    assert adv > blood + 30
    assert far < adv - 40
    assert f.std() > 20


def test_calcium_depth_superficial_vs_deep() -> None:
    sup = small_case("calcium", frames=12, rows=128)
    deep = small_case("deep", frames=12, rows=128)
    fs = max(sup.truth.frames, key=lambda f: f.calcium_arc_deg)
    fd = max(deep.truth.frames, key=lambda f: f.calcium_arc_deg)
    assert fs.calcium_depth_mm is not None and fd.calcium_depth_mm is not None
    assert np.isnan(fs.calcium_depth_mm[~fs.calcium_mask]).all()
    assert np.nanmedian(fs.calcium_depth_mm) < np.nanmedian(fd.calcium_depth_mm)
    assert fd.superficial_calcium_arc_deg == 0 and fd.calcium_arc_deg > 150


def test_pullback_view_and_rgb_luma() -> None:
    spec = CaseSpec("rgb", 4, rows=128, pixel_spacing_mm=0.045, frame_count=2,
                    overlays="colour")
    case = make_case(spec)
    assert case.frames.shape == (2, 128, 128, 3)
    pb = case.pullback()
    assert pb.frames.shape == (2, 128, 128)
    assert pb.pixel_spacing_mm == 0.045
    assert pb.frame_spacing_mm == pytest.approx(1.0 / 30.0)
    # the coloured ring is not grey: chroma differs between channels there
    diff = np.abs(case.frames[0, :, :, 2].astype(int) - case.frames[0, :, :, 0].astype(int))
    assert (diff > 100).sum() > 100


@pytest.mark.parametrize("n", [1, 2, 3])
def test_tiny_pullbacks(n: int) -> None:
    case = make_case(CaseSpec("tiny", 1, rows=96, pixel_spacing_mm=0.06, frame_count=n))
    assert case.frames.shape == (n, 96, 96)
    assert len(case.truth.frames) == n
