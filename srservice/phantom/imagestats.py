"""Image statistics that compare a pullback's look with real console exports.

Definitions (the figures of real exports they are compared with are in docs/phantom.md).
Frames are resampled to polar coordinates about the catheter centre, 0.025 mm x 1 degree,
0-5 mm; by default 200 frames as 100 adjacent pairs spread over the pullback.

``radial_profile``
    median grey in 0.5 mm rings from 0.5 to 5.0 mm divided by the 99th percentile of the
    0.6-4.5 mm band.
``percentiles``
    p5 p25 p50 p75 p95 p99 of the 0.6-4.5 mm band.
``speckle_cv``
    mean local std / mean in 7 x 7 polar windows (0.175 mm x 7 degrees) of the 1.5-3.5 mm
    band, over windows brighter than the band's p25.
``corr_len_r_mm``, ``corr_len_theta_deg``
    lag at which the mean autocorrelation of the 1.5-3.5 mm band (mean removed along the
    axis) falls below 0.5, radially and angularly.
``edge_sharpness``
    99th percentile of the radial gradient magnitude (grey per mm) of the band divided by the
    band's median.
``frame_to_frame_r``
    mean Pearson correlation of the 0.6-4.5 mm band of adjacent frames.
``dark_aline_frac``
    fraction of A-lines whose 2.5-4.5 mm median is below 0.25 x the frame's median of those
    A-line medians (shadows and dark far fields).

Calcium figures of one frame (:func:`calcium_figures`): leading-edge peak grey, peak over the
median plaque grey of the same frame, shadow ratio (median grey 0.4-2.0 mm behind the edge over
the same radii outside the calcium) and the fraction of calcium A-lines reaching the bright-edge
level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

STEP_MM = 0.025
R_MAX_MM = 5.0
N_THETA = 360

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


def pair_indices(n_frames: int, n: int = 200, first: int = 1, last: int | None = None
                 ) -> npt.NDArray[np.intp]:
    """0-based indices of up to ``n`` frames as adjacent pairs within 1-based [first, last]."""
    lo, hi = max(first, 1) - 1, min(last or n_frames, n_frames)
    span = max(hi - lo, 1)
    count = max(min(n, span) // 2, 1)
    starts = lo + np.unique(np.linspace(0, max(span - 2, 0), count).round().astype(np.intp))
    idx = np.stack([starts, np.minimum(starts + 1, n_frames - 1)], axis=1).ravel()
    return np.asarray(idx, dtype=np.intp)


def radii_mm() -> F64:
    """Radii of the polar samples (mm)."""
    return np.arange(0.0, R_MAX_MM + 1e-9, STEP_MM)


def to_polar(frames: npt.NDArray[np.generic], pixel_spacing_mm: float,
             center: tuple[float, float]) -> F32:
    """Resample ``(n, rows, cols)`` grey frames to ``(n, radii, angles)`` about ``center``."""
    r = radii_mm() / pixel_spacing_mm
    th = np.deg2rad(np.arange(N_THETA))
    rr, tt = np.meshgrid(r, th, indexing="ij")
    ys, xs = center[1] + rr * np.sin(tt), center[0] + rr * np.cos(tt)
    out = np.stack([
        ndimage.map_coordinates(np.asarray(f, dtype=np.float32), [ys, xs], order=1,
                                mode="constant")
        for f in frames
    ])
    return np.asarray(out, dtype=np.float32)


def _acf_len(band: F32, axis: int, step: float) -> float:
    b = band - band.mean(axis=axis, keepdims=True)
    n = b.shape[axis]
    f = np.fft.rfft(b, n=2 * n, axis=axis)
    ac = np.fft.irfft(f * np.conj(f), axis=axis)
    ac = np.take(ac, np.arange(n), axis=axis)
    ac = ac.mean(axis=tuple(i for i in range(ac.ndim) if i != axis))
    ac = ac / ac[0]
    below = np.nonzero(ac < 0.5)[0]
    return float(below[0] * step) if len(below) else float(n * step)


@dataclass(frozen=True)
class ImageStats:
    """The whole-image figures (see the module docstring)."""

    frames_sampled: int
    radial_profile: tuple[float, ...]
    percentiles: tuple[float, ...]
    speckle_cv: float
    corr_len_r_mm: float
    corr_len_theta_deg: float
    edge_sharpness: float
    frame_to_frame_r: float | None
    dark_aline_frac: float

    def as_dict(self) -> dict[str, object]:
        """Plain dict (JSON-ready)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def image_stats(pol: F32) -> ImageStats:
    """Compute the figures of polar frames ``(n, radii, angles)`` sampled as adjacent pairs."""
    r_mm = radii_mm()
    band = (r_mm >= 0.6) & (r_mm <= 4.5)
    b = pol[:, band, :]
    p = np.percentile(b, [5, 25, 50, 75, 95, 99])
    prof = []
    for lo in np.arange(0.5, 5.0, 0.5):
        m = (r_mm >= lo) & (r_mm < lo + 0.5)
        prof.append(round(float(np.median(pol[:, m, :]) / max(p[5], 1.0)), 3))
    mid = pol[:, (r_mm >= 1.5) & (r_mm <= 3.5), :]
    mean = ndimage.uniform_filter(mid, size=(1, 7, 7))
    sq = ndimage.uniform_filter(mid * mid, size=(1, 7, 7))
    sd = np.sqrt(np.maximum(sq - mean * mean, 0))
    ok = mean > max(p[1], 1.0)
    cv = float(np.mean(sd[ok] / mean[ok])) if ok.any() else float("nan")
    grad = np.abs(np.diff(b, axis=1)) / STEP_MM
    sharp = float(np.percentile(grad, 99) / max(p[2], 1.0))
    cors = []
    for a, c in zip(b[0::2], b[1::2], strict=False):
        a1, c1 = a.ravel() - a.mean(), c.ravel() - c.mean()
        den = float(np.sqrt((a1 * a1).sum() * (c1 * c1).sum()))
        if den > 0:
            cors.append(float((a1 * c1).sum() / den))
    far = pol[:, (r_mm >= 2.5) & (r_mm <= 4.5), :]
    aline = np.median(far, axis=1)
    fmed = np.median(aline, axis=1, keepdims=True)
    dark = float(np.mean(aline < 0.25 * np.maximum(fmed, 1.0)))
    return ImageStats(
        frames_sampled=int(pol.shape[0]),
        radial_profile=tuple(prof),
        percentiles=tuple(round(float(x), 1) for x in p),
        speckle_cv=round(cv, 3),
        corr_len_r_mm=round(_acf_len(mid, 1, STEP_MM), 3),
        corr_len_theta_deg=round(_acf_len(mid, 2, 1.0), 1),
        edge_sharpness=round(sharp, 2),
        frame_to_frame_r=round(float(np.mean(cors)), 3) if cors else None,
        dark_aline_frac=round(dark, 3),
    )


def pullback_stats(frames: npt.NDArray[np.generic], pixel_spacing_mm: float,
                   center: tuple[float, float], *, n: int = 200, first: int = 1,
                   last: int | None = None) -> ImageStats:
    """Figures of a pullback (frames 1-based ``first``..``last``)."""
    idx = pair_indices(frames.shape[0], n, first, last)
    return image_stats(to_polar(frames[idx], pixel_spacing_mm, center))


#: Target ranges for a realistic phantom on calcium-free frames (real exports: docs/phantom.md).
REAL_PROFILES = (
    (0.36, 0.41, 0.49, 0.50, 0.43, 0.33, 0.23, 0.17, 0.16),
    (0.42, 0.49, 0.54, 0.48, 0.38, 0.28, 0.21, 0.17, 0.16),
)
PROFILE_TOLERANCE = 0.15


def target_failures(s: ImageStats) -> list[str]:
    """Return the figures outside the realistic target ranges (empty: all inside)."""
    bad: list[str] = []
    for i, v in enumerate(s.radial_profile):
        lo = min(p[i] for p in REAL_PROFILES) - PROFILE_TOLERANCE
        hi = max(p[i] for p in REAL_PROFILES) + PROFILE_TOLERANCE
        if not lo <= v <= hi:
            bad.append(f"radial_profile[{i}]={v} not in [{lo:.2f}, {hi:.2f}]")
    p5, _, p50, _, _, p99 = s.percentiles
    if p5 < 8:
        bad.append(f"p5={p5} < 8")
    if not 70 <= p50 <= 130:
        bad.append(f"p50={p50} not in [70, 130]")
    if p99 < 240:
        bad.append(f"p99={p99} < 240")
    checks: tuple[tuple[str, float | None, float, float], ...] = (
              ("speckle_cv", s.speckle_cv, 0.15, 0.30),
              ("corr_len_r_mm", s.corr_len_r_mm, 0.10, 0.25),
              ("corr_len_theta_deg", s.corr_len_theta_deg, 8.0, 30.0),
              ("edge_sharpness", s.edge_sharpness, 0.0, 42.0),
              ("frame_to_frame_r", s.frame_to_frame_r, 0.70, 0.90),
              ("dark_aline_frac", s.dark_aline_frac, 0.005, 0.08))
    for name, val, lo, hi in checks:
        if val is None or not lo <= val <= hi:
            bad.append(f"{name}={val} not in [{lo}, {hi}]")
    return bad


@dataclass(frozen=True)
class CalciumFigures:
    """Calcium appearance of one frame."""

    edge_peak: float
    peak_over_plaque: float
    shadow_ratio: float
    bright_fraction: float


def calcium_figures(
    polar: F32, calcium_lines: npt.NDArray[np.bool_], edge_mm: F64,
    plaque: npt.NDArray[np.bool_], usable: npt.NDArray[np.bool_],
) -> CalciumFigures:
    """Calcium figures of one polar frame ``(radii, angles)`` sampled like :func:`to_polar`.

    Parameters
    ----------
    calcium_lines : (angles,) bool
        A-lines through calcium (the inner 80% of the arc is used for the shadow).
    edge_mm : (angles,) float
        Leading-edge distance from the catheter centre on those A-lines.
    plaque : (radii, angles) bool
        Plaque pixels (between lumen and EEM) on A-lines without calcium.
    usable : (angles,) bool
        A-lines usable as the outside reference (no calcium, no guidewire shadow).
    """
    r = radii_mm()
    lines = np.flatnonzero(calcium_lines)
    peaks = []
    for j in lines:
        m = np.abs(r - edge_mm[j]) <= 0.15
        peaks.append(float(polar[m, j].max()) if m.any() else 0.0)
    pk = np.asarray(peaks)
    peak = float(np.percentile(pk, 90)) if len(pk) else 0.0
    plaque_med = float(np.median(polar[plaque])) if plaque.any() else float("nan")
    core = ndimage.binary_erosion(calcium_lines, iterations=max(1, len(lines) // 10),
                                  border_value=0)
    if not core.any():
        core = calcium_lines
    inside, outside = [], []
    ref_lines = np.flatnonzero(usable)
    for j in np.flatnonzero(core):
        m = (r >= edge_mm[j] + 0.4) & (r <= edge_mm[j] + 2.0) & (r <= 4.8)
        if m.any():
            inside.append(polar[m, j])
            outside.append(polar[np.ix_(m, ref_lines)].ravel())
    shadow = (float(np.median(np.concatenate(inside)))
              / max(float(np.median(np.concatenate(outside))), 1.0)) if inside else float("nan")
    bright = float(np.mean(pk >= 0.8 * peak)) if len(pk) else 0.0
    return CalciumFigures(edge_peak=peak, peak_over_plaque=peak / max(plaque_med, 1.0),
                          shadow_ratio=shadow, bright_fraction=bright)


__all__ = [
    "CalciumFigures",
    "ImageStats",
    "calcium_figures",
    "image_stats",
    "pair_indices",
    "pullback_stats",
    "target_failures",
    "to_polar",
]
