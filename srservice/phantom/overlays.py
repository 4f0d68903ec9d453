"""Burnt-in display overlays of console exports.

Field-of-view ring, 1 mm calibration dots on the centre lines, text labels in the corners.
Coloured overlays make an RGB export.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

U8 = npt.NDArray[np.uint8]

#: Colour of the coloured overlays (cyan-ish, as many consoles draw their graphics).
OVERLAY_RGB = (40, 200, 255)


def overlay_mask(
    rows: int, center_px: tuple[float, float], fov_px: float, pixel_spacing_mm: float,
    labels: tuple[str, ...],
) -> npt.NDArray[np.bool_]:
    """Return the pixels covered by the overlays."""
    yy, xx = np.mgrid[0:rows, 0:rows]
    rr = np.hypot(xx - center_px[0], yy - center_px[1])
    mask = (rr >= fov_px + 0.5) & (rr < fov_px + 2.0)
    cx, cy = round(center_px[0]), round(center_px[1])
    step = 1.0 / pixel_spacing_mm
    n = int(fov_px / step)
    for s in range(-n, n + 1):
        if s == 0:
            continue
        off = round(s * step)
        for px, py in ((cx + off, cy), (cx, cy + off)):
            mask[max(py - 1, 0) : py + 1, max(px - 1, 0) : px + 1] = True
    img = Image.new("L", (rows, rows), 0)
    draw = ImageDraw.Draw(img)
    corners = [(3, 2), (rows - 6 * max(len(t) for t in labels) - 6, 2), (3, rows - 13)]
    for (x, y), text in zip(corners, labels, strict=False):
        draw.text((x, y), text, fill=255)
    out: npt.NDArray[np.bool_] = mask | (np.asarray(img) > 0)
    return out


def apply_overlays(frame: U8, mask: npt.NDArray[np.bool_], colour: bool) -> U8:
    """Burn the overlays into a grey frame; return grey (r, c) or RGB (r, c, 3)."""
    if not colour:
        out = frame.copy()
        out[mask] = 200
        return out
    rgb = np.repeat(frame[:, :, None], 3, axis=2)
    rgb[mask] = OVERLAY_RGB
    return rgb
