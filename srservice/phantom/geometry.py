"""Per-frame anatomy of a synthetic pullback, in millimetres, built from a :class:`CaseSpec`.

Each frame is described in polar form about the lumen centre (angle ``phi`` in degrees, the
image convention of ``srservice.analysis.types``): lumen radius, EEM radius, calcium leading
edge radius (NaN where there is none) and flags for superficial calcium, attenuated plaque and
side branches, sampled on :data:`NPHI` angles. The lumen centre moves relative to the catheter
(heart motion); the catheter is at the image centre. Lumen shapes use even harmonics only, so
the lumen centroid equals the lumen centre except where a nodule bulges into the lumen.

Superficial calcium follows the IVUS consensus convention of docs/scoring.md: the leading edge
lies in the inner half of the plaque + media thickness along the ray (fraction < 0.5); deep
calcium in the outer half.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.ndimage import uniform_filter1d

from srservice.phantom.spec import CaseSpec, LesionSpec, SegmentFeature

#: Angular samples of the per-frame tables (0.25 degree).
NPHI = 1440
PHI_DEG = np.arange(NPHI, dtype=np.float64) * (360.0 / NPHI)
_PHI = np.deg2rad(PHI_DEG)
#: Radius of the catheter ring-down ring (mm).
CATHETER_RADIUS_MM = 0.5
#: Media thickness (mm).
MEDIA_MM = 0.1
#: Radius of the guide catheter inner wall (mm).
GUIDE_RADIUS_MM = 0.95

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Guidewire:
    """Guidewire position about the catheter: angle (deg), distance (mm), shadow width (deg)."""

    theta_deg: float
    rho_mm: float
    shadow_deg: float


@dataclass(frozen=True)
class FrameAnatomy:
    """Anatomy of one frame (see module docstring); radii in mm on :data:`PHI_DEG`."""

    index: int
    assessable: bool
    lumen_center_mm: tuple[float, float]
    r_lumen: F64
    r_lumen_smooth: F64
    r_eem: F64
    r_edge: F64
    superficial: B
    nodule_weight: F64
    protrusion_mm: float
    nodule: bool
    attenuated: B
    branch: B
    guidewire: Guidewire | None
    calcium_rendered: bool
    gain_db: float
    reverberations: int
    lesion_index: int


def in_arc(phi_deg: F64, start_deg: float, extent_deg: float) -> B:
    """Return where ``phi`` lies in the arc ``[start, start + extent)`` (wrapping at 360)."""
    if extent_deg >= 360.0:
        return np.ones(phi_deg.shape, dtype=bool)
    return np.asarray(np.mod(phi_deg - start_deg, 360.0) < extent_deg)


def _smoothstep(x: F64) -> F64:
    x = np.clip(x, 0.0, 1.0)
    return np.asarray(x * x * (3.0 - 2.0 * x))


def lesion_arc(spec: CaseSpec, lesion: LesionSpec, k: int) -> float:
    """Designed arc (deg) of ``lesion`` at 0-based frame ``k`` (0 outside the lesion)."""
    sp = spec.frame_spacing_mm
    kc = round(lesion.center_mm / sp)
    half = max(1, round(lesion.length_mm / sp / 2.0))
    d = abs(k - kc)
    if d > half:
        return 0.0
    m = round(lesion.over_270_mm / sp) if lesion.max_arc_deg > 270.0 else 0
    c = round(lesion.circumferential_mm / sp)
    if lesion.max_arc_deg > 270.0:
        m = max(m, 1)
    if lesion.max_arc_deg >= 360.0:
        c = max(c, 1)
    m = max(m, c)
    lo_m = kc - m // 2
    lo_c = kc - c // 2
    if c > 0 and lo_c <= k < lo_c + c:
        return 360.0
    if m > 0 and lo_m <= k < lo_m + m:
        top = lesion.max_arc_deg if lesion.max_arc_deg < 360.0 else 354.0
        if c > 0:
            top = min(top, 354.0)
        half_m = max(1.0, m / 2.0)
        t = min(1.0, abs(k + 0.5 - (lo_m + m / 2.0)) / half_m) if m > 1 else 0.0
        if c == 0 and k == kc:
            t = 0.0
        return float(top - (top - 280.0) * t)
    a0 = 264.0 if m > 0 else lesion.max_arc_deg
    inner = m / 2.0 if m > 0 else 0.0
    t = (d - inner) / max(1.0, half - inner)
    if m == 0 and d == 0:
        return float(a0)
    return float(max(25.0, a0 - (a0 - 30.0) * min(1.0, max(0.0, t))))


def _window(z: F64, center: float, half: float, ramp: float) -> F64:
    """1 inside ``[center-half, center+half]``, smooth ramp of ``ramp`` mm outside."""
    d = np.abs(z - center) - half
    return np.asarray(1.0 - _smoothstep(d / max(ramp, 1e-6)))


def _feature_mask(
    feats: tuple[SegmentFeature, ...], z: float, rot: float
) -> B:
    mask = np.zeros(NPHI, dtype=bool)
    for f in feats:
        if abs(z - f.center_mm) <= f.length_mm / 2.0:
            mask |= in_arc(PHI_DEG, f.angle_deg + rot - f.arc_deg / 2.0, f.arc_deg)
    return mask


def _bump(rng: np.random.Generator, irregular: bool) -> tuple[F64, F64]:
    """Return (offsets_deg, heights) of the lobes of a protrusion profile."""
    if irregular:
        offs = np.array([-13.0, 0.0, 12.0]) + rng.uniform(-3, 3, 3)
        hts = np.array([0.75, 1.0, 0.85]) * rng.uniform(0.85, 1.0, 3)
        return offs, hts
    return np.array([0.0]), np.array([1.0])


def build_anatomy(spec: CaseSpec) -> list[FrameAnatomy]:
    """Return the per-frame anatomy of ``spec`` (deterministic given ``spec.seed``)."""
    rng = np.random.default_rng(spec.seed)
    n = spec.frame_count
    sp = spec.frame_spacing_mm
    z: F64 = np.arange(n, dtype=np.float64) * sp
    # Vessel diameter along the pullback: taper + lesion sites (bowl with min at the centre).
    taper = float(rng.uniform(0.0, 0.012))
    d_ref = spec.reference_diameter_mm + taper * (z - z.mean()) + 0.08 * np.sin(
        2 * np.pi * z / rng.uniform(8, 15) + rng.uniform(0, 6)
    )
    diam = d_ref.copy()
    pb = np.full(n, rng.uniform(0.3, 0.4))
    for site in spec.lesions:
        w = _window(z, site.center_mm, site.length_mm / 2.0, 2.0)
        bowl = site.vessel_diameter_mm + 0.12 * (
            (z - site.center_mm) / max(site.length_mm, 1.0)
        ) ** 2
        diam = diam + (bowl - diam) * w
        pb = pb + (rng.uniform(0.58, 0.66) - pb) * w
    # Case constants.
    l2, l4 = rng.uniform(0.03, 0.09), rng.uniform(0.0, 0.03)
    a2, a4 = rng.uniform(0, np.pi), rng.uniform(0, np.pi)
    e1, e2 = rng.uniform(0.02, 0.07), rng.uniform(0.02, 0.06)
    b1, b2 = rng.uniform(0, 2 * np.pi), rng.uniform(0, np.pi)
    twist = rng.uniform(-1.0, 1.0)  # deg per mm
    super_frac = rng.uniform(0.12, 0.28)
    deep_frac = rng.uniform(0.62, 0.72)
    gw_angle = spec.guidewire_angle_deg
    if gw_angle is None:
        base = spec.lesions[0].center_angle_deg if spec.lesions else 90.0
        gw_angle = float(base + 180.0 + rng.uniform(-25, 25))
    hr_phase0 = rng.uniform(0, 2 * np.pi)
    gain = rng.normal(0.0, spec.gain_jitter_db, n)
    gain = uniform_filter1d(gain, 3, mode="nearest") + np.where(
        rng.random(n) < 0.02, rng.normal(0, 3 * spec.gain_jitter_db, n), 0.0
    )
    lesion_of = np.full(n, -1)
    for li, spec_les in enumerate(spec.lesions):
        for k in range(n):
            if lesion_arc(spec, spec_les, k) > 0:
                lesion_of[k] = li
    flicker = np.zeros(n, dtype=bool)
    if spec.flicker_prob > 0:
        cand = rng.random(n) < spec.flicker_prob
        for k in range(1, n - 1):
            if cand[k] and lesion_of[k] >= 0 and not flicker[k - 1]:
                flicker[k] = True
    bump_rng = np.random.default_rng(spec.seed + 7919)
    n_guide = spec.guide_catheter_frames
    frames: list[FrameAnatomy] = []
    for k in range(n):
        t = k * spec.frame_time_ms / 1000.0
        ph = 2 * np.pi * spec.heart_rate_hz * t + hr_phase0
        mot = spec.motion
        scale = 1.0 + mot * 0.012 * np.sin(ph)
        rot = twist * z[k] + mot * 3.0 * np.sin(ph + 1.1) + rng.normal(0, 0.3 * mot)
        r_e_mean = diam[k] / 2.0 * scale
        r_l_mean = r_e_mean * np.sqrt(1.0 - pb[k])
        r_eem = r_e_mean * (
            1.0 + e2 * np.cos(2 * (_PHI - b2 - np.deg2rad(rot))) + e1 * np.cos(_PHI - b1)
        )
        r_lum_s = r_l_mean * (
            1.0
            + l2 * np.cos(2 * (_PHI - a2 - np.deg2rad(rot)))
            + l4 * np.cos(4 * (_PHI - a4 - np.deg2rad(rot)))
        )
        r_lum_s = np.minimum(r_lum_s, r_eem - MEDIA_MM - 0.12)
        li = int(lesion_of[k])
        les: LesionSpec | None = spec.lesions[li] if li >= 0 else None
        arc = lesion_arc(spec, les, k) if les is not None else 0.0
        ca = (les.center_angle_deg if les is not None else 90.0) + rot
        r_lum = r_lum_s.copy()
        nod_w = np.zeros(NPHI)
        protrusion = 0.0
        is_nodule = False
        if les is not None and les.protrusion_mm > 0 and arc > 0:
            kc = round(les.center_mm / sp)
            hk = max(1, round(0.8 / sp))
            if abs(k - kc) <= hk:
                protrusion = les.protrusion_mm * (1.0 - 0.45 * (abs(k - kc) / hk) ** 2)
                offs, hts = _bump(bump_rng, les.nodule)
                width = 9.0 if les.nodule else 28.0
                prof = np.zeros(NPHI)
                for o, h in zip(offs, hts, strict=True):
                    dphi = np.mod(PHI_DEG - (ca + o) + 180.0, 360.0) - 180.0
                    prof = np.maximum(prof, h * np.exp(-0.5 * (dphi / width) ** 2))
                prof /= prof.max()
                nod_w = prof
                r_lum = r_lum_s - protrusion * prof
                is_nodule = les.nodule and protrusion >= 0.2
        # Calcium pieces.
        r_edge = np.full(NPHI, np.nan)
        superficial = np.zeros(NPHI, dtype=bool)
        if les is not None and arc > 0:
            deep_lesion = les.depth == "deep"
            frac = deep_frac if deep_lesion else super_frac
            if arc >= 360.0:
                pieces = [(0.0, 360.0)]
            elif les.pieces >= 2 and arc > 60.0:
                g = (360.0 - arc) / 2.0
                half = arc / 2.0
                pieces = [
                    (ca - half - g / 2.0, half),
                    (ca + g / 2.0, half),
                ]
            else:
                pieces = [(ca - arc / 2.0, arc)]
            plaque = r_eem - r_lum
            edge_r = r_lum + frac * plaque * (1.0 - nod_w)
            for start, ext in pieces:
                m = in_arc(PHI_DEG, start, ext)
                r_edge[m] = edge_r[m]
                superficial[m] = not deep_lesion
            extra = les.deep_extra_arc_deg * min(1.0, arc / max(les.max_arc_deg, 1.0))
            extra = min(extra, 360.0 - arc - 30.0)
            if extra > 5.0 and not deep_lesion:
                m = in_arc(PHI_DEG, ca + 180.0 - extra / 2.0, extra)
                r_edge[m] = (r_lum + deep_frac * plaque)[m]
        gw = None
        if spec.guidewire:
            gw = Guidewire(
                theta_deg=float(np.mod(gw_angle + rot * 0.5, 360.0)),
                rho_mm=0.78 + 0.05 * np.sin(ph * 0.5),
                shadow_deg=spec.guidewire_shadow_deg,
            )
        # Catheter eccentricity: away from the calcium, limited by the lumen size.
        r_min = float(r_lum.min())
        off = float(np.clip(0.35 * (r_min - 1.05), 0.0, 0.45))
        ang = np.deg2rad(ca)
        jx = mot * 0.05 * np.sin(ph) + rng.normal(0, 0.01 * mot)
        jy = mot * 0.05 * np.cos(ph + 0.7) + rng.normal(0, 0.01 * mot)
        lc = (off * np.cos(ang) + jx, off * np.sin(ang) + jy)
        frames.append(
            FrameAnatomy(
                index=k,
                assessable=k < n - n_guide,
                lumen_center_mm=(float(lc[0]), float(lc[1])),
                r_lumen=r_lum,
                r_lumen_smooth=r_lum_s,
                r_eem=r_eem,
                r_edge=r_edge,
                superficial=superficial,
                nodule_weight=nod_w,
                protrusion_mm=float(protrusion),
                nodule=is_nodule,
                attenuated=_feature_mask(spec.attenuated, float(z[k]), rot),
                branch=_feature_mask(spec.side_branches, float(z[k]), rot),
                guidewire=gw,
                calcium_rendered=not bool(flicker[k]),
                gain_db=float(gain[k]),
                reverberations=les.reverberations if les is not None else 0,
                lesion_index=li,
            )
        )
    return frames
