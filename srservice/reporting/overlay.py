"""Geometry shared by the SR and the PDF: closed contours and the calcium arc as polylines.

Coordinates follow ``srservice.analysis.types``: ``(x, y) = (column, row)`` pixels, angles in
degrees about the frame's centre of measurement, bin ``i`` of an angular mask covering
``[i, i+1) * 360 / ANGLE_BINS`` degrees, 0 degrees pointing to +x and 90 degrees to +y.
"""

from __future__ import annotations

import numpy as np

from srservice.analysis.types import ANGLE_BINS, BoolArray, FloatArray, FrameMeasurement

#: Radius (pixels) used for the arc when the frame has no lumen contour to sit it on.
FALLBACK_RADIUS_PX = 40.0
#: The arc is drawn this fraction of the lumen radius outside the lumen border.
ARC_OFFSET_FRACTION = 0.06
#: Width (degrees) of the moving average smoothing the lumen radius under the arc.
ARC_SMOOTHING_DEG = 15.0


def closed(contour: FloatArray) -> FloatArray:
    """Return ``contour`` with its first point repeated at the end (a closed POLYLINE).

    PS3.3 C.18.6.1.1: a POLYLINE whose first and last points coincide is closed.
    """
    pts = np.asarray(contour, dtype=np.float64)
    if len(pts) and not np.array_equal(pts[0], pts[-1]):
        pts = np.vstack([pts, pts[:1]])
    return pts


def arc_pieces(mask: BoolArray) -> list[tuple[int, int]]:
    """Split an angular mask into contiguous pieces, joining across 0/360.

    Parameters
    ----------
    mask : numpy.ndarray
        ``(ANGLE_BINS,)`` bool.

    Returns
    -------
    list of (start_bin, n_bins)
        Pieces in increasing start order; a full mask is one piece ``(0, ANGLE_BINS)``.
    """
    m = np.asarray(mask, dtype=bool)
    n = len(m)
    if not m.any():
        return []
    if m.all():
        return [(0, n)]
    # Rotate so that index 0 is a gap: no piece wraps any more.
    shift = int(np.argmin(m))
    r = np.roll(m, -shift)
    edges = np.diff(np.concatenate([[0], r.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    pieces = [(int((s + shift) % n), int(e - s)) for s, e in zip(starts, ends, strict=True)]
    return sorted(pieces)


def radius_at(contour: FloatArray, center: tuple[float, float],
              angles_deg: FloatArray) -> FloatArray:
    """Radius (pixels) of a closed contour about ``center`` at the given angles."""
    pts = np.asarray(contour, dtype=np.float64)
    dx, dy = pts[:, 0] - center[0], pts[:, 1] - center[1]
    theta = np.degrees(np.arctan2(dy, dx)) % 360.0
    rad = np.hypot(dx, dy)
    order = np.argsort(theta)
    return np.asarray(np.interp(angles_deg % 360.0, theta[order], rad[order], period=360.0),
                      dtype=np.float64)


def arc_polylines(frame: FrameMeasurement,
                  mask: BoolArray | None = None) -> list[tuple[FloatArray, float]]:
    """Return one arc per calcium piece, drawn just outside the lumen border.

    The arc follows the lumen border (its radius about the centre of measurement, smoothed
    over :data:`ARC_SMOOTHING_DEG`), pushed out by :data:`ARC_OFFSET_FRACTION` so that it does
    not hide the lumen contour. It marks *where* (at which angles) calcium is; the depth of
    its leading edge is not drawn, because a per-angle depth makes radial spikes wherever the
    depth jumps between neighbouring angles.

    Parameters
    ----------
    frame : FrameMeasurement
        The frame (its centre, lumen contour and calcium mask).
    mask : numpy.ndarray, optional
        Angular mask to draw (default: ``frame.calcium_mask``, calcium of any depth).

    Returns
    -------
    list of (points, arc_deg)
        ``(K, 2)`` ``(x, y)`` pixel polylines (closed when the piece is 360 degrees) and the
        arc each subtends.
    """
    m = frame.calcium_mask if mask is None else mask
    step = 360.0 / ANGLE_BINS
    out: list[tuple[FloatArray, float]] = []
    radius_bins = _border_radius(frame)
    for start, length in arc_pieces(m):
        full = length == ANGLE_BINS
        # Vertices at bin edges, so the polyline spans exactly the piece's angle.
        edges = np.arange(length + (0 if full else 1), dtype=np.float64)
        angles = (start + edges) * step
        radius = np.interp(angles % 360.0, (np.arange(ANGLE_BINS) + 0.5) * step, radius_bins,
                           period=360.0) * (1.0 + ARC_OFFSET_FRACTION)
        t = np.radians(angles)
        pts = np.column_stack([frame.center[0] + radius * np.cos(t),
                               frame.center[1] + radius * np.sin(t)])
        out.append((closed(pts) if full else pts, float(length * step)))
    return out


def _border_radius(frame: FrameMeasurement) -> FloatArray:
    """Lumen radius (pixels) at every angle bin's centre, circularly smoothed."""
    step = 360.0 / ANGLE_BINS
    if frame.lumen_contour is None or len(frame.lumen_contour) < 3:
        return np.full(ANGLE_BINS, FALLBACK_RADIUS_PX)
    centres = (np.arange(ANGLE_BINS, dtype=np.float64) + 0.5) * step
    r = radius_at(frame.lumen_contour, frame.center, centres)
    half = max(1, round(ARC_SMOOTHING_DEG / step / 2))
    kernel = np.ones(2 * half + 1) / (2 * half + 1)
    padded = np.concatenate([r[-half:], r, r[:half]])
    return np.asarray(np.convolve(padded, kernel, mode="valid"), dtype=np.float64)
