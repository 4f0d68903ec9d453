"""Guidewire versus calcium: reflectors inside the lumen, the wire track along the pullback.

The guidewire is a bright reflector inside the lumen with a narrow shadow; it is not calcium
(docs/scoring.md), the lumen and EEM behind it are interpolated and calcium on both sides of
its shadow is bridged. A calcified nodule also bulges towards the catheter, so the wire is told
apart by its persistence along the pullback (a track of nearly constant angle) or, without a
track, by the discontinuity of its reflector with the calcium beside it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from srservice.analysis.context import Context
from srservice.analysis.geometry import circular_runs

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

#: Reflectors this far inside the vessel surface are guidewire candidates near the wire track.
WIRE_TRACK_TOL_MM = 0.05


def inner_reflectors(shadow: B, edge: npt.NDArray[np.intp], lumen: F64, ctx: Context,
                     tol_mm: float | None = None) -> B:
    """Shadow rays whose reflector lies well inside the vessel surface (candidate wire).

    The vessel surface of a ray is its reflector radius where it casts a shadow and the
    lumen border elsewhere; a reflector more than ``lumen_edge_tolerance_mm`` closer to the
    catheter than the circular median of that surface over 121 degrees is inside the lumen.
    """
    tol_mm = ctx.params.lumen_edge_tolerance_mm if tol_mm is None else tol_mm
    tol = tol_mm / ctx.step_mm
    depth = inward_depth(shadow, edge, lumen)
    return np.asarray(shadow & (depth > tol))


def inward_depth(shadow: B, edge: npt.NDArray[np.intp], lumen: F64) -> F64:
    """How far (samples) each ray's surface lies inside the circular median surface."""
    surface = np.where(shadow, edge.astype(np.float64), lumen)
    coarse = ndimage.median_filter(surface[:, ::3], size=(1, 41), mode="wrap")
    ref = np.repeat(coarse, 3, axis=1)[:, : surface.shape[1]]
    return np.asarray(ref - surface, dtype=np.float64)


def wire_track(inner: B, depth: F64, max_w: int) -> F64:
    """Guidewire angle (bin) per frame from candidate runs, NaN where there is none.

    Each frame contributes its deepest candidate run (the wire lies well inside the vessel
    surface); the guidewire is present along the whole pullback at a slowly changing angle,
    so the most frequent such angle is the wire. Each frame then keeps its candidate run
    nearest that angle (within 40 degrees).
    """
    n, n_a = inner.shape
    out = np.full(n, np.nan)
    centres: list[list[float]] = []
    hist = np.zeros(n_a)
    for i in range(n):
        cs: list[float] = []
        best, best_d = -1.0, -np.inf
        for start, length in circular_runs(inner[i]):
            if length <= max_w:
                idx = (start + np.arange(length)) % n_a
                c = (start + (length - 1) / 2.0) % n_a
                cs.append(c)
                d = float(depth[i, idx].mean())
                if d > best_d:
                    best, best_d = c, d
        if best >= 0:
            hist[int(best) % n_a] += 1
        centres.append(cs)
    if n == 0 or hist.sum() == 0:
        return out
    k = np.ones(21)
    smooth_h = np.convolve(np.concatenate([hist[-10:], hist, hist[:10]]), k, mode="valid")
    mode = float(np.argmax(smooth_h))
    if smooth_h.max() < 0.4 * n:
        return out
    for i, cs in enumerate(centres):
        if not cs:
            continue
        dist = [abs((c - mode + n_a / 2) % n_a - n_a / 2) for c in cs]
        j = int(np.argmin(dist))
        if dist[j] <= 40:
            out[i] = cs[j]
    return out


def classify_wire(shadow: B, edge: npt.NDArray[np.intp], lumen: F64, ctx: Context,
                  track: F64 | None = None) -> B:
    """Guidewire rays among the shadow rays (not calcium).

    With a known wire angle for a frame (``track``, from :func:`wire_track` along the
    pullback), every candidate run (:func:`inner_reflectors`, plus shadow rays with a
    reflector slightly inside the surface) within 25 degrees of it is the wire and other
    candidates are calcium (a calcified nodule also bulges towards the catheter). Without a
    track, the candidate run no wider than ``guidewire_max_gap_deg`` lying farthest inside the
    lumen is the wire (there is one guidewire), unless its leading edge continues smoothly into
    the calcium on both sides (a nodule).
    """
    depth = inward_depth(shadow, edge, lumen)
    inner = shadow & (depth > ctx.params.lumen_edge_tolerance_mm / ctx.step_mm)
    loose = shadow & (depth > WIRE_TRACK_TOL_MM / ctx.step_mm)
    wire = np.zeros_like(shadow)
    max_w = int(ctx.params.guidewire_max_gap_deg)
    n_a = shadow.shape[1]
    jump = ctx.samples(0.1)
    bins = np.arange(n_a)
    tracked = np.zeros(shadow.shape[0], dtype=np.bool_) if track is None else ~np.isnan(track)
    if tracked.any():
        t = np.asarray(track, dtype=np.float64)[tracked][:, None]
        near = np.abs((bins[None, :] - t + n_a / 2) % n_a - n_a / 2) <= 25
        wire[tracked] = loose[tracked] & near
    for i in np.flatnonzero(~tracked):
        best: npt.NDArray[np.intp] | None = None
        best_depth = -np.inf
        for start, length in circular_runs(inner[i]):
            if length > max_w:
                continue
            idx = (start + np.arange(length)) % n_a
            left, right = (start - 1) % n_a, (start + length) % n_a
            smooth_l = shadow[i, left] and abs(edge[i, left] - edge[i, idx[0]]) <= jump
            smooth_r = shadow[i, right] and abs(edge[i, right] - edge[i, idx[-1]]) <= jump
            if smooth_l and smooth_r:
                continue
            # One guidewire per frame: the candidate lying farthest inside the lumen.
            d = float(np.median(depth[i, idx]))
            if d > best_depth:
                best, best_depth = idx, d
        if best is not None:
            wire[i, best] = True
    return wire


def circular_dilate(mask: B, k: int) -> B:
    """Dilate ``(n, A)`` angular masks by ``k`` bins each side, wrapping at 360 degrees.

    A bin is set when any bin of its ``2k + 1`` window is set: a window count from one
    cumulative sum over the circularly padded rows.
    """
    n_a = mask.shape[1]
    if k <= 0:
        return mask.copy()
    if 2 * k + 1 >= n_a:
        return np.repeat(mask.any(axis=1, keepdims=True), n_a, axis=1)
    pad = np.concatenate([mask[:, -k - 1 :], mask, mask[:, :k]], axis=1)
    cs = np.cumsum(pad, axis=1, dtype=np.int32)
    return np.asarray(cs[:, 2 * k + 1 :] > cs[:, : n_a], dtype=np.bool_)


def dark_rays(s3: F32, ctx: Context) -> B:
    """Rays dark from the catheter to the edge of the field of view.

    A shadow that starts at the catheter (guidewire whose reflection is not visible, or the
    part of a guidewire shadow beside its bright spot) hides lumen and wall alike; such rays
    carry no border information and are never calcium (no leading edge). Rays with a bright
    reflector anywhere beyond the catheter are not dark rays.
    """
    n_r = s3.shape[2]
    start = min(ctx.r0 + ctx.samples(0.1), n_r - 1)
    rr = np.arange(n_r)[None, None, :]
    inside = (rr >= start) & (rr < ctx.valid_end[None, :, None])
    dark = (s3 < ctx.levels.dark) & inside
    count = np.maximum(inside.sum(axis=2), 1)
    # A ray with a bright reflector right outside the catheter (calcium touching the catheter,
    # the catheter against the wall) has a leading edge: it is classified by its edge.
    near = (rr >= ctx.r0) & (rr < ctx.valid_end[None, :, None])
    edge_seen = ((s3 >= ctx.levels.bright) & near).any(axis=2)
    return np.asarray((dark.sum(axis=2) / count >= 0.9) & ~edge_seen)
