"""Unit tests of each analysis step on small synthetic frames (tests/support)."""

from __future__ import annotations

import numpy as np
import pytest

from srservice.analysis import borders, geometry, polar, preprocess
from srservice.analysis.params import AnalysisParameters
from srservice.analysis.pipeline import analyze_pullback
from srservice.analysis.types import ANGLE_BINS, Pullback
from srservice.errors import NotAssessableError
from tests.support.synthetic_ivus import Synth, make_frames, make_pullback


def _mid(s: Synth, **kw: object) -> object:
    a = analyze_pullback(make_pullback(s, **kw))  # type: ignore[arg-type]
    return a.frames[s.frames // 2]


def test_lumen_and_eem_area_of_a_disk() -> None:
    s = Synth()
    f = _mid(s)
    assert f.assessable
    assert f.lumen_area_mm2 == pytest.approx(np.pi * s.lumen_r**2, rel=0.08)
    assert f.eem_area_mm2 == pytest.approx(np.pi * s.eem_r**2, rel=0.08)
    assert f.eem_mean_diameter_mm == pytest.approx(2 * s.eem_r, rel=0.05)
    assert f.calcium_arc_deg == 0.0


def test_eccentric_lumen_area_and_centroid() -> None:
    s = Synth(lumen_offset=(0.3, -0.2))
    f = _mid(s)
    assert f.lumen_area_mm2 == pytest.approx(np.pi * s.lumen_r**2, rel=0.08)
    c = (s.size - 1) / 2.0
    assert f.center[0] == pytest.approx(c + 0.3 / s.ps, abs=2.0)
    assert f.center[1] == pytest.approx(c - 0.2 / s.ps, abs=2.0)


@pytest.mark.parametrize(("start", "extent"), [(30.0, 120.0), (300.0, 100.0), (10.0, 270.0)])
def test_calcium_arc_detected_within_tolerance(start: float, extent: float) -> None:
    f = _mid(Synth(calcium=(start, extent)))
    assert f.calcium_arc_deg == pytest.approx(extent, abs=8.0)
    assert f.superficial_calcium_arc_deg == pytest.approx(extent, abs=8.0)
    idx = int((start + extent / 2) % 360)
    assert f.calcium_mask[idx]
    assert not f.calcium_mask[int((start + extent + 40) % 360)]


def test_guidewire_shadow_is_not_calcium() -> None:
    f = _mid(Synth(wire_deg=250.0, wire_shadow_deg=14.0))
    assert f.calcium_arc_deg == 0.0
    assert f.lumen_area_mm2 == pytest.approx(np.pi * 1.2**2, rel=0.08)


def test_attenuated_plaque_is_not_calcium() -> None:
    f = _mid(Synth(attenuated=(100.0, 90.0)))
    assert f.calcium_arc_deg == 0.0


def test_guidewire_gap_bridged_when_calcium_on_both_sides() -> None:
    f = _mid(Synth(calcium=(300.0, 200.0), wire_deg=40.0, wire_shadow_deg=14.0))
    assert f.calcium_arc_deg == pytest.approx(200.0, abs=8.0)
    assert f.calcium_mask[40]


def test_guidewire_gap_not_bridged_at_the_end_of_an_arc() -> None:
    # Wire at the edge of the arc: calcium on one side only, the hidden part is not calcium.
    f = _mid(Synth(calcium=(0.0, 100.0), wire_deg=100.0, wire_shadow_deg=14.0))
    assert f.calcium_arc_deg == pytest.approx(93.0, abs=9.0)
    assert not f.calcium_mask[104]


def test_deep_calcium_is_not_superficial() -> None:
    f = _mid(Synth(calcium=(30.0, 120.0), calcium_depth=0.6))
    assert f.calcium_arc_deg > 90.0
    assert f.superficial_calcium_arc_deg == 0.0


def test_catheter_centre_found_from_the_image() -> None:
    frames = make_frames(Synth())
    c = polar.find_catheter_center(frames)
    assert c == pytest.approx(((frames.shape[2] - 1) / 2, (frames.shape[1] - 1) / 2), abs=1.5)
    f = _mid(Synth(calcium=(30.0, 120.0)), with_center=False)
    assert f.calcium_arc_deg == pytest.approx(120.0, abs=8.0)


def test_overlay_pixels_are_flagged_and_remapped() -> None:
    frames = make_frames(Synth(frames=10))
    frames[:, 100:102, 100:102] = 200  # calibration dot burnt into every frame
    p = AnalysisParameters()
    mask = polar.overlay_mask(frames, p)
    assert mask[100, 100] and mask[101, 101]
    assert mask.sum() < 40
    c = (frames.shape[2] - 1) / 2
    grid = polar.make_grid(frames.shape[1:], (c, c), 1.0, 80.0, mask)
    assert not np.isin(100 * frames.shape[2] + 100, grid.index)


def test_seam_column_interpolated() -> None:
    rng = np.random.default_rng(1)
    pol = rng.uniform(90, 110, size=(2, ANGLE_BINS, 50)).astype(np.float32)
    pol[:, 77, :] = 5.0
    preprocess.remove_seam(pol, 5, AnalysisParameters())
    assert pol[:, 77, 5:].mean() > 80


def test_gain_jump_normalised() -> None:
    levels = np.full(30, 100.0)
    levels[12] = 140.0
    g = preprocess.gain_factors(levels, AnalysisParameters())
    assert g[12] * 140.0 == pytest.approx(100.0, rel=0.02)
    assert g[3] == pytest.approx(1.0)


def test_dp_circular_follows_a_closed_ridge() -> None:
    n_r = 40
    radius = (20 + 5 * np.sin(np.deg2rad(np.arange(180) * 2))).round().astype(int)
    cost = np.ones((1, 180, n_r), dtype=np.float32)
    cost[0, np.arange(180), radius] = 0.0
    path = borders.dp_circular(cost, 2)
    assert np.abs(path[0] - radius).max() <= 1
    assert abs(int(path[0, 0]) - int(path[0, -1])) <= 2


def test_blank_frames_not_assessable() -> None:
    pb = make_pullback(Synth(frames=8))
    frames = pb.frames.copy()
    frames[3] = 0
    a = analyze_pullback(Pullback(frames=frames, pixel_spacing_mm=pb.pixel_spacing_mm,
                                  frame_spacing_mm=0.1, catheter_center=pb.catheter_center))
    assert not a.frames[3].assessable
    assert a.frames[3].lumen_area_mm2 is None
    assert a.frames[2].assessable
    assert any("not assessable" in r for r in a.not_assessable)


def test_unknown_spacings_give_none_and_reasons() -> None:
    pb = make_pullback(Synth(calcium=(30.0, 120.0)))
    a = analyze_pullback(Pullback(frames=pb.frames, pixel_spacing_mm=None,
                                  frame_spacing_mm=None, catheter_center=pb.catheter_center,
                                  notes=("no Sequence of Ultrasound Regions",)))
    f = a.frames[4]
    assert f.lumen_area_mm2 is None and f.eem_mean_diameter_mm is None
    assert f.calcium_depth_mm is None
    assert f.calcium_arc_deg > 90.0
    assert a.not_assessable[0] == "no Sequence of Ultrasound Regions"
    assert any("pixel spacing" in r for r in a.not_assessable)
    assert any("frame spacing" in r for r in a.not_assessable)


@pytest.mark.parametrize("frames", [
    np.zeros((0, 64, 64), dtype=np.uint8),
    np.zeros((3, 16, 16), dtype=np.uint8),
    np.zeros((3, 64, 64), dtype=np.float32),
    np.zeros((64, 64), dtype=np.uint8),
])
def test_unusable_arrays_raise_clear_error(frames: np.ndarray) -> None:
    with pytest.raises(NotAssessableError, match="pullback"):
        analyze_pullback(Pullback(frames=frames, pixel_spacing_mm=0.03, frame_spacing_mm=0.1))


def test_frames_are_one_based_and_masks_sized() -> None:
    a = analyze_pullback(make_pullback(Synth(frames=5, calcium=(30.0, 120.0))))
    assert [f.frame for f in a.frames] == [1, 2, 3, 4, 5]
    assert a.frame_count == 5
    for f in a.frames:
        assert f.calcium_mask.shape == (ANGLE_BINS,)
        assert (f.superficial_calcium_mask <= f.calcium_mask).all()
        assert f.calcium_arc_deg == geometry.mask_arc_deg(f.calcium_mask)


def test_params_as_dict_round_trip() -> None:
    d = AnalysisParameters().as_dict()
    assert d["algorithm_version"]
    assert d["over_270_deg"] == 270.0
    assert all(isinstance(v, int | float | str) for v in d.values())


@pytest.mark.parametrize("case", ["one_frame", "zeros", "saturated", "narrow", "off_centre",
                                  "huge_pixels", "tiny_pixels", "noise"])
def test_odd_but_valid_arrays_never_crash(case: str) -> None:
    rng = np.random.default_rng(0)
    frames = make_frames(Synth(frames=4, size=96))
    center: tuple[float, float] | None = None
    ps: float | None = 0.03
    if case == "one_frame":
        frames = frames[:1]
    elif case == "zeros":
        frames = np.zeros_like(frames)
    elif case == "saturated":
        frames = np.full_like(frames, 255)
    elif case == "narrow":
        frames = rng.integers(0, 255, size=(3, 33, 300), dtype=np.uint8)
    elif case == "off_centre":
        center = (-50.0, 400.0)
    elif case == "huge_pixels":
        ps = 5.0
    elif case == "tiny_pixels":
        ps = 1e-5
    else:
        frames = rng.integers(0, 255, size=(6, 64, 64), dtype=np.uint8)
    a = analyze_pullback(Pullback(frames=frames, pixel_spacing_mm=ps, frame_spacing_mm=0.1,
                                  catheter_center=center))
    assert a.frame_count == frames.shape[0] == len(a.frames)
    if case in ("zeros", "saturated"):
        assert not any(f.assessable for f in a.frames)
        assert a.lesions == ()
