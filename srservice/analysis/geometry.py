"""Plane geometry of contours and angular masks (pure numpy).

Conventions are those of :mod:`srservice.analysis.types`: points are ``(x, y)`` pixels,
angles are degrees ``theta = atan2(y - cy, x - cx)`` in ``[0, 360)``, angular masks have
:data:`~srservice.analysis.types.ANGLE_BINS` bins.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from srservice.analysis.types import ANGLE_BINS, BoolArray, FloatArray

BIN_DEG = 360.0 / ANGLE_BINS


def bin_angles_deg() -> FloatArray:
    """Return the centre angle (degrees) of each angular bin."""
    return (np.arange(ANGLE_BINS, dtype=np.float64) + 0.5) * BIN_DEG


def polygon_areas(xy: FloatArray) -> FloatArray:
    """Areas (pixels squared) of closed simple polygons ``(n, K, 2)`` (shoelace formula)."""
    x = xy[..., 0]
    y = xy[..., 1]
    xn = np.roll(x, -1, axis=-1)
    yn = np.roll(y, -1, axis=-1)
    return np.asarray(0.5 * np.abs((x * yn).sum(axis=-1) - (y * xn).sum(axis=-1)),
                      dtype=np.float64)


def polygon_centroids(xy: FloatArray) -> FloatArray:
    """Area centroids ``(n, 2)`` of closed simple polygons ``(n, K, 2)``.

    Degenerate polygons (area ~ 0) get their vertex mean.
    """
    x = xy[..., 0]
    y = xy[..., 1]
    xn = np.roll(x, -1, axis=-1)
    yn = np.roll(y, -1, axis=-1)
    cross = x * yn - xn * y
    a = cross.sum(axis=-1) / 2.0
    degenerate = np.abs(a) < 1e-9
    safe = np.where(degenerate, 1.0, a)
    cx = ((x + xn) * cross).sum(axis=-1) / (6.0 * safe)
    cy = ((y + yn) * cross).sum(axis=-1) / (6.0 * safe)
    cx = np.where(degenerate, x.mean(axis=-1), cx)
    cy = np.where(degenerate, y.mean(axis=-1), cy)
    return np.stack([cx, cy], axis=-1)


_THETA = np.deg2rad(bin_angles_deg())
_COS, _SIN = np.cos(_THETA), np.sin(_THETA)


def contours_from_radii(radii_px: FloatArray, center: tuple[float, float]) -> FloatArray:
    """Return closed polygons ``(..., ANGLE_BINS, 2)``, one radius per bin about ``center``."""
    return np.stack([center[0] + radii_px * _COS, center[1] + radii_px * _SIN], axis=-1)


def periodic_interp_rows(x: FloatArray, xp: FloatArray, fp: FloatArray,
                         period: float = 360.0) -> FloatArray:
    """Row-wise ``numpy.interp(x, xp[i], fp[i], period=period)`` for ``(n, K)`` samples.

    ``x`` ``(T,)`` are shared targets. All rows are searched at once: each row's sorted
    samples, extended by one period on both ends, are offset by ``row * 3 * period`` so a
    single ``searchsorted`` over the flattened rows finds every bracketing pair.
    """
    n, k = xp.shape
    xm = np.mod(xp, period)
    order = np.argsort(xm, axis=1)
    xs = np.take_along_axis(xm, order, axis=1)
    fs = np.take_along_axis(fp, order, axis=1)
    xe = np.concatenate([xs[:, -1:] - period, xs, xs[:, :1] + period], axis=1)
    fe = np.concatenate([fs[:, -1:], fs, fs[:, :1]], axis=1)
    t = np.mod(np.asarray(x, dtype=np.float64), period)
    shift = 3.0 * period * np.arange(n)[:, None]
    j = np.searchsorted((xe + shift).ravel(), (t[None, :] + shift).ravel(), side="right") - 1
    j = np.clip(j.reshape(n, t.size) - (k + 2) * np.arange(n)[:, None], 0, k)
    x0 = np.take_along_axis(xe, j, axis=1)
    x1 = np.take_along_axis(xe, j + 1, axis=1)
    f0 = np.take_along_axis(fe, j, axis=1)
    f1 = np.take_along_axis(fe, j + 1, axis=1)
    dx = x1 - x0
    slope = np.divide(f1 - f0, dx, out=np.zeros_like(dx), where=dx > 0)
    return np.asarray(slope * (t[None, :] - x0) + f0, dtype=np.float64)


def radius_functions(xy: FloatArray, centers: FloatArray, angles_deg: FloatArray
                     ) -> FloatArray:
    """Radii ``(n, T)`` of star-shaped polygons ``(n, K, 2)`` about ``centers`` ``(n, 2)``."""
    dx = xy[..., 0] - centers[:, 0:1]
    dy = xy[..., 1] - centers[:, 1:2]
    ang = np.mod(np.degrees(np.arctan2(dy, dx)), 360.0)
    return periodic_interp_rows(angles_deg, ang, np.hypot(dx, dy))


def min_max_diameters(xy: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Minimum and maximum diameters (pixels) through the area centroids of ``(n, K, 2)``.

    A diameter through the centroid at angle ``t`` is ``r(t) + r(t + 180)`` where ``r`` is
    the contour's radius function about the centroid (IVUS consensus, Mintz et al. JACC
    2001;37:1478: mean EEM diameter = mean of maximum and minimum diameters).
    """
    r = radius_functions(xy, polygon_centroids(xy), np.arange(0.0, 360.0, 1.0))
    d = r[:, :180] + r[:, 180:]
    return d.min(axis=1), d.max(axis=1)


def mask_arc_deg(mask: BoolArray) -> float:
    """Arc (degrees) covered by an angular mask; separate pieces add, 360 max."""
    return float(np.count_nonzero(mask)) * BIN_DEG


_EDGE_RAD = np.deg2rad(np.arange(ANGLE_BINS + 1) * BIN_DEG)
_EDGE_COS, _EDGE_SIN = np.cos(_EDGE_RAD), np.sin(_EDGE_RAD)


def rebin_masks(masks: BoolArray, radii_px: FloatArray, from_center: tuple[float, float],
                to_centers: FloatArray) -> BoolArray:
    """Re-express angular masks ``(n, ANGLE_BINS)`` about one centre as bins about others.

    Each set bin ``i`` of row ``f`` (about ``from_center``) is the wedge ``[i, i+1)`` bins
    with its structure (e.g. the calcium leading edge) at ``radii_px[f, i]``; the two wedge
    edge points are seen from ``to_centers[f]`` (``(n, 2)``, ``(x, y)``) and every bin
    between their angles (short way) is set.
    """
    n = masks.shape[0]
    f, idx = np.nonzero(masks)
    if idx.size == 0:
        return np.zeros((n, ANGLE_BINS), dtype=np.bool_)
    e = np.stack([idx, idx + 1], axis=1)
    r = radii_px[f, idx][:, None]
    px = from_center[0] + r * _EDGE_COS[e] - to_centers[f, 0][:, None]
    py = from_center[1] + r * _EDGE_SIN[e] - to_centers[f, 1][:, None]
    a = np.mod(np.degrees(np.arctan2(py, px)), 360.0) / BIN_DEG
    a0 = a[:, 0]
    span = np.mod(a[:, 1] - a0, ANGLE_BINS)
    span = np.where(span > ANGLE_BINS / 2, 0.0, span)  # wedge seen from behind: degenerate
    start = np.floor(a0 + 1e-9).astype(np.intp)
    stop = np.ceil(a0 + span - 1e-9).astype(np.intp)
    stop = np.maximum(stop, start + 1)
    width = 2 * ANGLE_BINS + 2
    diff = (np.bincount(f * width + start, minlength=n * width)
            - np.bincount(f * width + np.minimum(stop, width - 1), minlength=n * width))
    cover = np.cumsum(diff.reshape(n, width), axis=1)[:, : 2 * ANGLE_BINS] > 0
    return np.asarray(cover[:, :ANGLE_BINS] | cover[:, ANGLE_BINS:], dtype=np.bool_)


def circular_neighbours(known: BoolArray) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Nearest known bin at or before and at or after every bin of each row, circularly.

    Rows are ``(n, A)``. Positions are in the row tripled (the bin itself is at ``A + bin``),
    so ``prev <= A + bin <= next`` and ``position % A`` is the bin; rows with no known bin
    give ``-1`` and ``3A``.
    """
    n_a = known.shape[1]
    pos = np.arange(3 * n_a)
    k3 = np.tile(known, (1, 3))
    prev = np.maximum.accumulate(np.where(k3, pos, -1), axis=1)[:, n_a : 2 * n_a]
    nxt = np.minimum.accumulate(np.where(k3, pos, 3 * n_a)[:, ::-1], axis=1)[:, ::-1]
    return prev, np.ascontiguousarray(nxt[:, n_a : 2 * n_a])


def circular_runs(mask: BoolArray) -> list[tuple[int, int]]:
    """Return the runs of True in a circular 1-D mask as ``(start, length)``; wrap-around joined."""
    n = mask.size
    if not mask.any():
        return []
    if mask.all():
        return [(0, n)]
    shift = int(np.flatnonzero(~mask)[0])
    rolled = np.roll(mask, -shift)
    d = np.diff(np.concatenate([[0], rolled.astype(np.int8), [0]]))
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1)
    return [(int((s + shift) % n), int(e - s)) for s, e in zip(starts, ends, strict=True)]


def fill_circular_gaps_rows(masks: BoolArray, max_gap: int,
                            allowed: BoolArray | None = None) -> BoolArray:
    """Fill gaps (runs of False) of at most ``max_gap`` bins between True bins, per row.

    ``masks`` and ``allowed`` are ``(n, A)``. When ``allowed`` is given, only gaps lying
    entirely inside ``allowed`` are filled (used to bridge guidewire shadows only,
    docs/scoring.md). Rows all True or all False are unchanged.
    """
    out = masks.copy()
    rows = np.flatnonzero(masks.any(axis=1) & ~masks.all(axis=1))
    if rows.size == 0:
        return out
    m = masks[rows]
    prev, nxt = circular_neighbours(m)
    gap = ~m & (nxt - prev - 1 <= max_gap)
    if allowed is not None:
        # Not-allowed bins between the two True bins: prefix sums over the tripled row.
        bad = np.tile(~allowed[rows], (1, 3))
        cb = np.zeros((rows.size, bad.shape[1] + 1), dtype=np.intp)
        np.cumsum(bad, axis=1, out=cb[:, 1:])
        r = np.arange(rows.size)[:, None]
        gap &= (cb[r, nxt] - cb[r, prev + 1]) == 0
    out[rows] |= gap
    return out


def grow_runs_rows(anchor: BoolArray, allowed: BoolArray) -> BoolArray:
    """Grow ``anchor`` into the circular runs of ``anchor | allowed`` that contain it, per row.

    Hysteresis along the angle (as in Canny's edge linking): bins that pass only a weaker
    test count where they continue a run that passed the strong one. ``(n, A)`` masks.
    """
    m = anchor | allowed
    out = anchor.copy()
    rows = np.flatnonzero(anchor.any(axis=1) & ~m.all(axis=1))
    full = anchor.any(axis=1) & m.all(axis=1)
    out[full] = True
    if rows.size == 0:
        return out
    prev, nxt = circular_neighbours(~m[rows])  # run bounds (exclusive) of every bin
    n_a = m.shape[1]
    ca = np.zeros((rows.size, 3 * n_a + 1), dtype=np.intp)
    np.cumsum(np.tile(anchor[rows], (1, 3)), axis=1, out=ca[:, 1:])
    r = np.arange(rows.size)[:, None]
    has = (ca[r, nxt] - ca[r, prev + 1]) > 0
    out[rows] |= m[rows] & has
    return out
