"""Per-frame detection in polar images: shadows, guidewire, lumen, EEM, calcium A-lines.

All functions work on a batch of gain-normalised polar frames ``(n, ANGLE_BINS, R)`` about
the catheter centre. Rules (IVUS consensus, Mintz et al. JACC 2001;37:1478; docs/scoring.md):

- Calcium: a bright leading edge followed by an acoustic shadow (the rest of the ray dark
  compared with tissue at the same depth); reverberations inside the shadow are tolerated
  because the shadow test counts the fraction of dark samples, not their mean.
- Guidewire: a bright reflector with a shadow whose leading edge lies inside the lumen
  (closer to the catheter than the lumen border); it is not calcium, and the lumen/EEM behind
  it are interpolated. Attenuated plaque: shadow without a bright leading edge: not calcium.
- Lumen: first transition from blood to tissue along each ray (region cost), as a closed
  minimum-cost path; the blood level is measured just outside the catheter.
- EEM: rise from the dark media to the bright adventitia, beyond the lumen; hidden behind
  shadows and side branches, interpolated from visible EEM on either side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from srservice.analysis.borders import (
    decimate_angles,
    dp_circular,
    interpolate_hidden,
    region_cost,
    robust_fourier_fit,
    upsample_path,
)
from srservice.analysis.context import Context, Levels, box_angle, smooth
from srservice.analysis.geometry import fill_circular_gaps_rows, grow_runs_rows
from srservice.analysis.params import AnalysisParameters
from srservice.analysis.quality import longest_circular_run
from srservice.analysis.speckle import blood_likeness
from srservice.analysis.types import ANGLE_BINS
from srservice.analysis.volume import drop_narrow
from srservice.analysis.wire import (
    WIRE_TRACK_TOL_MM,
    circular_dilate,
    classify_wire,
    dark_rays,
    inner_reflectors,
    inward_depth,
)

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

#: Angle bins per node of the border search (borders are smooth; 2 degrees per node).
DP_ANGLE_STEP = 2


@dataclass(frozen=True)
class ChunkResult:
    """Polar detections of a batch of frames (radii in radial samples)."""

    lumen: F64
    eem: F64
    eem_hidden: B
    edge: F64
    calcium: B
    wire: B
    shadow: B
    lumen_smooth: F64
    guide: B
    branch: B
    ring: F64
    extent: F64


def ring_radius(polar: F32, ctx: Context) -> F64:
    """Per frame, the radius (samples) of the catheter ring-down peak (NaN when too faint).

    The ring-down lies at the same radius in every frame recorded at one display depth; a
    zoom change mid-pullback moves it (:mod:`.quality`).
    """
    hi = min(polar.shape[2], ctx.r0 + ctx.samples(0.1))  # the ring-down, not the wall
    lo = min(ctx.samples(0.1), hi - 1)
    prof = np.median(polar[:, ::4, lo:hi], axis=1)
    peak = prof.argmax(axis=1)
    val = np.take_along_axis(prof, peak[:, None], axis=1)[:, 0]
    return np.where(val >= 40.0, (lo + peak).astype(np.float64), np.nan)


def echo_extent(polar: F32, ctx: Context) -> F64:
    """Per frame, one past the last radius (samples) where some rays still carry an echo.

    Shadows behind circumferential calcium keep speckle and noise, so a few rays suffice.
    """
    frac = (polar[:, ::4, :] > 2.0).mean(axis=1)
    alive = frac >= 0.1
    n_r = polar.shape[2]
    last = n_r - np.argmax(alive[:, ::-1], axis=1)
    return np.where(alive.any(axis=1), last.astype(np.float64), np.nan)


def estimate_levels(polar: F32, r0: int, step_mm: float, params: AnalysisParameters) -> Levels:
    """Blood, plaque, bright and dark grey levels of the pullback from a sample of frames.

    Real exports: blood is almost as bright as plaque and a calcium leading edge saturates
    (251-255) while being only 1.5-3.7 times the median plaque level, so the bright level is
    capped by the pullback's own 99.9th percentile (``params.bright_cap_fraction``).
    """
    p = params
    s = smooth(polar, 5, 5)
    n_blood = max(2, int(p.blood_band_mm / step_mm))
    g0 = r0 + max(1, int(p.blood_gap_mm / step_mm))
    blood = float(np.median(s[:, :, g0 : g0 + n_blood]))
    r_end = min(s.shape[2], r0 + int(p.plaque_band_mm / step_mm))
    plaque = float(np.percentile(s[:, :, r0:r_end], p.plaque_percentile))
    plaque = max(plaque, blood + 10.0)
    bright = min(p.calcium_bright_factor * plaque,
                 p.bright_cap_fraction * float(np.percentile(s, 99.9)))
    bright = max(bright, plaque + p.bright_min_margin)
    return Levels(blood=blood, plaque=plaque, bright=bright,
                  dark=p.calcium_shadow_ratio * plaque)


def window_counts(mask: B, start: int, length: int) -> npt.NDArray[np.integer]:
    """Count the True samples in ``mask[..., r + start : r + start + length]`` for each ``r``.

    Samples beyond the end count as False. Exact integer sums of power-of-two windows
    (binary lifting, a handful of small-integer additions over the whole batch), much
    faster than a running filter or a cumulative sum along the short last axis.
    """
    n_r = mask.shape[-1]
    dtype = np.uint8 if length < 256 else np.int32
    total = n_r + start + length
    cur = np.zeros((*mask.shape[:-1], total), dtype=dtype)
    cur[..., :n_r] = mask
    out = np.zeros(mask.shape, dtype=dtype)
    offset, width = start, 1
    while True:
        if length & width:
            out += cur[..., offset : offset + n_r]
            offset += width
        if 2 * width > length:
            return out
        cur = cur[..., :-width] + cur[..., width:]  # sums of 2 * width samples
        width *= 2


def bright_levels(ctx: Context, n: int, gain: F64 | None) -> F32:
    """Bright (leading-edge) level of each of ``n`` frames, shaped ``(n, 1, 1)``.

    The pullback's level, capped at ``bright_cap_fraction`` of the frame's own saturation
    level ``255 * gain`` when the gain correction of each frame is given (a saturated edge in
    a frame whose gain was lowered is still saturated), never below the plaque level plus
    ``bright_min_margin``.
    """
    p = ctx.params
    bright = np.full((n, 1, 1), ctx.levels.bright, dtype=np.float32)
    if gain is None:
        return bright
    sat = (p.bright_cap_fraction * 255.0 * gain).astype(np.float32)[:, None, None]
    floor = np.float32(ctx.levels.plaque + p.bright_min_margin)
    return np.asarray(np.minimum(bright, np.maximum(sat, floor)), dtype=np.float32)


def find_shadows(s3: F32, ctx: Context, s_edge: F32 | None = None, deep: bool = False,
                 gain: F64 | None = None) -> tuple[B, npt.NDArray[np.intp]]:
    """Rays with a bright reflector followed by an acoustic shadow; first such reflector.

    Calcium on its clinical definition (Mintz et al. JACC 2001;37:1478): a hyperechoic leading
    edge with acoustic shadowing behind it. The shadow window starts
    ``calcium_shadow_gap_mm`` behind the reflector (skipping the edge itself) and is
    ``calcium_shadow_len_mm`` long, truncated at the field of view; at least
    ``calcium_dark_fraction`` of its samples must be darker than ``calcium_shadow_ratio``
    times the plaque level (real shadows keep 11-31 % of the neighbouring signal, with
    speckle and reverberations, so a fraction of dark samples is counted, not their mean).
    Bright plaque without a shadow and a shadow without a bright edge (attenuated plaque)
    are not calcium. With ``deep`` a ray also passes when ``calcium_deep_dark_fraction`` of
    a ``calcium_deep_shadow_len_mm`` window is dark and ``calcium_deep_near_fraction`` of the
    short one (reverberation streaks right behind the edge); that weaker test only extends
    arcs found by the strict one (:func:`detect_chunk`). A leading edge hidden in the
    ring-down of a catheter touching the wall counts when it outshines the ring-down.
    ``gain`` (per frame, the gain correction applied to the frames) caps the bright level at
    ``bright_cap_fraction`` of the frame's own saturation level (a saturated edge in a frame
    whose gain was lowered is still saturated).
    Returns ``(shadow, edge)`` with ``edge`` the radial index of the leading edge (0 where
    there is no shadow); :func:`find_shadow_pair` gives both tests from one pass.
    """
    strict, weak = _shadow_candidates(s3, ctx, s_edge, gain, deep)
    return _first_reflector(strict | weak if deep else strict)


def find_shadow_pair(s3: F32, ctx: Context, s_edge: F32 | None = None,
                     gain: F64 | None = None
                     ) -> tuple[tuple[B, npt.NDArray[np.intp]], tuple[B, npt.NDArray[np.intp]]]:
    """Both shadow tests of :func:`find_shadows` from one pass: ``(strict, deep)``."""
    strict, weak = _shadow_candidates(s3, ctx, s_edge, gain, True)
    return _first_reflector(strict), _first_reflector(strict | weak)


def _first_reflector(cand: B) -> tuple[B, npt.NDArray[np.intp]]:
    has = np.asarray(cand.any(axis=2), dtype=np.bool_)
    edge = np.argmax(cand, axis=2)
    return has, np.where(has, edge, 0).astype(np.intp)


def _bins(deg: float) -> int:
    """Angle bins in ``deg`` degrees (rounded)."""
    return round(deg * ANGLE_BINS / 360.0)


def _wide(mask: B, deg: float) -> B:
    """Circular runs of ``mask`` at least ``deg`` wide (at least one bin)."""
    return drop_narrow(mask, max(1, _bins(deg)))


def _edge_near(s: F32, surf: F64, ctx: Context, reach_mm: float
               ) -> tuple[npt.NDArray[np.intp], F32]:
    """Return the brightest sample within ``reach_mm`` of the radii ``surf``: index, level.

    One per ray, outside the catheter; ``s`` is ``(..., R)`` and ``surf`` ``(...)``.
    """
    rr = np.arange(s.shape[-1])
    reach = ctx.samples(reach_mm)
    lo = np.maximum(surf - reach, ctx.r0 + 1)[..., None]
    near = np.where((rr >= lo) & (rr <= (surf + reach)[..., None]), s, np.float32(0.0))
    idx = np.argmax(near, axis=-1)
    return idx, np.take_along_axis(near, idx[..., None], axis=-1)[..., 0]


def _shadow_candidates(s3: F32, ctx: Context, s_edge: F32 | None, gain: F64 | None,
                       deep: bool) -> tuple[B, B]:
    """Return the samples passing the strict test and those passing only the weaker one."""
    n_r = s3.shape[2]
    p = ctx.params
    gap = ctx.samples(p.calcium_shadow_gap_mm)
    length = ctx.samples(p.calcium_shadow_len_mm)
    rr = np.arange(n_r)
    in_fov = rr[None, :] < ctx.valid_end[:, None]
    dark = (s3 < ctx.levels.dark) & in_fov[None]
    dark_count = window_counts(dark, gap, length)
    count = np.clip(ctx.valid_end[:, None] - (rr[None, :] + gap), 0, length)
    enough = count >= max(3, length // 2)
    need = (p.calcium_dark_fraction * np.maximum(count, 1)).astype(np.float32)
    shadowed = (dark_count >= need[None]) & enough[None]
    weak = np.zeros_like(shadowed)
    d_len = ctx.samples(p.calcium_deep_shadow_len_mm)
    if deep and d_len > length:
        d_count = window_counts(dark, gap, d_len)
        cnt = np.clip(ctx.valid_end[:, None] - (rr[None, :] + gap), 0, d_len)
        d_need = (p.calcium_deep_dark_fraction * np.maximum(cnt, 1)).astype(np.float32)
        near = (p.calcium_deep_near_fraction * np.maximum(count, 1)).astype(np.float32)
        weak = ((d_count >= d_need[None]) & (cnt >= 2 * length)[None]
                & (dark_count >= near[None]) & enough[None])
    peak = s3 if s_edge is None else s_edge
    bright = bright_levels(ctx, s3.shape[0], gain)
    edge_ok = peak >= bright
    # A wall touching the catheter puts the leading edge inside the ring-down: just inside
    # the catheter radius a sample counts where it outshines the ring-down at that radius
    # (its median over the angles of the frame) by the bright-to-plaque margin.
    lo = max(1, ctx.r0 - ctx.samples(0.1))
    ring = np.median(peak[:, ::4, lo : ctx.r0 + 1], axis=1)
    margin = bright - np.float32(ctx.levels.plaque)
    edge_ok[:, :, lo : ctx.r0 + 1] &= peak[:, :, lo : ctx.r0 + 1] >= ring[:, None, :] + margin
    edge_ok[:, :, :lo] = False
    return edge_ok & shadowed, edge_ok & weak


def shadowed_rays(s3: F32, lumen: F64, ctx: Context) -> B:
    """Rays whose wall is mostly in acoustic shadow, whether or not a bright edge was found.

    The window runs from ``calcium_shadow_gap_mm`` to ``calcium_shadow_gap_mm +
    2 * calcium_shadow_len_mm`` beyond the lumen border ``lumen`` (radial samples per bin).
    """
    p = ctx.params
    n_r = s3.shape[2]
    start = np.clip(np.rint(lumen + ctx.samples(p.calcium_shadow_gap_mm)).astype(np.intp),
                    0, n_r - 1)
    length = 2 * ctx.samples(p.calcium_shadow_len_mm)
    rr = np.arange(n_r)[None, None, :]
    end = np.minimum(start + length, ctx.valid_end[None, :])
    inside = (rr >= start[:, :, None]) & (rr < end[:, :, None])
    dark = (s3 < ctx.levels.dark) & inside
    count = inside.sum(axis=2)
    return np.asarray((count >= length // 2)
                      & (dark.sum(axis=2) >= p.calcium_dark_fraction * np.maximum(count, 1)))


def _partial_rows(calcium: B, edge: npt.NDArray[np.intp]
                  ) -> tuple[npt.NDArray[np.intp], B, F64]:
    """Frames with some but not all rays calcified, their masks, and the calcium surface.

    The surface is the leading-edge radius interpolated across the rays without calcium.
    """
    rows = np.flatnonzero(calcium.any(axis=1) & ~calcium.all(axis=1))
    cal = calcium[rows]
    return rows, cal, interpolate_hidden(edge[rows].astype(np.float64), ~cal)


def join_fragments(calcium: B, edge: npt.NDArray[np.intp], shadowed: B, ctx: Context
                   ) -> tuple[B, npt.NDArray[np.intp]]:
    """One arc for fragments of a leading edge that share one continuous shadow.

    Real leading edges are fragmented (bright blobs with gaps of a few degrees) while the
    shadow behind them is continuous: gaps of at most ``calcium_fragment_gap_deg`` between
    fragments at least ``calcium_fragment_min_deg`` wide, lying entirely in shadow, become
    calcium with the leading edge interpolated from the fragments on either side.
    """
    max_gap = _bins(ctx.params.calcium_fragment_gap_deg)
    if max_gap <= 0 or not calcium.any():
        return calcium, edge
    # Single-ray candidates are speckle (e.g. inside attenuated plaque), not fragments.
    pieces = _wide(calcium, ctx.params.calcium_fragment_min_deg)
    joined = fill_circular_gaps_rows(pieces, max_gap, shadowed) | calcium
    new = joined & ~calcium
    if not new.any():
        return calcium, edge
    filled = interpolate_hidden(edge.astype(np.float64), ~calcium)
    return joined, np.where(new, np.rint(filled).astype(np.intp), edge)


def join_dim_edges(calcium: B, edge: npt.NDArray[np.intp], s_edge: F32, ctx: Context,
                   gain: F64 | None = None) -> tuple[B, npt.NDArray[np.intp]]:
    """Shadowed stretches between calcium whose leading edge is dimmer than the bright level.

    Within one calcified ring the leading edge can fall below the bright level over tens of
    degrees (oblique incidence, drop-out) while the shadow behind it stays continuous. A gap
    of at most ``calcium_dim_gap_deg`` between calcium pieces at least ``calcium_min_arc_deg``
    wide is calcium when every ray of it
    has, within 0.3 mm of the calcium surface interpolated across the gap, an edge at least
    as bright as the plaque level followed by a shadow (:func:`shadowed_rays` from that
    edge); its leading edge is that brightest sample. Gaps of at most
    ``calcium_edge_gap_deg`` whose edge there reaches the bright level need no shadow test.
    """
    p = ctx.params
    max_gap = _bins(p.calcium_dim_gap_deg)
    rows, cal, surf = _partial_rows(calcium, edge)
    if max_gap <= 0 or rows.size == 0:
        return calcium, edge
    s = s_edge[rows]
    dim_edge, level = _edge_near(s, surf, ctx, 0.3)
    allowed = (level >= ctx.levels.plaque) & shadowed_rays(s, dim_edge.astype(np.float64), ctx)
    # Anchors are calcium pieces of at least the minimum arc, not speckle candidates.
    anchors = _wide(cal, p.calcium_min_arc_deg)
    joined = fill_circular_gaps_rows(anchors, max_gap, allowed) | cal
    # A leading edge that stays saturated across a narrow gap is the same calcium, whatever
    # a reverberation blob does to the shadow test of those few rays.
    narrow = _bins(p.calcium_edge_gap_deg)
    if narrow > 0:
        bright = bright_levels(ctx, calcium.shape[0], gain)[rows, :, 0]
        joined |= fill_circular_gaps_rows(anchors, narrow, level >= bright)
    new = joined & ~cal
    out_c = calcium.copy()
    out_e = edge.copy()
    out_c[rows] = joined
    out_e[rows] = np.where(new, dim_edge, edge[rows])
    return out_c, out_e


def extend_arc_ends(calcium: B, edge: npt.NDArray[np.intp], s_edge: F32, wire: B,
                    ctx: Context) -> tuple[B, npt.NDArray[np.intp]]:
    """Continue calcium arcs at their ends where the shadow weakens but persists.

    A deposit thins towards the ends of its arc and casts a weaker, more permeable shadow
    there than in its middle, while its leading edge stays a continuous surface. From each
    end a calcium arc grows, one ray at a time and over at most
    ``calcium_end_extension_deg``, into rays that have, within 0.15 mm of the calcium
    surface interpolated across the gap, an edge at least as bright as the plaque level,
    and whose mean signal 0.2-1.2 mm behind that edge is below
    ``calcium_end_shadow_ratio`` times the mean of the frame's rays without calcium or
    guidewire at the same radii (a relative shadow, as real shadows keep 11-31 %
    of the neighbouring signal). Only arcs at least ``calcium_min_arc_deg`` wide grow (not
    speckle candidates), and only into runs of such rays at least ``calcium_end_min_deg``
    wide (one or two rays beyond a sharp end are the blur of that end). The leading edge of
    an added ray is the interpolated calcium surface (a smooth continuation: no bulge for the
    nodule rule). The guidewire is never calcium.
    """
    p = ctx.params
    steps = _bins(p.calcium_end_extension_deg)
    rows, cal, surf = _partial_rows(calcium, edge)
    if steps <= 0 or rows.size == 0:
        return calcium, edge
    s = s_edge[rows]
    n_r = s.shape[2]
    # Reference: the mean of the rays without calcium or guidewire at each radius; a frame
    # with too few of them (a nearly circumferential ring) takes the mean reference of the
    # frames of the batch that have enough.
    ref_rays = ~(cal | wire[rows])
    enough = ref_rays.sum(axis=1) >= max(1, cal.shape[1] // 8)
    w = (ref_rays & enough[:, None]).astype(np.float32)
    ref = np.matmul(w[:, None, :], s)[:, 0, :] / np.maximum(w.sum(axis=1), 1.0)[:, None]
    usable = enough.copy()
    if enough.any() and not enough.all():
        ref[~enough] = ref[enough].mean(axis=0)
        usable[:] = True
    # Only the rays within reach of an arc end are candidates.
    fi, ai = np.nonzero(circular_dilate(cal, steps) & ~cal & ~wire[rows] & usable[:, None])
    allowed = np.zeros_like(cal)
    if fi.size:
        ray = s[fi, ai]  # (K, R)
        cand, level = _edge_near(ray, surf[fi, ai], ctx, 0.15)
        start = np.minimum(cand + ctx.samples(0.2), n_r - 1)
        stop = np.minimum(np.minimum(cand + ctx.samples(1.2), ctx.valid_end[ai]), n_r - 1)
        stop = np.maximum(stop, start + 1)
        cs = np.zeros((fi.size, n_r + 1), dtype=np.float32)
        np.cumsum(ray, axis=1, out=cs[:, 1:])
        k = np.arange(fi.size)
        behind = (cs[k, stop] - cs[k, start]) / (stop - start)
        cr = np.zeros((ref.shape[0], n_r + 1), dtype=np.float32)
        np.cumsum(ref, axis=1, out=cr[:, 1:])
        ref_mean = (cr[fi, stop] - cr[fi, start]) / (stop - start)
        allowed[fi, ai] = ((level >= ctx.levels.plaque)
                           & (behind < p.calcium_end_shadow_ratio * ref_mean))
    # A thinning deposit continues over several degrees: one or two rays beyond a sharp end
    # are the blur of that end, not a thin end.
    allowed = _wide(allowed, p.calcium_end_min_deg)
    # Arcs grow from calcium pieces of at least the minimum arc, not from speckle candidates.
    grown = _wide(cal, p.calcium_min_arc_deg)
    for _ in range(steps):
        nxt = grown | (circular_dilate(grown, 1) & allowed)
        if np.array_equal(nxt, grown):
            break
        grown = nxt
    grown |= cal
    new = grown & ~cal
    out_c = calcium.copy()
    out_e = edge.copy()
    out_c[rows] = grown
    out_e[rows] = np.where(new, np.rint(surf).astype(np.intp), edge[rows])
    return out_c, out_e


def lumen_cost(s: F32, ctx: Context, ignore: B, stop: npt.NDArray[np.intp],
               valid_end: npt.NDArray[np.intp], blood_q: F32 | None = None,
               weight: float = 0.0) -> F32:
    """Region cost of the lumen border on angle nodes (``s`` already decimated).

    ``ignore`` rays carry no cost; on each ray everything from ``stop`` (a calcium leading
    edge) onwards counts as tissue, and nothing beyond the field of view counts.
    ``blood_q`` (decorrelation evidence, :func:`.speckle.blood_likeness`) is blended in
    with ``weight`` where blood and plaque have nearly the same grey level.
    """
    lv = ctx.levels
    t = 0.5 * (lv.blood + lv.plaque)
    half = max(0.5 * (lv.plaque - lv.blood), 4.0)
    q = np.subtract(s, t, dtype=np.float32)
    q /= np.float32(half)
    np.clip(q, -1.0, 1.0, out=q)
    if blood_q is not None and weight > 0.0:
        q *= np.float32(1.0 - weight)
        q += np.float32(weight) * blood_q
    q[:, :, : ctx.r0] = 0.0
    n_r = s.shape[2]
    rr = np.arange(n_r)
    f_idx, a_idx = np.nonzero(stop < n_r)  # calcium rays: tissue from the leading edge on
    if f_idx.size:
        q[f_idx, a_idx] = np.where(rr[None, :] >= stop[f_idx, a_idx][:, None], np.float32(1.0),
                                   q[f_idx, a_idx])
    q *= rr[None, None, :] < valid_end[None, :, None]
    q[ignore] = 0.0
    cost = region_cost(q, ctx.samples(0.25))
    cost[:, :, : ctx.r0 + 1] = np.float32(1e6)
    return cost


def pass1_lumen(sd: F32, shadow: B, ctx: Context, blood_q: F32 | None = None,
                weight: float = 0.0) -> F64:
    """Lumen border ignoring every shadow ray (interpolated there by the path).

    Only used to tell the guidewire from calcium, so it runs on coarser 4-degree nodes.
    """
    step = 2 * DP_ANGLE_STEP
    s4 = decimate_angles(sd, 2)
    n, n_d, n_r = s4.shape
    full = np.full((n, n_d), n_r, dtype=np.intp)
    ign = np.asarray(shadow.reshape(n, n_d, step).any(axis=2), dtype=np.bool_)
    ve = ctx.valid_end.reshape(n_d, step).min(axis=1)
    bq = None if blood_q is None else decimate_angles(blood_q, 2)
    cost = lumen_cost(s4, ctx, ign, full, ve, bq, weight)
    jump = max(1, round(ctx.params.lumen_smoothness_mm * step / ctx.step_mm))
    path = dp_circular(cost, jump).astype(np.float64)
    return upsample_path(path, step, n_d * step)


def _dec_or(mask: B) -> B:
    return np.asarray(mask[:, 0::DP_ANGLE_STEP] | mask[:, DP_ANGLE_STEP - 1 :: DP_ANGLE_STEP])


def _dec_min(x: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    return np.minimum(x[..., 0::DP_ANGLE_STEP], x[..., DP_ANGLE_STEP - 1 :: DP_ANGLE_STEP])


def dp_border(cost: F32, max_jump_mm: float, ctx: Context, decimated: bool = False,
              coarsen: int = 1) -> F64:
    """Return the closed minimum-cost border (radial samples per angle bin).

    The path runs on nodes of ``DP_ANGLE_STEP * coarsen`` bins (``cost`` given on nodes of
    ``DP_ANGLE_STEP`` bins when ``decimated``) and is interpolated back to every bin.
    """
    c = cost if decimated else decimate_angles(cost, DP_ANGLE_STEP)
    n_bins = c.shape[1] * DP_ANGLE_STEP
    if coarsen > 1 and c.shape[1] % coarsen == 0:
        c = decimate_angles(c, coarsen)
    else:
        coarsen = 1
    step = DP_ANGLE_STEP * coarsen
    jump = max(1, round(max_jump_mm * step / ctx.step_mm))
    path = dp_circular(c, jump).astype(np.float64)
    return upsample_path(path, step, n_bins)


def guide_catheter(s3: F32, shadow: B, ctx: Context) -> B:
    """Frames with the transducer inside the guide catheter.

    Inside the guide catheter the transducer sees a thin ring, brighter than the plaque level,
    concentric with itself: at one radius (within ``guide_ring_tolerance_mm``) on
    ``guide_ring_fraction`` of the angles, often with a shadow behind it. Calcium is not
    concentric with the transducer to that precision.
    """
    r0 = min(ctx.r0 + ctx.samples(0.15), s3.shape[2] - 2)  # beyond the ring-down tail
    hi = min(s3.shape[2], ctx.r0 + ctx.samples(ctx.params.guide_ring_depth_mm))
    seg = s3[:, :, r0 : max(hi, r0 + 1)]
    pk = seg.argmax(axis=2)
    bright = np.take_along_axis(seg, pk[:, :, None], axis=2)[:, :, 0] >= ctx.levels.plaque
    med = np.median(pk, axis=1)
    tol = ctx.samples(ctx.params.guide_ring_tolerance_mm)
    # A ring rises and falls: a peak at either end of the window is a tail, not a ring.
    interior = (pk > 0) & (pk < seg.shape[2] - 1)
    ring = bright & interior & (np.abs(pk - med[:, None]) <= tol)
    return np.asarray(ring.mean(axis=1) >= ctx.params.guide_ring_fraction)


def wire_candidates(polar: F32, ctx: Context) -> tuple[B, F64]:
    """Candidate guidewire rays of frames and their inward depth (crude lumen)."""
    s3 = smooth(polar, 3, 3)
    shadow, edge = find_shadows(s3, ctx)
    sd = smooth(decimate_angles(polar, DP_ANGLE_STEP), 3, 5)
    l1 = pass1_lumen(sd, shadow, ctx)
    return (inner_reflectors(shadow, edge, l1, ctx, WIRE_TRACK_TOL_MM),
            inward_depth(shadow, edge, l1))


def detect_chunk(polar: F32, averaged: F32, ctx: Context,
                 track: F64 | None = None, decorrelation: F32 | None = None,
                 gain: F64 | None = None) -> ChunkResult:
    """Run the polar detections on a batch of frames (see module docstring).

    ``polar`` are the frames themselves (calcium is strong and changes quickly along the
    pullback); ``averaged`` the same frames averaged with their neighbours (less speckle for
    the lumen and EEM borders); ``gain`` the per-frame gain correction already applied.
    """
    p = ctx.params
    n, _, n_r = polar.shape
    s_edge = box_angle(polar, 3)
    s3 = s_edge  # the shadow test averages along the ray itself
    sd = smooth(decimate_angles(averaged, DP_ANGLE_STEP), 3, 5)
    ve_d = _dec_min(ctx.valid_end)
    (shadow, edge), (deep, edge_d) = find_shadow_pair(s3, ctx, s_edge, gain)
    lv = ctx.levels
    blood_q, weight = blood_likeness(decorrelation, sd, ctx.r0, ctx.step_mm, lv.blood,
                                     lv.plaque)
    # Pass 1: lumen with every shadow ray ignored; then guidewire vs calcium.
    l1 = pass1_lumen(sd, shadow, ctx, blood_q, weight)
    wire = circular_dilate(classify_wire(shadow, edge, l1, ctx, track) | dark_rays(s3, ctx), 2)
    calc_rays = shadow & ~wire
    # Permeable shadows with reverberations just behind the edge: a ray whose shadow holds
    # over a longer window continues a calcium arc found by the strict test (hysteresis).
    anchors = _wide(calc_rays, p.calcium_min_arc_deg)
    # Single rays of a ragged shadow may fail (a reverberation streak): gaps of a few
    # degrees between passing rays do not stop the growth.
    gap = _bins(p.calcium_deep_gap_deg)
    weak = fill_circular_gaps_rows(deep & ~wire, gap) & ~wire
    # The pullback as a volume: a weak ray where a frame within ``calcium_anchor_frames`` has
    # strict calcium at the same angle is an anchor too.
    near_frames = np.zeros_like(anchors)
    for k in range(1, p.calcium_anchor_frames + 1):
        near_frames[k:] |= anchors[:-k]
        near_frames[:-k] |= anchors[k:]
    grown = grow_runs_rows(anchors | (near_frames & weak), weak)
    edge = np.where(grown & ~calc_rays, edge_d, edge)
    calc_rays = calc_rays | grown
    shadowed = shadowed_rays(s3, l1, ctx) & ~wire
    calc_rays, edge = join_fragments(calc_rays, edge, shadowed, ctx)
    calc_rays, edge = join_dim_edges(calc_rays, edge, s_edge, ctx, gain)
    calc_rays, edge = extend_arc_ends(calc_rays, edge, s_edge, wire, ctx)
    # The wire's reflection spreads over ~+-15 degrees: no lumen evidence there.
    halo = circular_dilate(wire, p.wire_halo_deg)
    # Lumen: calcium rays count up to their leading edge; wire rays are ignored.
    stop = np.where(calc_rays, edge, n_r)
    cost_l = lumen_cost(sd, ctx, _dec_or(halo), _dec_min(stop), ve_d, blood_q, weight)
    lum = dp_border(cost_l, p.lumen_smoothness_mm, ctx, decimated=True)
    # Side branches / wire: outward outliers replaced by a robust smooth fit.
    fit = robust_fourier_fit(lum, ~halo, order=4)
    out_tol = p.lumen_outlier_mm / ctx.step_mm
    opening = (lum - fit > p.side_branch_excursion_mm / ctx.step_mm) & ~calc_rays & ~halo
    min_arc = int(np.ceil(p.side_branch_min_arc_deg * ANGLE_BINS / 360.0))
    branch = np.asarray([longest_circular_run(o) >= min_arc for o in opening], dtype=np.bool_)
    lum = np.where(((lum > fit + out_tol) & ~calc_rays) | halo, fit, lum)
    # A leading edge within the wall is wall calcium; a reflector far behind the lumen is not.
    calc_rays = calc_rays & (edge - lum <= p.max_wall_mm / ctx.step_mm)
    # A leading edge is one continuous surface: a ray whose edge lies far behind the smooth
    # surface of the frame's calcium found a deeper reflector (adventitia, perivascular).
    if calc_rays.any():
        surf = robust_fourier_fit(edge.astype(np.float64), calc_rays, order=4)
        calc_rays = calc_rays & (edge <= surf + p.calcium_surface_jump_mm / ctx.step_mm)
    lum = np.where(calc_rays, np.minimum(lum, edge.astype(np.float64)), lum)
    # Calcium hugging the lumen (real exports: usually no plaque layer in front of it): the
    # lumen border lies on the leading edge when the gap is within the border's uncertainty.
    hug = calc_rays & (edge - lum <= p.lumen_hug_calcium_mm / ctx.step_mm)
    lum = np.where(hug, edge.astype(np.float64), lum)
    # EEM: media -> adventitia rise beyond the lumen (on angle nodes).
    h = ctx.samples(0.05)
    grad = np.zeros_like(sd)
    grad[:, :, h:-h] = sd[:, :, 2 * h :] - sd[:, :, : -2 * h]
    rr = np.arange(n_r)[None, None, :]
    lum_d = 0.5 * (lum[:, 0::DP_ANGLE_STEP] + lum[:, DP_ANGLE_STEP - 1 :: DP_ANGLE_STEP])
    lo = lum_d[:, :, None] + p.min_plaque_mm / ctx.step_mm
    hi = np.minimum(lum_d[:, :, None] + p.max_wall_mm / ctx.step_mm,
                    ve_d[None, :, None] - h - 1)
    window = (rr >= lo) & (rr <= hi)
    g = np.where(window, grad, 0.0).astype(np.float32)
    gmax = g.max(axis=2)
    # Shadows of both neighbouring frames count too (a frame may have lost its echo).
    both = np.zeros_like(shadow)
    if n >= 3:
        both[1:-1] = shadow[:-2] & shadow[2:]
    weak = np.repeat(gmax < p.eem_weak_gradient * ctx.levels.plaque, DP_ANGLE_STEP, axis=1)
    hidden = shadow | both | halo | weak
    hid_d = _dec_or(hidden)
    g[hid_d] = 0.0
    cost = -g / np.float32(ctx.levels.plaque)
    cost[~window] = np.float32(5.0)
    cost[hid_d] = np.where(window[hid_d], 0.0, 5.0).astype(np.float32)
    eem = dp_border(cost, p.eem_smoothness_mm, ctx, decimated=True, coarsen=2)
    # After log compression the steepest point of a blurred dark-to-bright step lies about
    # one blur width (sigma) on its dark side: the border is moved out by that much.
    eem = eem + p.eem_edge_offset_mm / ctx.step_mm
    # Hidden EEM: interpolate the wall thickness over the smooth lumen contour, so the
    # eccentricity of the catheter in the lumen is kept.
    lum_smooth = robust_fourier_fit(lum, ~halo, order=3)
    lum_smooth = np.where(wire | calc_rays, lum_smooth, lum)
    eem = lum_smooth + interpolate_hidden(eem - lum_smooth, hidden)
    eem = np.maximum(eem, lum + p.min_plaque_mm / ctx.step_mm)
    # Calcium lies within the vessel wall: a bright reflector with a shadow beyond the EEM
    # (interpolated there from the visible EEM around it) is perivascular tissue.
    # Only where enough of the EEM is visible for that interpolation to be trusted.
    trusted = ((shadow | both).mean(axis=1) < 0.5)[:, None]
    calc_rays = calc_rays & ~(trusted & (edge > eem + p.calcium_beyond_eem_mm / ctx.step_mm))
    # Never on or inside the calcium: the EEM lies behind the leading edge and its shadow.
    behind = edge + p.eem_behind_calcium_mm / ctx.step_mm
    eem = np.where(calc_rays, np.maximum(eem, behind), eem)
    return ChunkResult(lumen=lum, eem=eem, eem_hidden=hidden, edge=edge.astype(np.float64),
                       calcium=calc_rays, wire=wire, shadow=shadow, lumen_smooth=lum_smooth,
                       guide=guide_catheter(s3, shadow, ctx), branch=branch,
                       ring=ring_radius(polar, ctx), extent=echo_extent(polar, ctx))
