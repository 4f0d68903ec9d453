"""Quality gates: every frame gets a verdict with a reason; impossible values are never scored."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from srservice.analysis import quality
from srservice.analysis.params import AnalysisParameters
from srservice.analysis.pipeline import analyze_pullback
from srservice.analysis.types import Pullback
from tests.support.synthetic_ivus import Synth, make_frames, make_pullback


def _pullback(frames: np.ndarray, ps: float = 0.03) -> Pullback:
    c = (frames.shape[2] - 1) / 2.0, (frames.shape[1] - 1) / 2.0
    return Pullback(frames=frames, pixel_spacing_mm=ps, frame_spacing_mm=0.1, catheter_center=c)


def test_random_noise_is_not_assessable_and_not_scored() -> None:
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, size=(24, 160, 160), dtype=np.uint8)
    a = analyze_pullback(_pullback(frames))
    assert not a.assessable
    assert a.lesions == ()
    assert a.assessable_frame_count == 0
    assert all(f.reason == quality.NO_SIGNAL for f in a.frames)
    assert "no assessable frame" in a.reason and "no usable ultrasound signal" in a.reason


def test_speckle_structure_tells_echo_from_noise() -> None:
    echo = make_frames(Synth(frames=3))
    noise = np.random.default_rng(2).integers(0, 256, size=echo.shape, dtype=np.uint8)
    p = AnalysisParameters()
    assert (quality.speckle_structure(echo) > p.min_structure).all()
    assert (quality.speckle_structure(noise) < p.min_structure).all()


def test_one_frame_pullback_is_not_scored() -> None:
    a = analyze_pullback(make_pullback(Synth(frames=1, calcium=(10.0, 300.0))))
    assert not a.assessable
    assert a.lesions == ()
    assert "only 1 assessable frame(s) of 1" in a.reason


def test_too_few_frames_threshold_is_a_parameter() -> None:
    pb = make_pullback(Synth(frames=6, calcium=(10.0, 300.0)))
    assert not analyze_pullback(pb).assessable
    a = analyze_pullback(pb, AnalysisParameters(min_assessable_frames=3))
    assert a.assessable and a.reason == ""


def _zoomed(frames: np.ndarray, factor: float) -> np.ndarray:
    """The same frames displayed at another depth: scaled about the image centre."""
    n, rows, cols = frames.shape
    out = np.empty_like(frames)
    c = np.array([(rows - 1) / 2.0, (cols - 1) / 2.0])
    for i in range(n):
        out[i] = ndimage.affine_transform(frames[i], np.eye(2) / factor,
                                          offset=c - c / factor, order=1)
    return out


def test_display_depth_change_marks_the_frames() -> None:
    frames = make_frames(Synth(frames=24))
    frames[16:] = _zoomed(frames[16:], 1.5)
    a = analyze_pullback(_pullback(frames))
    reasons = [f.reason for f in a.frames]
    assert all(r == quality.DEPTH_CHANGE for r in reasons[17:])
    assert not any(r == quality.DEPTH_CHANGE for r in reasons[:15])


def test_depth_changed_ignores_single_frame_noise() -> None:
    ring = np.full(30, 20.0)
    ring[7] = 30.0
    extent = np.full(30, 200.0)
    extent[7] = 150.0
    assert not quality.depth_changed(ring, extent, 0.1).any()
    ring[20:] = 24.0
    assert not quality.depth_changed(ring, extent, 0.1).any()  # the ring alone moved
    extent[20:] = 170.0
    flagged = quality.depth_changed(ring, extent, 0.1)
    assert flagged[21:].all() and not flagged[:19].any()
    flagged = quality.depth_changed(ring, np.full(30, np.nan), 0.1)
    assert not flagged.any()  # 20 % on the ring alone is within twice the tolerance


def test_implausible_vessel_size_never_reaches_a_score() -> None:
    # 0.3 mm pixels: the synthetic 2 mm EEM radius becomes a 20 mm vessel.
    pb = make_pullback(Synth(frames=12, calcium=(10.0, 300.0)))
    big = Pullback(frames=pb.frames, pixel_spacing_mm=0.3, frame_spacing_mm=0.1,
                   catheter_center=pb.catheter_center)
    a = analyze_pullback(big)
    assert a.lesions == ()
    assert not a.assessable
    assert all("outside the coronary range 1.5-7 mm" in f.reason for f in a.frames)


def test_star_shaped_contour_fails_the_shape_check() -> None:
    p = AnalysisParameters()
    t = np.deg2rad(np.arange(360) + 0.5)
    r_eem = 60.0 + 35.0 * (np.arange(360) % 20 < 3)
    r_lum = np.full(360, 40.0)

    def xy(r: np.ndarray) -> np.ndarray:
        return np.stack([100 + r * np.cos(t), 100 + r * np.sin(t)], axis=1)

    assert quality.solidity(xy(np.full(360, 50.0))) == pytest.approx(1.0, abs=0.01)
    assert quality.shape_reason(r_lum, r_eem, xy(r_lum), xy(r_eem), p) == quality.STAR_SHAPE
    r_in = np.full(360, 70.0)
    assert (quality.shape_reason(r_in, np.full(360, 60.0), xy(r_in), xy(np.full(360, 60.0)), p)
            == quality.LUMEN_OUTSIDE_EEM)
    assert quality.eem_size_reason(11.3, p).startswith("EEM mean diameter 11.3 mm")
    assert quality.eem_size_reason(3.2, p) == ""


def test_longest_circular_run_wraps() -> None:
    m = np.zeros(360, dtype=np.bool_)
    m[350:] = True
    m[:15] = True
    assert quality.longest_circular_run(m) == 25
    assert quality.longest_circular_run(np.ones(360, dtype=np.bool_)) == 360
    assert quality.longest_circular_run(np.zeros(360, dtype=np.bool_)) == 0


def test_every_not_assessable_frame_has_a_reason() -> None:
    pb = make_pullback(Synth(frames=12, calcium=(30.0, 120.0)))
    frames = pb.frames.copy()
    frames[2] = 0
    frames[5] = 255
    a = analyze_pullback(Pullback(frames=frames, pixel_spacing_mm=pb.pixel_spacing_mm,
                                  frame_spacing_mm=0.1, catheter_center=pb.catheter_center),
                         AnalysisParameters(min_assessable_frames=3))
    assert a.frames[2].reason == quality.NO_ECHO
    assert a.frames[5].reason == quality.SATURATED
    for f in a.frames:
        assert f.assessable == (f.reason == "")
        if not f.assessable:
            assert f.lumen_area_mm2 is None and f.calcium_arc_deg == 0.0
    assert "2 frame(s) not assessable (each frame says why)" in a.not_assessable


def test_eem_never_inside_the_calcium() -> None:
    s = Synth(frames=12, calcium=(40.0, 140.0), calcium_depth=0.1, eem_r=1.5)
    a = analyze_pullback(make_pullback(s), AnalysisParameters(min_assessable_frames=3))
    f = a.frames[6]
    assert f.assessable and f.calcium_arc_deg > 100.0
    cx, cy = f.center
    lum = f.lumen_contour
    eem = f.eem_contour
    assert lum is not None and eem is not None and f.calcium_depth_mm is not None
    ang_e = np.mod(np.degrees(np.arctan2(eem[:, 1] - cy, eem[:, 0] - cx)), 360.0)
    r_e = np.hypot(eem[:, 0] - cx, eem[:, 1] - cy) * s.ps
    ang_l = np.mod(np.degrees(np.arctan2(lum[:, 1] - cy, lum[:, 0] - cx)), 360.0)
    r_l = np.hypot(lum[:, 0] - cx, lum[:, 1] - cy) * s.ps
    o_e, o_l = np.argsort(ang_e), np.argsort(ang_l)
    bins = np.flatnonzero(f.calcium_mask) + 0.5
    eem_r = np.interp(bins, ang_e[o_e], r_e[o_e], period=360.0)
    lum_r = np.interp(bins, ang_l[o_l], r_l[o_l], period=360.0)
    edge_r = lum_r + f.calcium_depth_mm[np.flatnonzero(f.calcium_mask)]
    # Behind the leading edge by the configured margin (a pixel of tolerance for rebinning).
    margin = AnalysisParameters().eem_behind_calcium_mm
    assert (eem_r >= edge_r + margin - 2 * s.ps).all()


def test_frame_flags_report_interpolated_eem() -> None:
    a = analyze_pullback(make_pullback(Synth(frames=12, calcium=(10.0, 200.0))),
                         AnalysisParameters(min_assessable_frames=3))
    f = a.frames[6]
    assert f.assessable
    assert any(fl.startswith("EEM interpolated over") for fl in f.flags)
    assert f.nodule_protrusion_mm is not None and f.nodule_protrusion_mm < 0.2
    assert not f.calcified_nodule


def test_nodule_runs_need_length_and_a_steady_angle() -> None:
    from srservice.analysis.volume import consistent_runs

    flags = np.zeros(20, dtype=np.bool_)
    flags[2:10] = True
    flags[12:14] = True
    angle = np.full(20, 90, dtype=np.intp)
    out = consistent_runs(flags, angle, 4)
    assert out[2:10].all() and not out[10:].any() and not out[:2].any()
    angle[6] = 200  # the largest protrusion jumps to another side: two short runs
    assert not consistent_runs(flags, angle, 5).any()
