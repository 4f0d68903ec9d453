"""Property tests (hypothesis) for the geometry of contours and angular masks."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from srservice.analysis import geometry
from srservice.analysis.types import ANGLE_BINS

arcs = st.tuples(st.integers(0, ANGLE_BINS - 1), st.integers(1, ANGLE_BINS))

def polygon_area(xy: np.ndarray) -> float:
    return float(geometry.polygon_areas(xy[None])[0])


def polygon_centroid(xy: np.ndarray) -> tuple[float, float]:
    c = geometry.polygon_centroids(xy[None])[0]
    return float(c[0]), float(c[1])


def min_max_diameter(xy: np.ndarray) -> tuple[float, float]:
    dmin, dmax = geometry.min_max_diameters(xy[None])
    return float(dmin[0]), float(dmax[0])


def rebin_mask(mask: np.ndarray, radii: np.ndarray, from_c: tuple[float, float],
               to_c: tuple[float, float]) -> np.ndarray:
    out = geometry.rebin_masks(mask[None], np.asarray(radii, dtype=np.float64)[None], from_c,
                               np.asarray([to_c], dtype=np.float64))
    return np.asarray(out[0], dtype=np.bool_)


def fill_circular_gaps(mask: np.ndarray, max_gap: int,
                       allowed: np.ndarray | None = None) -> np.ndarray:
    out = geometry.fill_circular_gaps_rows(mask[None], max_gap,
                                           None if allowed is None else allowed[None])
    return np.asarray(out[0], dtype=np.bool_)



def _arc_mask(start: int, length: int) -> np.ndarray:
    m = np.zeros(ANGLE_BINS, dtype=bool)
    m[(start + np.arange(length)) % ANGLE_BINS] = True
    return m


@given(arcs)
def test_arc_wraps_at_0_360(arc: tuple[int, int]) -> None:
    start, length = arc
    m = _arc_mask(start, length)
    assert geometry.mask_arc_deg(m) == length * 360.0 / ANGLE_BINS
    runs = geometry.circular_runs(m)
    assert len(runs) == 1
    assert runs[0][1] == length
    if length < ANGLE_BINS:
        assert runs[0][0] == start


@given(arcs, st.integers(0, ANGLE_BINS - 1))
def test_arc_invariant_to_rotation_of_the_mask(arc: tuple[int, int], shift: int) -> None:
    m = _arc_mask(*arc)
    assert geometry.mask_arc_deg(np.roll(m, shift)) == geometry.mask_arc_deg(m)


@given(st.lists(arcs, min_size=1, max_size=4))
def test_separate_pieces_add_up_to_at_most_360(pieces: list[tuple[int, int]]) -> None:
    m = np.zeros(ANGLE_BINS, dtype=bool)
    for a in pieces:
        m |= _arc_mask(*a)
    total = sum(length for _, length in geometry.circular_runs(m))
    assert geometry.mask_arc_deg(m) == total * 360.0 / ANGLE_BINS <= 360.0


@settings(max_examples=60)
@given(st.floats(0.5, 30.0), st.floats(0.0, 0.4), st.floats(0.0, 360.0),
       st.floats(-20.0, 20.0), st.floats(-20.0, 20.0))
def test_polygon_area_invariant_to_rotation_and_translation(
        r: float, ecc: float, rot_deg: float, tx: float, ty: float) -> None:
    t = np.deg2rad(np.arange(ANGLE_BINS) + 0.5)
    xy = np.stack([r * (1 + ecc) * np.cos(t), r * (1 - ecc) * np.sin(t)], axis=1)
    a = np.deg2rad(rot_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    moved = xy @ rot.T + np.array([tx, ty])
    assert abs(polygon_area(moved) - polygon_area(xy)) < 1e-6 * r * r
    exact = np.pi * r * r * (1 + ecc) * (1 - ecc)
    assert abs(polygon_area(xy) - exact) / exact < 1e-3
    cx, cy = polygon_centroid(moved)
    assert abs(cx - tx) < 1e-6 * max(1.0, r) and abs(cy - ty) < 1e-6 * max(1.0, r)


@settings(max_examples=40)
@given(st.floats(2.0, 30.0), st.floats(0.0, 0.3))
def test_min_max_diameter_of_an_ellipse(r: float, ecc: float) -> None:
    t = np.deg2rad(np.arange(0.0, 360.0, 0.25))
    xy = np.stack([r * (1 + ecc) * np.cos(t) + 5.0, r * (1 - ecc) * np.sin(t) - 3.0], axis=1)
    dmin, dmax = min_max_diameter(xy)
    assert abs(dmax - 2 * r * (1 + ecc)) < 1e-2 * r
    assert abs(dmin - 2 * r * (1 - ecc)) < 1e-2 * r


@settings(max_examples=60)
@given(arcs, st.floats(-5.0, 5.0), st.floats(-5.0, 5.0))
def test_rebin_mask_to_a_shifted_centre_preserves_a_concentric_arc_roughly(
        arc: tuple[int, int], dx: float, dy: float) -> None:
    m = _arc_mask(*arc)
    radii = np.full(ANGLE_BINS, 100.0)
    same = rebin_mask(m, radii, (0.0, 0.0), (0.0, 0.0))
    assert same.sum() >= m.sum()
    assert same.sum() <= m.sum() + 2 * len(geometry.circular_runs(m))
    moved = rebin_mask(m, radii, (0.0, 0.0), (dx, dy))
    # A 5 px shift at radius 100 changes the subtended angle by at most ~6 degrees per end.
    assert abs(int(moved.sum()) - int(m.sum())) <= 14


@given(arcs, st.integers(0, ANGLE_BINS - 1))
def test_rebin_mask_commutes_with_rotation(arc: tuple[int, int], shift: int) -> None:
    m = _arc_mask(*arc)
    radii = np.full(ANGLE_BINS, 80.0)
    a = rebin_mask(m, radii, (0.0, 0.0), (0.0, 0.0))
    b = rebin_mask(np.roll(m, shift), radii, (0.0, 0.0), (0.0, 0.0))
    assert int(a.sum()) == int(b.sum())


@given(st.integers(0, ANGLE_BINS - 1), st.integers(1, 40), st.integers(1, 100))
def test_fill_gaps_only_inside_allowed(start: int, gap: int, other: int) -> None:
    m = np.ones(ANGLE_BINS, dtype=bool)
    hole = (start + np.arange(gap)) % ANGLE_BINS
    m[hole] = False
    allowed = np.zeros(ANGLE_BINS, dtype=bool)
    assert (fill_circular_gaps(m, 45, allowed) == m).all()
    allowed[hole] = True
    assert fill_circular_gaps(m, 45, allowed).all()
    assert (fill_circular_gaps(m, gap - 1, allowed) == m).all()
