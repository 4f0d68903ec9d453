"""Calcium and nodule rules on hand-made polar rays and contours (docs/scoring.md).

Each test builds the smallest input that shows one rule: a permeable shadow with
reverberations behind a saturated edge, hysteresis along the angle, a leading edge hidden
in the catheter ring-down, and the convex-hull reference of the nodule protrusion.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from srservice.analysis import detect, geometry, volume
from srservice.analysis.context import Context, Levels
from srservice.analysis.params import AnalysisParameters
from srservice.analysis.types import ANGLE_BINS

N_R = 200
R0 = 20
EDGE = 60


def _ctx() -> Context:
    return Context(r0=R0, step_mm=0.025, valid_end=np.full(ANGLE_BINS, N_R, dtype=np.intp),
                   levels=Levels(blood=100.0, plaque=120.0, bright=210.0, dark=54.0),
                   params=AnalysisParameters())


def _frame() -> np.ndarray:
    """One polar frame: blood, then plaque everywhere (no calcium)."""
    f = np.full((1, ANGLE_BINS, N_R), 120.0, dtype=np.float32)
    f[:, :, R0:EDGE] = 100.0
    f[:, :, :R0] = 0.0
    return f


def _calcium(f: np.ndarray, rays: slice, reverberating: bool) -> None:
    f[0, rays, EDGE : EDGE + 3] = 255.0
    f[0, rays, EDGE + 3 :] = 10.0
    if reverberating:  # two reverberation streaks right behind the edge
        f[0, rays, EDGE + 6 : EDGE + 11] = 115.0
        f[0, rays, EDGE + 15 : EDGE + 21] = 115.0


def test_reverberating_shadow_fails_the_strict_test_and_passes_the_deep_one() -> None:
    f = _frame()
    _calcium(f, slice(0, 100), reverberating=False)
    _calcium(f, slice(100, 160), reverberating=True)
    strict, _ = detect.find_shadows(f, _ctx())
    deep, edge_d = detect.find_shadows(f, _ctx(), deep=True)
    assert strict[0, :100].all() and not strict[0, 100:].any()
    assert deep[0, :160].all() and not deep[0, 160:].any()
    assert set(np.unique(edge_d[0, :160])) <= {EDGE, EDGE + 1, EDGE + 2}


def test_bright_plaque_before_a_dark_far_field_is_not_a_deep_shadow() -> None:
    # A saturated fibrous cap over 0.75 mm of bright tissue, then a dark far field: nothing
    # dark right behind the edge, so neither test calls it calcium.
    f = _frame()
    f[0, :, EDGE : EDGE + 3] = 255.0
    f[0, :, EDGE + 3 : EDGE + 33] = 150.0
    f[0, :, EDGE + 33 :] = 8.0
    strict, _ = detect.find_shadows(f, _ctx())
    deep, _ = detect.find_shadows(f, _ctx(), deep=True)
    assert not strict.any() and not deep.any()


def test_shadow_without_a_bright_edge_is_not_calcium_in_either_test() -> None:
    f = _frame()
    f[0, :90, EDGE:] = 10.0  # attenuation: a shadow without a leading edge
    assert not detect.find_shadows(f, _ctx())[0].any()
    assert not detect.find_shadows(f, _ctx(), deep=True)[0].any()


def test_leading_edge_inside_the_ring_down_of_a_catheter_touching_the_wall() -> None:
    f = _frame()
    f[0, :, R0 - 4 : R0 + 1] = 150.0  # the ring-down
    f[0, 200:240, R0 - 2 : R0 + 1] = 255.0  # calcium at the catheter surface
    f[0, 200:240, R0 + 1 :] = 8.0
    f[0, 300:320, R0 + 1 :] = 8.0  # a shadow from the catheter with no edge (guidewire-like)
    found, edge = detect.find_shadows(f, _ctx())
    assert found[0, 200:240].all()
    assert not found[0, 300:320].any()
    assert (edge[0, 200:240] >= R0 - 2).all()


@settings(max_examples=60, deadline=None)
@given(st.integers(0, ANGLE_BINS - 1), st.integers(6, 60), st.integers(1, 80),
       st.integers(1, 40), st.integers(2, 40))
def test_hysteresis_grows_only_runs_that_hold_an_anchor(start: int, width: int, grow: int,
                                                        lone: int, sep: int) -> None:
    def bins(first: int, count: int) -> np.ndarray:
        return (first + np.arange(count)) % ANGLE_BINS

    anchor = np.zeros((1, ANGLE_BINS), dtype=bool)
    allowed = np.zeros_like(anchor)
    anchor[0, bins(start, width)] = True
    allowed[0, bins(start + width, grow)] = True  # continues the anchor
    # A weak run of its own, ``sep`` bins after the grown run, not touching the anchor.
    lone_first = start + width + grow + sep
    lone_bins = bins(lone_first, lone)
    if width + grow + sep + lone + 1 <= ANGLE_BINS:
        allowed[0, lone_bins] = True
    out = geometry.grow_runs_rows(anchor, allowed)
    assert out[0, bins(start, width + grow)].all()
    if width + grow + sep + lone + 1 <= ANGLE_BINS:
        assert not out[0, lone_bins].any()
    assert out.sum() == width + grow


def test_hysteresis_without_anchor_grows_nothing() -> None:
    allowed = np.ones((2, ANGLE_BINS), dtype=bool)
    allowed[1, ::7] = False
    assert not geometry.grow_runs_rows(np.zeros_like(allowed), allowed).any()


def test_hull_radius_bridges_a_dent_and_keeps_a_circle() -> None:
    r = np.full((2, ANGLE_BINS), 50.0)
    r[1, 100:130] = 40.0  # a 10-sample bulge into the lumen over 30 degrees
    h = volume.hull_radius(r)
    np.testing.assert_allclose(h[0], 50.0, rtol=1e-9)
    half_dent = np.radians(15.0)  # ANGLE_BINS bins span 360 degrees
    assert h[1, 115] >= 50.0 * np.cos(half_dent) - 0.5
    assert (h[1] >= r[1] - 1e-9).all()
    assert h[1, 50] == pytest.approx(50.0)


def test_hull_radius_of_an_off_centre_circle_is_the_circle() -> None:
    # A lumen seen from a catheter close to its border: the radius function is far from a
    # low-order sinusoid but the border is convex, so nothing protrudes.
    theta = (np.arange(ANGLE_BINS) + 0.5) * 2 * np.pi / ANGLE_BINS
    d, radius = 40.0, 48.0
    rho = d * np.cos(theta) + np.sqrt(radius**2 - (d * np.sin(theta)) ** 2)
    h = volume.hull_radius(rho[None, :])
    assert np.max(h[0] - rho) < 0.05


def test_saturated_edge_of_a_frame_whose_gain_was_lowered_is_bright() -> None:
    # The pullback's bright level (240 here) sits above 255 x 0.9: a saturated edge in a frame
    # whose gain correction is 0.9 still counts, capped at bright_cap_fraction of 229.5.
    ctx = Context(r0=R0, step_mm=0.025, valid_end=np.full(ANGLE_BINS, N_R, dtype=np.intp),
                  levels=Levels(blood=100.0, plaque=120.0, bright=240.0, dark=54.0),
                  params=AnalysisParameters())
    f = _frame()
    _calcium(f, slice(0, 90), reverberating=False)
    f[0, :90, EDGE : EDGE + 3] = 255.0 * 0.9
    assert not detect.find_shadows(f, ctx)[0].any()
    found, _ = detect.find_shadows(f, ctx, gain=np.array([0.9]))
    assert found[0, :90].all() and not found[0, 90:].any()
    # At full gain the cap is 0.85 x 255: an edge below it is not bright.
    f[0, :90, EDGE : EDGE + 3] = 210.0
    assert not detect.find_shadows(f, ctx, gain=np.array([1.0]))[0].any()


def test_narrow_gap_with_a_saturated_edge_joins_two_calcium_pieces() -> None:
    # A reverberation blob right behind a continuous saturated edge spoils the shadow test of
    # a few rays; the edge stays at the bright level, so the gap is calcium.
    f = _frame()
    _calcium(f, slice(0, 200), reverberating=False)
    f[0, 100:106, EDGE + 3 : EDGE + 40] = 200.0  # the blob: no shadow on 6 rays
    found, edge = detect.find_shadows(f, _ctx())
    assert not found[0, 100:106].any()
    joined, _ = detect.join_dim_edges(found, edge, f, _ctx())
    assert joined[0, :200].all() and not joined[0, 200:].any()
    # The same blob over 20 rays is wider than calcium_edge_gap_deg: not joined.
    f[0, 100:120, EDGE + 3 : EDGE + 40] = 200.0
    found, edge = detect.find_shadows(f, _ctx())
    joined, _ = detect.join_dim_edges(found, edge, f, _ctx())
    assert not joined[0, 106:114].all()


def test_a_wide_nodule_on_a_round_lumen_keeps_its_protrusion() -> None:
    # A 0.4 mm calcified nodule of three lobes (about 50 degrees wide) on a 1.15 mm lumen: the
    # hull chord across it lies inside the circle, so the hull depth counts where it is
    # largest instead of being held over the nodule's width (that gave 0.14 mm: missed).
    deg = np.arange(ANGLE_BINS) + 0.5
    lobes = np.zeros(ANGLE_BINS)
    for offset, height in ((-13.0, 0.75), (0.0, 1.0), (12.0, 0.85)):
        d = np.mod(deg - (90.0 + offset) + 180.0, 360.0) - 180.0
        lobes = np.maximum(lobes, height * np.exp(-0.5 * (d / 9.0) ** 2))
    lum = (46.0 - 16.0 * lobes / lobes.max())[None, :]
    cal = np.zeros_like(lum, dtype=bool)
    cal[0, 20:180] = True
    none = np.zeros_like(cal)
    prot, where = volume.protrusion_mm(lum, lum.copy(), cal, none, 0.025)
    assert prot[0] >= 0.2
    assert abs(int(where[0]) - 90) <= 10
    # The same lumen without the nodule: no protrusion.
    flat = np.full_like(lum, 46.0)
    assert volume.protrusion_mm(flat, flat.copy(), cal, none, 0.025)[0][0] < 0.05


def test_nodule_touching_the_catheter_gives_no_evidence() -> None:
    # The same three-lobed bulge as above: clear of the catheter it is a nodule; with its
    # leading edge on the catheter (a catheter pressed against the wall) it is not evidence.
    deg = np.arange(ANGLE_BINS) + 0.5
    d = np.mod(deg - 90.0 + 180.0, 360.0) - 180.0
    lum = (46.0 - 16.0 * np.exp(-0.5 * (d / 12.0) ** 2))[None, :]
    cal = np.zeros_like(lum, dtype=bool)
    cal[0, 40:140] = True
    none = np.zeros_like(cal)
    clear, _ = volume.protrusion_mm(lum, lum.copy(), cal, none, 0.025, catheter_samples=20.0)
    assert clear[0] >= 0.2
    touching, _ = volume.protrusion_mm(lum, lum.copy(), cal, none, 0.025,
                                       catheter_samples=34.0)
    assert touching[0] < 0.2


def _thin_ends(f: np.ndarray, rays: slice, behind: float) -> None:
    """A dimmer leading edge whose shadow keeps ``behind`` (grey level) of signal."""
    f[0, rays, EDGE : EDGE + 3] = 200.0
    f[0, rays, EDGE + 3 :] = behind


def _thin_ended_arc(f: np.ndarray, start: int, stop: int, ends: int) -> None:
    """Calcium over rays ``start:stop``, ``ends`` rays of thin ends on either side."""
    _calcium(f, slice(start, stop), reverberating=False)
    _thin_ends(f, slice(start - ends, start), 60.0)
    _thin_ends(f, slice(stop, stop + ends), 60.0)


def test_arc_continues_at_its_ends_into_a_weaker_relative_shadow() -> None:
    # Calcium over 100-199 with a black shadow; over 70-99 and 200-229 the deposit thins: a
    # dimmer edge and a shadow that keeps half the signal (60 of 120: not dark enough for the
    # shadow tests). The arc continues over at most calcium_end_extension_deg at each end.
    ctx = _ctx()
    f = _frame()
    _thin_ended_arc(f, 100, 200, 30)
    found, edge = detect.find_shadows(f, ctx)
    assert found[0, 100:200].all() and not found[0, :100].any() and not found[0, 200:].any()
    none = np.zeros_like(found)
    grown, g_edge = detect.extend_arc_ends(found, edge, f, none, ctx)
    reach = round(ctx.params.calcium_end_extension_deg)
    assert grown[0, 100 - reach : 200 + reach].all()
    assert not grown[0, : 100 - reach].any() and not grown[0, 200 + reach :].any()
    assert set(np.unique(g_edge[0, 100 - reach : 100])) <= {EDGE - 1, EDGE, EDGE + 1}
    # The guidewire is never calcium.
    wire = np.zeros_like(found)
    wire[0, 90:100] = True
    grown, _ = detect.extend_arc_ends(found, edge, f, wire, ctx)
    assert not grown[0, :100].any() and grown[0, 200:210].all()


def test_arc_does_not_continue_into_bright_plaque_without_a_shadow() -> None:
    # A bright (even saturated) edge with unattenuated tissue behind it is not calcium.
    ctx = _ctx()
    f = _frame()
    _calcium(f, slice(100, 200), reverberating=False)
    _thin_ends(f, slice(200, 230), 120.0)
    f[0, 80:100, EDGE : EDGE + 3] = 255.0
    found, edge = detect.find_shadows(f, ctx)
    grown, _ = detect.extend_arc_ends(found, edge, f, np.zeros_like(found), ctx)
    assert np.array_equal(grown, found)


def test_strict_calcium_up_to_two_frames_away_anchors_a_reverberating_shadow() -> None:
    # The pullback as a volume: a frame whose whole arc only passes the weaker (deep) test is
    # calcium where a frame up to calcium_anchor_frames (2) away has strict calcium at the same
    # angles. Frames: 0 strict, 1 and 2 reverberating (one and two frames away), 3 and 4 no
    # calcium, 5 reverberating five frames from strict calcium.
    f = np.concatenate([_frame() for _ in range(6)])
    _calcium(f[0:1], slice(0, 100), reverberating=False)
    _calcium(f[1:2], slice(0, 100), reverberating=True)
    _calcium(f[2:3], slice(0, 100), reverberating=True)
    _calcium(f[5:6], slice(0, 100), reverberating=True)
    res = detect.detect_chunk(f, f, _ctx())
    assert AnalysisParameters().calcium_anchor_frames == 2
    assert res.calcium[1, 10:90].all() and res.calcium[2, 10:90].all()
    assert not res.calcium[5].any()


def test_blur_beyond_a_sharp_end_is_not_a_thin_end() -> None:
    # Two rays of partial shadow beyond a sharp end (the blur of the edge) do not continue
    # the arc; the same weak shadow over calcium_end_min_deg or more does.
    ctx = _ctx()
    f = _frame()
    _calcium(f, slice(100, 200), reverberating=False)
    _thin_ends(f, slice(200, 202), 60.0)
    found, edge = detect.find_shadows(f, ctx)
    grown, _ = detect.extend_arc_ends(found, edge, f, np.zeros_like(found), ctx)
    assert np.array_equal(grown, found)
    _thin_ends(f, slice(200, 206), 60.0)
    grown, _ = detect.extend_arc_ends(found, edge, f, np.zeros_like(found), ctx)
    assert grown[0, 100:206].all() and not grown[0, 206:].any()


def test_eem_on_a_log_compressed_blurred_step() -> None:
    # Echo amplitudes: blood, plaque, a dark media band, then adventitia from sample 110 (a
    # 32 dB step), blurred (sigma 0.05 mm) and log-compressed as a console does. The
    # steepest point of the compressed rise lies on its dark side; eem_edge_offset_mm puts
    # the EEM back on the step (within 0.025 mm); without it the border lies inside.
    from dataclasses import replace

    from scipy import ndimage

    step = 110
    amp = np.full(N_R, 10.0)
    amp[:EDGE] = 4.0
    amp[100:step] = 1.0
    amp[step:] = 40.0
    grey = 100.0 + 50.0 * np.log10(ndimage.gaussian_filter1d(amp, 2.0) / 4.0)
    rng = np.random.default_rng(0)
    f = np.tile(grey.astype(np.float32), (3, ANGLE_BINS, 1))
    f *= rng.uniform(0.97, 1.03, f.shape).astype(np.float32)
    f[:, :, :R0] = 0.0
    ctx = _ctx()
    res = detect.detect_chunk(f, f, ctx)
    assert abs(float(np.median(res.eem[1])) - step) <= 1.0
    no_offset = replace(ctx, params=replace(ctx.params, eem_edge_offset_mm=0.0))
    res = detect.detect_chunk(f, f, no_offset)
    assert float(np.median(res.eem[1])) <= step - 2.0


def test_nearly_circumferential_ring_takes_the_reference_of_other_frames() -> None:
    # Frame 1 is a 319-deg ring (28-346) with thin ends at 18-27 and 347-356: too few rays
    # without calcium for its own reference. Alone it cannot continue; in a batch with a
    # frame that has enough reference rays, it does.
    ctx = _ctx()
    ring = _frame()
    _thin_ended_arc(ring, 28, 347, 10)
    found, edge = detect.find_shadows(ring, ctx)
    none = np.zeros_like(found)
    alone, _ = detect.extend_arc_ends(found, edge, ring, none, ctx)
    assert np.array_equal(alone, found)
    other = _frame()
    _calcium(other, slice(100, 200), reverberating=False)
    both = np.concatenate([other, ring])
    found, edge = detect.find_shadows(both, ctx)
    grown, _ = detect.extend_arc_ends(found, edge, both, np.zeros_like(found), ctx)
    assert grown[1, 18:357].all() and not grown[1, :18].any() and not grown[1, 357:].any()
