"""Whole-pullback analysis: frames in, per-frame measurements and calcified lesions out.

Steps (each in its own module): overlay and catheter handling and polar resampling
(:mod:`.polar`), seam removal and gain normalisation (:mod:`.preprocess`), lumen, EEM and
calcium A-line detection (:mod:`.detect`), along-pullback smoothing and nodules
(:mod:`.volume`), geometry about the lumen centroid (:mod:`.geometry`) and lesion features
(:mod:`.features`). Frames are processed in chunks so memory stays bounded: the decoded
pixels plus a few chunks of polar data.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from srservice.analysis import detect, polar, preprocess, quality, speckle, volume
from srservice.analysis.borders import decimate_angles
from srservice.analysis.context import Context
from srservice.analysis.features import find_lesions
from srservice.analysis.frames import FrameBuilder, blank_or_saturated
from srservice.analysis.params import AnalysisParameters
from srservice.analysis.types import (
    ANGLE_BINS,
    FrameMeasurement,
    LesionFeatures,
    Pullback,
    PullbackAnalysis,
)
from srservice.analysis.wire import wire_track
from srservice.errors import NotAssessableError

#: Frames per processing chunk.
CHUNK = 64


def _validate(pullback: Pullback) -> npt.NDArray[np.uint8]:
    frames = pullback.frames
    if not isinstance(frames, np.ndarray) or frames.ndim != 3:
        raise NotAssessableError("pullback frames must be a (frames, rows, columns) array")
    if frames.shape[0] < 1 or min(frames.shape[1:]) < 32:
        raise NotAssessableError(
            f"pullback too small to analyse: {frames.shape[0]} frames of "
            f"{frames.shape[1]}x{frames.shape[2]} pixels")
    if frames.dtype != np.uint8:
        raise NotAssessableError(f"pullback frames must be uint8, not {frames.dtype}")
    return frames


def analyze_pullback(pullback: Pullback, params: AnalysisParameters | None = None
                     ) -> PullbackAnalysis:
    """Measure every frame of an IVUS pullback and find its calcified lesions.

    Parameters
    ----------
    pullback : Pullback
        Decoded greyscale frames with their spacings (:mod:`srservice.analysis.types`).
    params : AnalysisParameters, optional
        Thresholds; defaults when omitted.

    Returns
    -------
    PullbackAnalysis
        Per-frame measurements (1-based frames), lesions and the reasons why measurements
        are missing.

    Raises
    ------
    srservice.errors.NotAssessableError
        The pixel array cannot be analysed at all (wrong shape or type, too small).
    """
    p = params or AnalysisParameters()
    frames = _validate(pullback)
    n = frames.shape[0]
    reasons: list[str] = list(pullback.notes)
    ps = pullback.pixel_spacing_mm
    # The loader already says why a spacing is missing; add the consequence only once.
    if ps is None and not any(r.startswith("pixel spacing unknown") for r in reasons):
        reasons.append("pixel spacing unknown: areas, diameters and depths not assessable")
    if pullback.frame_spacing_mm is None and not any(
        r.startswith("frame spacing unknown") for r in reasons
    ):
        reasons.append("frame spacing unknown: lesion lengths not assessable")
    ps_proc = ps if ps is not None and ps > 0 else p.fallback_pixel_spacing_mm
    step_px = p.radial_step_mm / ps_proc
    samples = polar.sample_frames(frames, p.overlay_samples)
    overlay = polar.overlay_mask(samples, p)
    center = pullback.catheter_center or polar.find_catheter_center(samples)
    grid = polar.make_grid(frames.shape[1:], center, step_px, p.max_radius_mm / ps_proc,
                           overlay)
    pol_s = grid.to_polar(samples)
    r0 = preprocess.catheter_radius_samples(pol_s, p.radial_step_mm, p)
    valid_end = _valid_end(pol_s)
    n_keep = int(valid_end.max()) + 2
    grid = grid.truncated(n_keep)
    pol_s = np.ascontiguousarray(pol_s[:, :, : grid.n_radii])
    valid_end = np.minimum(valid_end, grid.n_radii)
    if int(valid_end.max()) < r0 + int(1.0 / p.radial_step_mm):
        fov = ("field of view smaller than 1 mm beyond the catheter at this pixel spacing: "
               "no frame assessable")
        reasons.append(fov)
        return _nothing_assessable(n, ps, pullback.frame_spacing_mm, grid.center, reasons, fov)
    gains = _gains(frames, grid, pol_s, r0, p)
    s_idx = np.linspace(0, n - 1, samples.shape[0]).round().astype(np.intp)
    pol_s *= gains[s_idx, None, None].astype(np.float32)
    preprocess.remove_seam(pol_s, r0, p)
    lv = detect.estimate_levels(pol_s, r0, p.radial_step_mm, p)
    ctx = Context(r0=r0, step_mm=p.radial_step_mm, valid_end=valid_end, levels=lv,
                         params=p)
    track = _wire_track(pol_s, ctx, s_idx, n)
    half_t = volume.half_window(pullback.frame_spacing_mm, p.temporal_half_window,
                                reach_mm=0.05, max_frames=p.temporal_half_window)
    builder = FrameBuilder(grid, ctx, ps, pullback.frame_spacing_mm)
    assess = np.ones(n, dtype=np.bool_)
    why = [""] * n
    ring = np.full(n, np.nan)
    extent = np.full(n, np.nan)
    guide = np.zeros(n, dtype=np.bool_)
    # The decorrelation cue (only without blood/plaque grey-level contrast) needs a
    # neighbour on each side.
    use_dec = speckle.contrast_weight(lv.blood, lv.plaque) > 0.0
    margin = max(half_t, 1) if use_dec else half_t
    for c0 in range(0, n, CHUNK):
        c1 = min(n, c0 + CHUNK)
        a0, a1 = max(0, c0 - margin), min(n, c1 + margin)
        pol = grid.to_polar(frames[a0:a1])
        blank, saturated = blank_or_saturated(pol, r0)  # before the gain correction
        pol *= gains[a0:a1, None, None].astype(np.float32)
        preprocess.remove_seam(pol, r0, p)
        noise = quality.speckle_structure(frames[a0:a1]) < p.min_structure
        bad = blank | saturated | noise
        for k in np.flatnonzero(bad):
            if assess[a0 + k]:
                why[a0 + k] = (quality.NO_ECHO if blank[k] else
                               quality.SATURATED if saturated[k] else quality.NO_SIGNAL)
        assess[a0:a1] &= ~bad
        own = slice(c0 - a0, c0 - a0 + (c1 - c0))
        avg = _temporal_mean(pol, ~bad, half_t)[own]
        dec = (speckle.decorrelation(decimate_angles(pol, detect.DP_ANGLE_STEP), ~bad, own)
               if use_dec else None)
        res = detect.detect_chunk(pol[own], avg, ctx, track[c0:c1], dec, gains[c0:c1])
        guide[c0:c1] = res.guide
        ring[c0:c1] = res.ring
        extent[c0:c1] = res.extent
        builder.add(c0, res)
    # A zoomed frame's ring-down can look like a guide catheter: the display depth first.
    ring[~assess] = np.nan
    extent[~assess] = np.nan
    for i in np.flatnonzero(quality.depth_changed(ring, extent, p.depth_change_tolerance)):
        assess[i], why[i] = False, quality.DEPTH_CHANGE
    for i in np.flatnonzero(guide & assess):
        assess[i], why[i] = False, quality.GUIDE_CATHETER
    measurements = builder.finish(assess, why)
    n_ok = sum(1 for m in measurements if m.assessable)
    pullback_reason = ""
    if n_ok < p.min_assessable_frames:
        pullback_reason = _too_few_reason(measurements, n_ok, p.min_assessable_frames)
        lesions: tuple[LesionFeatures, ...] = ()
    else:
        lesions = find_lesions(measurements, pullback.frame_spacing_mm, p)
    n_bad = len(measurements) - n_ok
    if n_bad:
        # The reports list the frames by reason (FrameMeasurement.reason); one line here.
        reasons.append(f"{n_bad} frame(s) not assessable (each frame says why)")
    return PullbackAnalysis(frame_count=n, pixel_spacing_mm=ps,
                            frame_spacing_mm=pullback.frame_spacing_mm,
                            frames=tuple(measurements), lesions=lesions,
                            not_assessable=tuple(reasons), reason=pullback_reason)


def _reason_counts(measurements: list[FrameMeasurement]) -> list[tuple[str, int]]:
    """Not-assessable reasons with their frame counts, most frequent first."""
    counts: dict[str, int] = {}
    for m in measurements:
        if not m.assessable:
            counts[m.reason] = counts.get(m.reason, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def _too_few_reason(measurements: list[FrameMeasurement], n_ok: int, needed: int) -> str:
    """Why a pullback with too few assessable frames cannot be scored."""
    head = ("no assessable frame" if n_ok == 0 else
            f"only {n_ok} assessable frame(s)")
    text = f"{head} of {len(measurements)} (at least {needed} needed)"
    top = _reason_counts(measurements)
    if top:
        text += ": " + "; ".join(f"{r} ({c})" for r, c in top[:3])
    return text


def _nothing_assessable(n: int, ps: float | None, fs: float | None,
                        center: tuple[float, float], reasons: list[str], why: str
                        ) -> PullbackAnalysis:
    empty = np.zeros(ANGLE_BINS, dtype=np.bool_)
    frames = tuple(
        FrameMeasurement(frame=i + 1, assessable=False, center=center, lumen_contour=None,
                         eem_contour=None, lumen_area_mm2=None, eem_area_mm2=None,
                         eem_mean_diameter_mm=None, eem_interpolated_fraction=0.0,
                         calcium_mask=empty.copy(), superficial_calcium_mask=empty.copy(),
                         calcium_arc_deg=0.0, superficial_calcium_arc_deg=0.0,
                         calcified_nodule=False, reason=why)
        for i in range(n))
    return PullbackAnalysis(frame_count=n, pixel_spacing_mm=ps, frame_spacing_mm=fs,
                            frames=frames, lesions=(), not_assessable=tuple(reasons), reason=why)


def _wire_track(pol_samples: npt.NDArray[np.float32], ctx: Context,
                sample_idx: npt.NDArray[np.intp], n: int) -> npt.NDArray[np.float64]:
    """Guidewire angle bin for every frame, interpolated from frames sampled along the pullback.

    NaN everywhere when no consistent wire is found.
    """
    inner, depth = detect.wire_candidates(pol_samples, ctx)
    t = wire_track(inner, depth, int(ctx.params.guidewire_max_gap_deg))
    ok = ~np.isnan(t)
    if ok.sum() < max(2, int(0.4 * t.size)):
        return np.full(n, np.nan)
    ang = np.unwrap(np.deg2rad(t[ok] * 360.0 / ANGLE_BINS))
    full = np.interp(np.arange(n), sample_idx[ok].astype(np.float64), ang)
    return np.asarray(np.mod(np.rad2deg(full), 360.0) * ANGLE_BINS / 360.0, dtype=np.float64)


def _gains(frames: npt.NDArray[np.uint8], grid: polar.PolarGrid,
           pol_samples: npt.NDArray[np.float32], r0: int, p: AnalysisParameters
           ) -> npt.NDArray[np.float64]:
    """Per-frame gain factors measured on the catheter ring-down.

    The ring-down is the same structure in every frame, so its brightness changes only with
    the console gain. Its unsaturated flanks (median grey 40-200) are sampled in every frame
    (a few hundred pixels) and :func:`preprocess.gain_factors` removes frame-to-frame jumps.
    Without a usable ring-down every factor is 1.
    """
    n = frames.shape[0]
    prof = np.median(pol_samples[:, :, :r0], axis=(0, 1))
    radii = np.flatnonzero((prof >= 40.0) & (prof <= 200.0))
    if radii.size == 0:
        return np.ones(n)
    idx = grid.index.reshape(ANGLE_BINS, grid.n_radii)[::2, radii].ravel()
    levels = np.median(frames.reshape(n, -1)[:, idx], axis=1).astype(np.float64)
    return preprocess.gain_factors(levels, p)


def _valid_end(pol_samples: npt.NDArray[np.float32]) -> npt.NDArray[np.intp]:
    """Per angle, one past the last radius with any echo in the sampled frames (FOV edge)."""
    echo = pol_samples.max(axis=0) > 0
    n_r = echo.shape[1]
    last = n_r - np.argmax(echo[:, ::-1], axis=1)
    return np.asarray(np.where(echo.any(axis=1), last, n_r), dtype=np.intp)


def _temporal_mean(pol: npt.NDArray[np.float32], ok: npt.NDArray[np.bool_], half: int
                   ) -> npt.NDArray[np.float32]:
    """Mean of each frame with its ``half`` neighbours each side (assessable ones only)."""
    if half <= 0 or pol.shape[0] < 2:
        return pol
    n = pol.shape[0]
    if ok.all():
        out = pol.copy()
        cnt = np.ones(n, dtype=np.float32)
        for d in range(1, half + 1):
            out[d:] += pol[:-d]
            out[:-d] += pol[d:]
            cnt[d:] += 1.0
            cnt[:-d] += 1.0
        out *= (1.0 / cnt)[:, None, None]
        return out
    w = ok.astype(np.float32)
    acc = pol * w[:, None, None]
    cnt = w.copy()
    out = acc.copy()
    for d in range(1, half + 1):
        out[d:] += acc[:-d]
        out[:-d] += acc[d:]
        cnt_d = np.zeros(n, dtype=np.float32)
        cnt_d[d:] += w[:-d]
        cnt_d[:-d] += w[d:]
        cnt += cnt_d
    out /= np.maximum(cnt, 1.0)[:, None, None]
    # Unassessable frames keep their own image.
    out[~ok] = pol[~ok]
    return out


__all__ = ["FrameMeasurement", "analyze_pullback"]
