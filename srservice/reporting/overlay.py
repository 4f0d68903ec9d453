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


def arc_polylines(frame: FrameMeasurement, pixel_spacing_mm: float | None,
                  mask: BoolArray | None = None) -> list[tuple[FloatArray, float]]:
    """Return one polyline per calcium piece, drawn along the calcium leading edge.

    Parameters
    ----------
    frame : FrameMeasurement
        The frame (its centre, lumen contour, calcium mask and leading-edge depth).
    pixel_spacing_mm : float or None
        Converts the leading-edge depth (mm) to pixels; without it the arc sits on the lumen
        border.
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
    for start, length in arc_pieces(m):
        bins = (start + np.arange(length)) % ANGLE_BINS
        full = length == ANGLE_BINS
        # Vertices at bin edges, so the polyline spans exactly the piece's angle.
        edges = np.arange(length + (0 if full else 1), dtype=np.float64)
        angles = (start + edges) * step
        if frame.lumen_contour is not None and len(frame.lumen_contour) >= 3:
            radius = radius_at(frame.lumen_contour, frame.center, angles)
        else:
            radius = np.full(len(angles), FALLBACK_RADIUS_PX)
        if frame.calcium_depth_mm is not None and pixel_spacing_mm:
            depth = np.asarray(frame.calcium_depth_mm, dtype=np.float64)[
                np.concatenate([bins, bins[-1:]])[: len(angles)]]
            radius = radius + np.nan_to_num(depth, nan=0.0) / pixel_spacing_mm
        t = np.radians(angles)
        pts = np.column_stack([frame.center[0] + radius * np.cos(t),
                               frame.center[1] + radius * np.sin(t)])
        out.append((closed(pts) if full else pts, float(length * step)))
    return out
