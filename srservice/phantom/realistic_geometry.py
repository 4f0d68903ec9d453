"""Per-frame anatomy of a realistic synthetic pullback (console-export look).

The vessel, lumen, EEM, calcium and nodule geometry come from
:func:`srservice.phantom.geometry.build_anatomy` (the clean phantom's anatomy, whose truth rules
are in :mod:`srservice.phantom.truth`). This module adds what real console exports show and the
clean phantom does not:

- the catheter touching the lumen wall over stretches of the pullback;
- a guidewire at a slowly drifting angle with a 10-40 degree shadow;
- bright fibrous plaque without a shadow;
- a display-depth (zoom) change: from a given frame on, the image is drawn at another pixel
  spacing than the one in the header, so the field-of-view ring and the catheter change size;
- per-frame assessability with a reason (guide catheter, side-branch take-off, display depth
  changed), the quality gates a reader applies (Mintz et al., JACC 2001;37:1478-92, IVUS
  consensus: frames inside the guide catheter and side-branch ostia are not measured).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from srservice.phantom.geometry import (
    CATHETER_RADIUS_MM,
    NPHI,
    PHI_DEG,
    FrameAnatomy,
    Guidewire,
    build_anatomy,
    in_arc,
)
from srservice.phantom.spec import CaseSpec, SegmentFeature

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

#: Reasons a frame is not assessable (truth and reports use these words).
REASON_GUIDE = "catheter inside the guide catheter"
REASON_BRANCH = "side-branch take-off"
REASON_DEPTH = "display depth changed"


@dataclass(frozen=True)
class RealisticSpec:
    """A realistic pullback: a clean-phantom :class:`CaseSpec` plus the export's look.

    Attributes
    ----------
    base : CaseSpec
        Geometry, acquisition and lesions (lengths in mm along the pullback).
    touch : tuple of (float, float)
        Stretches ``(start_mm, end_mm)`` where the catheter touches the lumen wall.
    depth_change_mm : float or None
        Position from which the display depth changes (None: no change).
    depth_scale : float
        Pixel spacing after the change divided by the header's (> 1: zoomed out).
    wire_drift_deg : float
        Total drift of the guidewire angle over the pullback (slow, smooth).
    fibrous : tuple of SegmentFeature
        Bright fibrous plaque without a shadow.
    shadow_keep : float
        Linear amplitude kept behind calcium (0.08-0.2 gives a grey shadow ratio of ~0.1-0.3).
    edge_gap_frac : float
        Fraction of a calcium leading edge drawn dim (gaps between bright fragments).
    blood_db : float
        Blood level relative to plaque (dB); near 0 at 50-60 MHz.
    jpeg : bool
        Export with JPEG Baseline, as consoles do.
    """

    base: CaseSpec
    touch: tuple[tuple[float, float], ...] = ()
    depth_change_mm: float | None = None
    depth_scale: float = 1.25
    wire_drift_deg: float = 70.0
    fibrous: tuple[SegmentFeature, ...] = ()
    shadow_keep: float = 0.11
    edge_gap_frac: float = 0.12
    blood_db: float = -7.0
    jpeg: bool = False

    @property
    def name(self) -> str:
        """Case name."""
        return self.base.name


@dataclass(frozen=True)
class RealisticFrame:
    """One frame: the anatomy plus display and quality facts."""

    anatomy: FrameAnatomy
    pixel_spacing_mm: float
    touching: bool
    side_branch: bool
    guide: bool
    depth_changed: bool
    fibrous: B

    @property
    def reason(self) -> str | None:
        """Why a reader would not measure this frame (None: assessable)."""
        if self.guide:
            return REASON_GUIDE
        if self.depth_changed:
            return REASON_DEPTH
        if self.side_branch:
            return REASON_BRANCH
        return None


def _slow(rng: np.random.Generator, z: F64, amp: float) -> F64:
    """Smooth random function of ``z`` bounded by ``amp`` (a few sinusoids)."""
    out = np.zeros_like(z)
    span = max(float(z[-1] - z[0]), 1.0) if len(z) > 1 else 1.0
    for _ in range(3):
        period = span * rng.uniform(0.6, 2.5)
        out += np.sin(2 * np.pi * z / period + rng.uniform(0, 2 * np.pi))
    return np.asarray(amp * out / 3.0)


def _touch_center(fa: FrameAnatomy, angle_deg: float) -> tuple[float, float]:
    """Lumen centre offset putting the catheter against the wall at ``angle_deg``."""
    k = round(np.mod(angle_deg, 360.0) * NPHI / 360.0) % NPHI
    d = float(fa.r_lumen[k]) - CATHETER_RADIUS_MM - 0.015
    a = np.deg2rad(angle_deg)
    cos, sin = np.cos(np.deg2rad(PHI_DEG)), np.sin(np.deg2rad(PHI_DEG))
    for _ in range(40):
        lc = (-d * np.cos(a), -d * np.sin(a))
        px = lc[0] + fa.r_lumen * cos
        py = lc[1] + fa.r_lumen * sin
        if float(np.hypot(px, py).min()) >= CATHETER_RADIUS_MM + 0.01:
            return float(lc[0]), float(lc[1])
        d -= 0.01
    return fa.lumen_center_mm


def build_realistic(spec: RealisticSpec) -> list[RealisticFrame]:
    """Return the frames of ``spec`` (deterministic given ``spec.base.seed``)."""
    base = spec.base
    anatomy = build_anatomy(base)
    rng = np.random.default_rng(base.seed + 4242)
    n = base.frame_count
    sp = base.frame_spacing_mm
    z: F64 = np.arange(n, dtype=np.float64) * sp
    wire0 = float(anatomy[0].guidewire.theta_deg) if anatomy[0].guidewire else 0.0
    drift = spec.wire_drift_deg * (z / max(float(z[-1]), 1e-6) - 0.5) + _slow(rng, z, 6.0)
    wire_rho = 0.72 + 0.12 * (0.5 + 0.5 * np.sin(z / 3.0 + rng.uniform(0, 6)))
    touch_angle = float(rng.uniform(0, 360)) + _slow(rng, z, 40.0)
    out: list[RealisticFrame] = []
    for k, fa in enumerate(anatomy):
        gw = fa.guidewire
        if gw is not None:
            gw = Guidewire(theta_deg=float(np.mod(wire0 + drift[k], 360.0)),
                           rho_mm=float(wire_rho[k]), shadow_deg=gw.shadow_deg)
        touching = any(a <= z[k] <= b for a, b in spec.touch) and fa.assessable
        lc = _touch_center(fa, float(touch_angle[k])) if touching else fa.lumen_center_mm
        fa2 = dataclasses.replace(fa, guidewire=gw, lumen_center_mm=lc)
        changed = spec.depth_change_mm is not None and z[k] >= spec.depth_change_mm
        ps = base.pixel_spacing_mm * (spec.depth_scale if changed else 1.0)
        fib = np.zeros(NPHI, dtype=bool)
        for f in spec.fibrous:
            if abs(z[k] - f.center_mm) <= f.length_mm / 2.0:
                fib |= in_arc(PHI_DEG, f.angle_deg - f.arc_deg / 2.0, f.arc_deg)
        out.append(RealisticFrame(
            anatomy=fa2, pixel_spacing_mm=ps, touching=touching,
            side_branch=bool(fa.branch.any()) and fa.assessable, guide=not fa.assessable,
            depth_changed=bool(changed), fibrous=fib,
        ))
    return out


__all__ = [
    "REASON_BRANCH",
    "REASON_DEPTH",
    "REASON_GUIDE",
    "RealisticFrame",
    "RealisticSpec",
    "build_realistic",
]
