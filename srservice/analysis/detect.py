"""Per-frame detection in polar images: shadows, guidewire, lumen, EEM, calcium A-lines.

All functions work on a batch of gain-normalised polar frames ``(n, ANGLE_BINS, R)`` about
the catheter centre. Rules (IVUS consensus, Mintz et al. JACC 2001;37:1478; calcium-scores.md):

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
from scipy import ndimage

from srservice.analysis.borders import (
    decimate_angles,
    dp_circular,
    interpolate_hidden,
    region_cost,
    robust_fourier_fit,
    upsample_path,
)
from srservice.analysis.geometry import circular_runs
from srservice.analysis.params import AnalysisParameters

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

#: Reflectors this far inside the vessel surface are guidewire candidates near the wire track.
WIRE_TRACK_TOL_MM = 0.05

#: Angle bins per node of the border search (borders are smooth; 2 degrees per node).
DP_ANGLE_STEP = 2


@dataclass(frozen=True)
class Levels:
    """Pullback-level grey levels (after gain normalisation)."""

    blood: float
    plaque: float
    bright: float
    dark: float


@dataclass(frozen=True)
class Context:
    """Per-pullback constants of the polar analysis."""

    r0: int
    step_mm: float
    valid_end: npt.NDArray[np.intp]
    levels: Levels
    params: AnalysisParameters

    def samples(self, mm: float) -> int:
        """Return the number of radial samples in ``mm`` (at least 1)."""
        return max(1, round(mm / self.step_mm))


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


def smooth(polar: F32, size_a: int, size_r: int) -> F32:
    """Box smoothing over angle (circular) and radius within each frame."""
    out = ndimage.uniform_filter1d(polar, size_a, axis=1, mode="wrap")
    ndimage.uniform_filter1d(out, size_r, axis=2, mode="nearest", output=out)
    return np.asarray(out, dtype=np.float32)


def estimate_levels(polar: F32, r0: int, step_mm: float, params: AnalysisParameters) -> Levels:
    """Blood, plaque, bright and dark grey levels of the pullback from a sample of frames."""
    s = smooth(polar, 5, 5)
    n_blood = max(2, int(0.15 / step_mm))
    g0 = r0 + max(1, int(0.05 / step_mm))
    blood = float(np.median(s[:, :, g0 : g0 + n_blood]))
    r_end = min(s.shape[2], r0 + int(2.5 / step_mm))
    plaque = float(np.percentile(s[:, :, r0:r_end], 75))
    plaque = max(plaque, blood + 10.0)
    bright = min(params.calcium_bright_factor * plaque, 0.85 * float(np.percentile(s, 99.9)))
    bright = max(bright, plaque + 30.0)
    return Levels(blood=blood, plaque=plaque, bright=bright,
                  dark=params.calcium_shadow_ratio * plaque)


def find_shadows(s3: F32, ctx: Context, s_edge: F32 | None = None
                 ) -> tuple[B, npt.NDArray[np.intp]]:
    """Rays with a bright reflector followed by an acoustic shadow; first such reflector.

    The shadow window starts ``calcium_shadow_gap_mm`` behind the reflector (skipping the
    edge itself) and is ``calcium_shadow_len_mm`` long, truncated at the field of view; at
    least 70 % of its samples must be darker than the shadow level (reverberation bands
    are tolerated). Returns ``(shadow, edge)`` with ``edge`` the radial index of the leading
    edge (0 where there is no shadow).
    """
    n_r = s3.shape[2]
    p = ctx.params
    gap = ctx.samples(p.calcium_shadow_gap_mm)
    length = ctx.samples(p.calcium_shadow_len_mm)
    rr = np.arange(n_r)
    in_fov = rr[None, :] < ctx.valid_end[:, None]
    dark = (s3 < ctx.levels.dark) & in_fov[None]
    # Window sums along the ray: a running sum (one pass) instead of a cumulative sum.
    win = ndimage.uniform_filter1d(dark.astype(np.float32), length, axis=2, mode="constant",
                                   origin=-(length // 2)) * np.float32(length)
    dark_count = np.zeros_like(win)
    dark_count[:, :, : n_r - gap] = win[:, :, gap:]
    count = np.clip(ctx.valid_end[:, None] - (rr[None, :] + gap), 0, length)
    enough = count >= max(3, length // 2)
    need = (0.7 * np.maximum(count, 1)).astype(np.float32)
    peak = s3 if s_edge is None else s_edge
    cand = (peak >= ctx.levels.bright) & (dark_count >= need[None]) & enough[None]
    cand[:, :, : ctx.r0 + 1] = False
    has = cand.any(axis=2)
    edge = np.argmax(cand, axis=2)
    return has, np.where(has, edge, 0)


def lumen_cost(s: F32, ctx: Context, ignore: B, stop: npt.NDArray[np.intp],
               valid_end: npt.NDArray[np.intp]) -> F32:
    """Region cost of the lumen border on angle nodes (``s`` already decimated).

    ``ignore`` rays carry no cost; on each ray everything from ``stop`` (a calcium leading
    edge) onwards counts as tissue, and nothing beyond the field of view counts.
    """
    lv = ctx.levels
    t = 0.5 * (lv.blood + lv.plaque)
    half = max(0.5 * (lv.plaque - lv.blood), 4.0)
    q = np.clip((s - t) / half, -1.0, 1.0).astype(np.float32)
    q[:, :, : ctx.r0] = 0.0
    n_r = s.shape[2]
    rr = np.arange(n_r)[None, None, :]
    q[rr >= stop[:, :, None]] = 1.0
    q *= rr < valid_end[None, :, None]
    q[ignore] = 0.0
    cost = region_cost(q, ctx.samples(0.25))
    cost[:, :, : ctx.r0 + 1] = np.float32(1e6)
    return cost


def pass1_lumen(sd: F32, shadow: B, ctx: Context) -> F64:
    """Lumen border ignoring every shadow ray (interpolated there by the path)."""
    n, n_d, n_r = sd.shape
    full = np.full((n, n_d), n_r, dtype=np.intp)
    cost = lumen_cost(sd, ctx, _dec_or(shadow), full, _dec_min(ctx.valid_end))
    return dp_border(cost, ctx.params.lumen_smoothness_mm, ctx, decimated=True, coarsen=2)


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
    track, candidate runs no wider than ``guidewire_max_gap_deg`` are the wire unless their
    leading edge continues smoothly into the calcium on both sides (a nodule).
    """
    depth = inward_depth(shadow, edge, lumen)
    inner = shadow & (depth > ctx.params.lumen_edge_tolerance_mm / ctx.step_mm)
    loose = shadow & (depth > WIRE_TRACK_TOL_MM / ctx.step_mm)
    wire = np.zeros_like(shadow)
    max_w = int(ctx.params.guidewire_max_gap_deg)
    n_a = shadow.shape[1]
    jump = ctx.samples(0.1)
    bins = np.arange(n_a)
    for i in range(shadow.shape[0]):
        t = np.nan if track is None else float(track[i])
        if not np.isnan(t):
            near = np.abs((bins - t + n_a / 2) % n_a - n_a / 2) <= 25
            runs = circular_runs(loose[i] & near)
            for start, length in runs:
                wire[i, (start + np.arange(length)) % n_a] = True
            continue
        for start, length in circular_runs(inner[i]):
            if length > max_w:
                continue
            idx = (start + np.arange(length)) % n_a
            left, right = (start - 1) % n_a, (start + length) % n_a
            smooth_l = shadow[i, left] and abs(edge[i, left] - edge[i, idx[0]]) <= jump
            smooth_r = shadow[i, right] and abs(edge[i, right] - edge[i, idx[-1]]) <= jump
            if not (smooth_l and smooth_r):
                wire[i, idx] = True
    return wire


def guide_catheter(s3: F32, shadow: B, ctx: Context) -> B:
    """Frames with the transducer inside the guide catheter.

    Inside the guide catheter the transducer sees a thin bright ring concentric with itself
    and no vessel behind it (no acoustic shadow either, which tells it from circumferential
    calcium).
    """
    r0 = ctx.r0
    hi = min(s3.shape[2], r0 + ctx.samples(1.3))
    seg = s3[:, :, r0:hi]
    pk = seg.argmax(axis=2)
    bright = seg.max(axis=2) >= ctx.levels.bright
    med = np.median(pk, axis=1)
    ring = bright & (np.abs(pk - med[:, None]) <= ctx.samples(0.05))
    return np.asarray((ring.mean(axis=1) >= 0.8) & (shadow.mean(axis=1) < 0.5))


def circular_dilate(mask: B, k: int) -> B:
    """Dilate ``(n, A)`` angular masks by ``k`` bins each side, wrapping at 360 degrees."""
    out = mask.copy()
    for d in range(1, k + 1):
        out |= np.roll(mask, d, axis=1) | np.roll(mask, -d, axis=1)
    return out


def dark_rays(s3: F32, ctx: Context) -> B:
    """Rays dark from the catheter to the edge of the field of view.

    A shadow that starts at the catheter (guidewire whose reflection is not visible, or the
    part of a guidewire shadow beside its bright spot) hides lumen and wall alike; such rays
    carry no border information and are never calcium (no leading edge).
    """
    n_r = s3.shape[2]
    start = min(ctx.r0 + ctx.samples(0.1), n_r - 1)
    rr = np.arange(n_r)[None, None, :]
    inside = (rr >= start) & (rr < ctx.valid_end[None, :, None])
    dark = (s3 < ctx.levels.dark) & inside
    count = np.maximum(inside.sum(axis=2), 1)
    return np.asarray(dark.sum(axis=2) / count >= 0.9)


def wire_candidates(polar: F32, ctx: Context) -> tuple[B, F64]:
    """Candidate guidewire rays of frames and their inward depth (crude lumen)."""
    s3 = smooth(polar, 3, 3)
    shadow, edge = find_shadows(s3, ctx)
    sd = smooth(decimate_angles(polar, DP_ANGLE_STEP), 3, 5)
    l1 = pass1_lumen(sd, shadow, ctx)
    return (inner_reflectors(shadow, edge, l1, ctx, WIRE_TRACK_TOL_MM),
            inward_depth(shadow, edge, l1))


def detect_chunk(polar: F32, averaged: F32, ctx: Context,
                 track: F64 | None = None) -> ChunkResult:
    """Run the polar detections on a batch of frames (see module docstring).

    ``polar`` are the frames themselves (calcium is strong and changes quickly along the
    pullback); ``averaged`` the same frames averaged with their neighbours (less speckle for
    the lumen and EEM borders).
    """
    p = ctx.params
    n, _, n_r = polar.shape
    s_edge = np.asarray(ndimage.uniform_filter1d(polar, 3, axis=1, mode="wrap"),
                        dtype=np.float32)
    s3 = np.asarray(ndimage.uniform_filter1d(s_edge, 3, axis=2, mode="nearest"),
                    dtype=np.float32)
    sd = smooth(decimate_angles(averaged, DP_ANGLE_STEP), 3, 5)
    ve_d = _dec_min(ctx.valid_end)
    shadow, edge = find_shadows(s3, ctx, s_edge)
    # Pass 1: lumen with every shadow ray ignored; then guidewire vs calcium.
    l1 = pass1_lumen(sd, shadow, ctx)
    wire = circular_dilate(classify_wire(shadow, edge, l1, ctx, track) | dark_rays(s3, ctx), 2)
    calc_rays = shadow & ~wire
    # The wire's reflection spreads over ~+-15 degrees: no lumen evidence there.
    halo = circular_dilate(wire, 12)
    # Lumen: calcium rays count up to their leading edge; wire rays are ignored.
    stop = np.where(calc_rays, edge, n_r)
    cost_l = lumen_cost(sd, ctx, _dec_or(halo), _dec_min(stop), ve_d)
    lum = dp_border(cost_l, p.lumen_smoothness_mm, ctx, decimated=True)
    # Side branches / wire: outward outliers replaced by a robust smooth fit.
    fit = robust_fourier_fit(lum, ~halo, order=4)
    out_tol = 0.2 / ctx.step_mm
    lum = np.where(((lum > fit + out_tol) & ~calc_rays) | halo, fit, lum)
    lum = np.where(calc_rays, np.minimum(lum, edge.astype(np.float64)), lum)
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
    weak = np.repeat(gmax < 0.3 * ctx.levels.plaque, DP_ANGLE_STEP, axis=1)
    hidden = shadow | both | halo | weak
    hid_d = _dec_or(hidden)
    g[hid_d] = 0.0
    cost = -g / np.float32(ctx.levels.plaque)
    cost[~window] = np.float32(5.0)
    cost[hid_d] = np.where(window[hid_d], 0.0, 5.0).astype(np.float32)
    eem = dp_border(cost, p.eem_smoothness_mm, ctx, decimated=True, coarsen=2)
    # Hidden EEM: interpolate the wall thickness over the smooth lumen contour, so the
    # eccentricity of the catheter in the lumen is kept.
    lum_smooth = robust_fourier_fit(lum, ~halo, order=3)
    lum_smooth = np.where(wire | calc_rays, lum_smooth, lum)
    eem = lum_smooth + interpolate_hidden(eem - lum_smooth, hidden)
    eem = np.maximum(eem, lum + p.min_plaque_mm / ctx.step_mm)
    return ChunkResult(lumen=lum, eem=eem, eem_hidden=hidden, edge=edge.astype(np.float64),
                       calcium=calc_rays, wire=wire, shadow=shadow, lumen_smooth=lum_smooth,
                       guide=guide_catheter(s3, shadow, ctx))
