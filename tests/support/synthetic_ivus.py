"""Small synthetic IVUS frames for unit tests of srservice.analysis (independent of the phantom).

Polar model about the catheter: bright ring-down, speckled blood, plaque, dark media, bright
adventitia; optional calcium arc (bright thin leading edge + acoustic shadow + one
reverberation), guidewire (bright spot near the catheter + narrow shadow) and attenuated plaque
(shadow without a bright edge). Speckle is independent in every frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from srservice.analysis.types import Pullback


@dataclass(frozen=True)
class Synth:
    """What to draw (mm and degrees)."""

    frames: int = 8
    size: int = 160
    ps: float = 0.03
    lumen_r: float = 1.2
    eem_r: float = 2.0
    calcium: tuple[float, float] | None = None  # (start_deg, extent_deg)
    calcium_depth: float = 0.1  # leading edge beyond the lumen (mm)
    wire_deg: float | None = None
    wire_shadow_deg: float = 12.0
    attenuated: tuple[float, float] | None = None
    lumen_offset: tuple[float, float] = (0.0, 0.0)  # lumen centre relative to the catheter (mm)
    seed: int = 0


def _in_arc(theta: npt.NDArray[np.float64], arc: tuple[float, float]) -> npt.NDArray[np.bool_]:
    return np.asarray(np.mod(theta - arc[0], 360.0) < arc[1])


def make_frames(s: Synth) -> npt.NDArray[np.uint8]:
    """Render ``s.frames`` frames of ``s.size`` x ``s.size`` pixels."""
    rng = np.random.default_rng(s.seed)
    c = (s.size - 1) / 2.0
    yy, xx = np.mgrid[0 : s.size, 0 : s.size].astype(np.float64)
    dx, dy = (xx - c) * s.ps, (yy - c) * s.ps
    rho = np.hypot(dx, dy)
    theta = np.mod(np.degrees(np.arctan2(dy, dx)), 360.0)
    lx, ly = dx - s.lumen_offset[0], dy - s.lumen_offset[1]
    r = np.hypot(lx, ly)  # distance from the lumen centre
    base = np.full(rho.shape, 60.0)
    base[r < s.lumen_r] = 45.0
    base[(r >= s.lumen_r) & (r < s.eem_r - 0.1)] = 115.0
    base[(r >= s.eem_r - 0.1) & (r < s.eem_r)] = 55.0
    base[(r >= s.eem_r) & (r < s.eem_r + 0.2)] = 210.0
    shadow = np.zeros(rho.shape, dtype=bool)
    bright = np.zeros(rho.shape, dtype=bool)
    if s.calcium is not None:
        arc = _in_arc(theta, s.calcium)
        edge_r = s.lumen_r + s.calcium_depth
        bright |= arc & (r >= edge_r) & (r < edge_r + 0.07)
        shadow |= arc & (r >= edge_r + 0.07)
    if s.attenuated is not None:
        arc = _in_arc(theta, s.attenuated)
        start = s.lumen_r + 0.1
        fade = np.exp(-np.maximum(r - start, 0.0) / 0.08)
        base = np.where(arc & (r > start), base * fade + 3.0, base)
    wire = np.zeros(rho.shape, dtype=bool)
    if s.wire_deg is not None:
        d = np.abs(np.mod(theta - s.wire_deg + 180.0, 360.0) - 180.0)
        wire = (d < 3.0) & (np.abs(rho - 0.75) < 0.04)
        shadow |= (d < s.wire_shadow_deg / 2) & (rho > 0.79)
    base = np.where(shadow, 6.0, base)
    ring = np.abs(rho - 0.45) < 0.06
    out = np.empty((s.frames, s.size, s.size), dtype=np.uint8)
    for k in range(s.frames):
        speckle = rng.gamma(4.0, 0.25, size=rho.shape)
        img = base * speckle
        img = np.where(bright | wire, 200.0 + 55.0 * speckle, img)
        img = np.where(ring, 180.0 + 50.0 * speckle, img)
        img = np.where(rho < 0.38, 0.0, img)
        img = np.where(rho > (s.size / 2 - 2) * s.ps, 0.0, img)
        out[k] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def make_pullback(s: Synth, with_center: bool = True) -> Pullback:
    """The frames as a :class:`Pullback` (0.1 mm between frames)."""
    c = (s.size - 1) / 2.0
    return Pullback(frames=make_frames(s), pixel_spacing_mm=s.ps, frame_spacing_mm=0.1,
                    catheter_center=(c, c) if with_center else None)
