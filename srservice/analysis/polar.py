"""Cartesian to polar resampling about the catheter centre, and burnt-in overlay handling.

IVUS consoles acquire A-lines radially from the transducer and scan-convert them to the
Cartesian frames stored in DICOM (PS3.3 C.8.5.5, Sequence of Ultrasound Regions; the
transducer is at Reference Pixel X0/Y0). Analysis is done back in polar form
``(angle, radius)``: one row per :data:`~srservice.analysis.types.ANGLE_BINS` angle bin, radii
at a fixed millimetre step. The gather indices are computed once per pullback and applied to
every frame as a batch (nearest neighbour), which is what makes the pipeline fast.

Burnt-in overlays (the grey field-of-view ring, calibration dots, text) are the same in every
frame while echoes change along the pullback: pixels whose grey level barely changes across
frames sampled over the whole pullback are overlay. Thin overlay pixels are replaced, in the
gather indices, by their nearest non-overlay pixel.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from srservice.analysis.params import AnalysisParameters
from srservice.analysis.types import ANGLE_BINS

#: Overlay pixels further than this from a non-overlay pixel are left alone (large uniform
#: display areas, e.g. the black corners outside the field of view).
OVERLAY_REMAP_MAX_PX = 6.0


@dataclass(frozen=True)
class PolarGrid:
    """Precomputed nearest-neighbour gather from ``(rows, columns)`` to ``(ANGLE_BINS, R)``.

    Attributes
    ----------
    center : tuple of float
        ``(x, y)`` catheter centre in pixels.
    step_px : float
        Radial step in pixels.
    n_radii : int
        Number of radial samples ``R`` (sample ``j`` at radius ``j * step_px``).
    index : numpy.ndarray
        ``(ANGLE_BINS * R,)`` flat pixel indices.
    inside : numpy.ndarray
        ``(ANGLE_BINS, R)`` bool: the sample lies inside the image.
    """

    center: tuple[float, float]
    step_px: float
    n_radii: int
    index: npt.NDArray[np.intp]
    inside: npt.NDArray[np.bool_]

    def radius_px(self, j: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Radius in pixels of (fractional) radial sample index ``j``."""
        return np.asarray(j, dtype=np.float64) * self.step_px

    def truncated(self, n_radii: int) -> PolarGrid:
        """Return the same grid limited to the first ``n_radii`` radial samples."""
        if n_radii >= self.n_radii:
            return self
        idx = self.index.reshape(ANGLE_BINS, self.n_radii)[:, :n_radii]
        return PolarGrid(center=self.center, step_px=self.step_px, n_radii=n_radii,
                         index=np.ascontiguousarray(idx.ravel()),
                         inside=np.ascontiguousarray(self.inside[:, :n_radii]))

    @cached_property
    def _gather(self) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        """Distinct pixels in memory order, and each sample's column among them.

        Samples outside the image point to one extra column that stays zero.
        """
        pixels, inverse = np.unique(self.index, return_inverse=True)
        inverse = np.where(self.inside.ravel(), inverse.ravel(), pixels.size)
        return pixels, np.ascontiguousarray(inverse, dtype=np.intp)

    def to_polar(self, frames: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Resample a batch ``(n, rows, columns)`` to ``(n, ANGLE_BINS, R)`` float32.

        Each distinct pixel is read once, in memory order (several times faster than
        gathering in polar order, which jumps across the image), then spread to the samples.
        """
        n = frames.shape[0]
        pixels, inverse = self._gather
        picked = np.zeros((n, pixels.size + 1), dtype=np.uint8)
        picked[:, : pixels.size] = np.take(frames.reshape(n, -1), pixels, axis=1)
        out = np.take(picked, inverse, axis=1).astype(np.float32)
        return out.reshape(n, ANGLE_BINS, self.n_radii)


def sample_frames(frames: npt.NDArray[np.uint8], count: int) -> npt.NDArray[np.uint8]:
    """Return ``count`` frames spread evenly over the pullback (all when fewer)."""
    n = frames.shape[0]
    if n <= count:
        return frames
    idx = np.linspace(0, n - 1, count).round().astype(np.intp)
    return np.asarray(frames[idx])


def overlay_mask(samples: npt.NDArray[np.uint8], params: AnalysisParameters
                 ) -> npt.NDArray[np.bool_]:
    """Pixels that are burnt-in overlay: bright and nearly constant over the pullback.

    Needs at least 4 frames; with fewer nothing is flagged (no evidence of constancy).
    """
    if samples.shape[0] < 4:
        return np.zeros(samples.shape[1:], dtype=np.bool_)
    lo = samples.min(axis=0)
    hi = samples.max(axis=0)
    rng = hi.astype(np.int16) - lo.astype(np.int16)
    return np.asarray((rng <= params.overlay_range) & (lo >= params.overlay_min_level))


def find_catheter_center(samples: npt.NDArray[np.uint8]) -> tuple[float, float]:
    """Find the transducer centre from the stationary bright ring-down around it.

    The ring-down (catheter and its reverberation rings) is bright in every frame, so it
    survives a temporal minimum; the bright component nearest the image centre gives the
    centre. Falls back to the image centre.
    """
    h, w = samples.shape[1:]
    fallback = ((w - 1) / 2.0, (h - 1) / 2.0)
    if samples.shape[0] < 2:
        return fallback
    tmin = samples.min(axis=0).astype(np.float32)
    level = max(float(np.percentile(tmin, 99.5)) * 0.6, 40.0)
    labels, n = ndimage.label(tmin >= level)
    if n == 0:
        return fallback
    idx = np.arange(1, n + 1)
    sizes = np.asarray(ndimage.sum_labels(np.ones_like(tmin), labels, idx))
    cents = ndimage.center_of_mass(np.ones_like(tmin), labels, idx)
    best: tuple[float, float] | None = None
    best_d = np.inf
    max_size = 0.05 * h * w
    for size, (cy, cx) in zip(sizes, cents, strict=True):
        if size < 12 or size > max_size:
            continue
        d = float(np.hypot(cx - fallback[0], cy - fallback[1]))
        if d < best_d and d < 0.25 * min(h, w):
            best_d, best = d, (float(cx), float(cy))
    return best if best is not None else fallback


def make_grid(shape: tuple[int, int], center: tuple[float, float], step_px: float,
              max_radius_px: float, overlay: npt.NDArray[np.bool_] | None = None) -> PolarGrid:
    """Build the gather indices for frames of ``shape`` about ``center``.

    Parameters
    ----------
    shape : tuple of int
        ``(rows, columns)``.
    center : tuple of float
        ``(x, y)`` transducer centre.
    step_px : float
        Radial step in pixels.
    max_radius_px : float
        Largest radius; limited to the farthest image corner.
    overlay : numpy.ndarray, optional
        Overlay pixels to replace by their nearest non-overlay neighbour.
    """
    h, w = shape
    cx, cy = center
    corner = max(np.hypot(x - cx, y - cy) for x in (0, w - 1) for y in (0, h - 1))
    n_radii = max(int(min(max_radius_px, corner) / step_px), 8)
    theta = np.deg2rad((np.arange(ANGLE_BINS) + 0.5) * 360.0 / ANGLE_BINS)
    r = np.arange(n_radii) * step_px
    xs = cx + np.cos(theta)[:, None] * r[None, :]
    ys = cy + np.sin(theta)[:, None] * r[None, :]
    xi = np.rint(xs).astype(np.intp)
    yi = np.rint(ys).astype(np.intp)
    inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    xi = np.clip(xi, 0, w - 1)
    yi = np.clip(yi, 0, h - 1)
    flat = yi * w + xi
    if overlay is not None and overlay.any():
        dist, (ny, nx) = ndimage.distance_transform_edt(overlay, return_indices=True)
        remap = (ny * w + nx).ravel()
        thin = (dist <= OVERLAY_REMAP_MAX_PX).ravel()
        fl = flat.ravel()
        flat = np.where(thin[fl], remap[fl], fl).reshape(flat.shape)
    return PolarGrid(center=(float(cx), float(cy)), step_px=float(step_px), n_radii=n_radii,
                     index=np.ascontiguousarray(flat.ravel()), inside=inside)
