"""Use the pullback as a volume: along-pullback smoothing and calcified nodules.

Calcium is a 3-D structure: it extends over many neighbouring frames, so a calcium A-line seen
in one frame only is noise and a single frame missing it (speckle, motion) is a drop-out. An
angular-bin majority vote over a few neighbouring frames keeps both arcs and lesion ends.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from srservice.analysis.borders import interpolate_hidden, robust_fourier_fit
from srservice.analysis.geometry import circular_neighbours
from srservice.analysis.types import ANGLE_BINS
from srservice.analysis.wire import circular_dilate

B = npt.NDArray[np.bool_]
F64 = npt.NDArray[np.float64]


def half_window(frame_spacing_mm: float | None, default: int, reach_mm: float = 0.1,
                max_frames: int = 3) -> int:
    """Frames each side of a smoothing window reaching ``reach_mm`` along the vessel."""
    if frame_spacing_mm is None or frame_spacing_mm <= 0:
        return default
    return int(min(max_frames, round(reach_mm / frame_spacing_mm)))


def majority_along_pullback(masks: B, assessable: B, half: int) -> B:
    """Per angle bin majority vote over ``2*half+1`` neighbouring assessable frames.

    Parameters
    ----------
    masks : numpy.ndarray
        ``(n_frames, ANGLE_BINS)`` bool.
    assessable : numpy.ndarray
        ``(n_frames,)``; unassessable frames neither vote nor receive calcium.
    half : int
        Half window in frames (0: unchanged).
    """
    if half <= 0 or masks.shape[0] < 2:
        return masks & assessable[:, None]
    size = 2 * half + 1
    votes = ndimage.uniform_filter1d((masks & assessable[:, None]).astype(np.float32), size,
                                     axis=0, mode="constant")
    voters = ndimage.uniform_filter1d(assessable.astype(np.float32), size, mode="constant")
    out = votes > 0.5 * voters[:, None] + 1e-6
    return np.asarray(out & assessable[:, None])


def drop_narrow(masks: B, min_bins: int) -> B:
    """Remove circular runs narrower than ``min_bins`` from angular masks (1-D or ``(n, A)``)."""
    m = np.atleast_2d(masks)
    prev, nxt = circular_neighbours(~m)  # nearest False bins around each True bin
    out = m & (nxt - prev - 1 >= min_bins)
    return out.reshape(masks.shape)


#: Angle bins over which a nodule's protrusion must hold (a calcified mass, 10 degrees).
NODULE_MIN_WIDTH = 11


def protrusion_mm(lumen_samples: F64, edge_samples: F64, calcium: B, ignore: B,
                  step_mm: float, catheter_samples: float = 0.0
                  ) -> tuple[F64, npt.NDArray[np.intp]]:
    """Largest protrusion (mm) of the calcium surface into the lumen, per frame.

    The smooth lumen contour is a 3rd-order Fourier fit of the border radius (about the
    catheter) with inward outliers rejected iteratively; the protrusion is the smooth contour
    minus the calcium leading edge radius, its minimum over 10 degrees (a sustained bulge),
    maximised over calcium bins (Lee, Mintz, Maehara 2011; docs/scoring.md: >= 0.2 mm makes a
    calcified nodule). Calcium lying behind the lumen border gives a negative protrusion.
    Returns the protrusion per frame (-inf without calcium) and the angle bin where it is
    largest. Calcium whose leading edge lies at most ``catheter_samples`` from the centre
    (on the catheter) gives no evidence: a catheter pressed against the wall flattens the
    lumen around it, which mimics a bulge of the calcium it touches.
    """
    calcium = calcium & (edge_samples > catheter_samples)
    n = lumen_samples.shape[0]
    out = np.full(n, -np.inf)
    where = np.zeros(n, dtype=np.intp)
    rows = np.flatnonzero(calcium.any(axis=1))
    if rows.size == 0:
        return out, where
    lum = lumen_samples[rows]
    w = ~ignore[rows]
    fit = robust_fourier_fit(lum, w, order=3, iterations=4, clip=2.5)
    # Calcium bins lying inside the first fit (the nodule and its flanks) are left out of
    # the reference; the reference is the larger of the smooth fit and the border
    # interpolated across them (a 3rd-order fit alone cuts the bulge of an eccentric lumen).
    inward = circular_dilate(calcium[rows] & (lum < fit - 0.04 / step_mm), 10) & calcium[rows]
    keep = w & ~inward & (lum >= fit - 0.08 / step_mm)
    f = robust_fourier_fit(lum, keep, order=3, iterations=2, clip=3.0)
    across = ndimage.uniform_filter1d(interpolate_hidden(lum, ~keep), 9, axis=1, mode="wrap")
    f = np.maximum(f, across)
    cal = calcium[rows]
    surface = np.where(cal, edge_samples[rows], lum)
    # A calcified nodule is convex into the lumen: the border is indented from its own convex
    # hull there. The hull is independent of where the catheter lies in the lumen (a smooth
    # radius function about an eccentric catheter cannot follow a lumen it touches).
    # The hull chord cuts inside a round lumen across a wide nodule, so the hull depth is
    # taken where it is largest, not held over the nodule's width like the smooth contour's.
    hull = hull_radius(lum)
    # A nodule is a mass: the protrusion must hold over ``NODULE_MIN_WIDTH`` bins (a
    # sustained bulge), not at a single ray of a ragged border.
    d = ndimage.minimum_filter1d(f - surface, NODULE_MIN_WIDTH, axis=1, mode="wrap")
    d = np.minimum(d, ndimage.maximum_filter1d(np.where(cal, hull - surface, -np.inf),
                                               NODULE_MIN_WIDTH, axis=1, mode="wrap"))
    masked = np.where(cal, d, -np.inf)
    where[rows] = masked.argmax(axis=1)
    out[rows] = masked.max(axis=1) * step_mm
    return out, where


def hull_radius(radius: F64) -> F64:
    """Radius (same units) of the convex hull of each closed border along every angle bin.

    ``radius`` is ``(n, A)``: border radii about a centre inside the border, one per angle
    bin. The hull (scipy.spatial.ConvexHull, Qhull) contains the centre, so every ray from
    it crosses the hull once; the crossing is intersected with the hull edge spanning the
    ray's angle.
    """
    n, n_a = radius.shape
    theta = (np.arange(n_a) + 0.5) * (2.0 * np.pi / n_a)
    ux, uy = np.cos(theta), np.sin(theta)
    out = radius.copy()
    for i in range(n):
        x, y = radius[i] * ux, radius[i] * uy
        try:
            hull = ConvexHull(np.column_stack([x, y]))
        except QhullError:
            continue
        v = np.sort(hull.vertices)  # counter-clockwise in angle, as the bins
        x1, y1 = x[v], y[v]
        x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
        # Hull edge k spans bins v[k] .. v[k + 1] (circularly).
        span = np.diff(np.append(v, v[0] + n_a))
        k = np.repeat(np.arange(v.size), span)
        bins = (v[0] + np.arange(n_a)) % n_a
        cross = x1[k] * y2[k] - y1[k] * x2[k]
        den = ux[bins] * (y2[k] - y1[k]) - uy[bins] * (x2[k] - x1[k])
        with np.errstate(divide="ignore", invalid="ignore"):
            r = cross / den
        ok = np.isfinite(r) & (r > 0)
        out[i, bins[ok]] = np.maximum(r[ok], radius[i, bins[ok]])
    return out


def consistent_runs(flags: B, angle_bin: npt.NDArray[np.intp], min_frames: int,
                    max_step_deg: float = 45.0) -> B:
    """Keep runs of at least ``min_frames`` flagged frames whose angle moves little.

    A calcified nodule is one mass: seen over several neighbouring frames at nearly the same
    angle. A run breaks where the angle of the largest protrusion jumps by more than
    ``max_step_deg`` between neighbouring frames.
    """
    ang = angle_bin.astype(np.float64) * 360.0 / ANGLE_BINS
    jump = np.abs((np.diff(ang) + 180.0) % 360.0 - 180.0) > max_step_deg
    need = max(1, min_frames)
    out = np.zeros_like(flags)
    start: int | None = None
    for i in range(flags.size):
        if flags[i] and start is not None and not jump[i - 1]:
            continue
        if start is not None and i - start >= need:
            out[start:i] = True
        start = i if flags[i] else None
    if start is not None and flags.size - start >= need:
        out[start:] = True
    return out
