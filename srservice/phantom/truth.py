"""Ground truth of a synthetic pullback, computed from the anatomy with the documented rules.

Rules (docs/scoring.md, Zhang et al. Circ Cardiovasc Interv 2021;14:e010296):

- Arcs and angular masks are measured about the LUMEN CENTROID (types.py convention), on
  :data:`~srservice.analysis.types.ANGLE_BINS` bins; separate pieces add up.
- Guidewire shadow: the hidden part of an arc counts as calcium when there is calcium on both
  sides of the shadow, otherwise it does not (the bridging rule).
- Truth is the anatomy: a frame whose rendered image lost its calcium (``calcium_rendered``
  False, heart-motion flicker) keeps its calcium in the truth.
- Length of > 270-degree superficial calcium: longest run of consecutive frames with superficial
  arc > 270 (one unassessable frame inside does not break it), (last - first + 1) x spacing.
- Maximum calcium site: largest superficial arc, ties -> smallest mean EEM diameter.
- Mean EEM diameter: mean of the maximum and minimum diameters through the EEM centroid.
- Calcified nodule: calcium protruding >= 0.2 mm into the lumen with an irregular convex surface.
- In side branches the truth contours are the smooth main-vessel contours across the ostium.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from srservice.analysis.types import ANGLE_BINS, LesionFeatures
from srservice.phantom.geometry import NPHI, PHI_DEG, FrameAnatomy

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class FrameTruth:
    """Ground truth of one frame (fields mirror ``FrameMeasurement`` where they exist)."""

    frame: int
    assessable: bool
    center: tuple[float, float]
    catheter_center: tuple[float, float]
    lumen_contour: F64 | None
    eem_contour: F64 | None
    lumen_area_mm2: float | None
    eem_area_mm2: float | None
    eem_mean_diameter_mm: float | None
    calcium_mask: B
    superficial_calcium_mask: B
    calcium_arc_deg: float
    superficial_calcium_arc_deg: float
    calcified_nodule: bool
    protrusion_mm: float
    eem_shadowed_fraction: float
    calcium_rendered: bool
    guidewire_hidden_mask: B
    calcium_depth_mm: F64 | None = None
    """Per bin: lumen border to calcium leading edge (mm) along the ray; NaN without calcium."""


@dataclass(frozen=True)
class ExpectedScore:
    """IVUS calcium score components (Zhang 2021): one point each."""

    long_calcium: int
    circumferential: int
    nodule: int
    small_vessel: int

    @property
    def total(self) -> int:
        """Sum of the four points (0-4)."""
        return self.long_calcium + self.circumferential + self.nodule + self.small_vessel


@dataclass(frozen=True)
class CaseTruth:
    """Per-frame truth, per-lesion features and expected scores of a case."""

    frames: tuple[FrameTruth, ...]
    lesions: tuple[LesionFeatures, ...]
    scores: tuple[ExpectedScore, ...]

    @property
    def expected_score(self) -> int:
        """Highest lesion score of the case (0 without lesions)."""
        return max((s.total for s in self.scores), default=0)


def expected_score(lesion: LesionFeatures) -> ExpectedScore:
    """Return the IVUS calcium score of ``lesion`` (local re-implementation for the phantom).

    One point each: > 270-degree superficial calcium longer than 5 mm; 360 degrees of
    superficial calcium; calcified nodule; vessel diameter at the maximum calcium site < 3.5 mm.
    """
    length = lesion.length_superficial_calcium_over_270_mm or 0.0
    diam = lesion.vessel_diameter_at_max_calcium_mm
    return ExpectedScore(
        long_calcium=int(length > 5.0),
        circumferential=int(lesion.circumferential_superficial_calcium),
        nodule=int(lesion.calcified_nodule),
        small_vessel=int(diam is not None and diam < 3.5),
    )


def polygon_area_centroid(poly: F64) -> tuple[float, tuple[float, float]]:
    """Return (area, (cx, cy)) of a closed polygon (shoelace formula)."""
    x, y = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    cross = x * y1 - x1 * y
    a = cross.sum() / 2.0
    cx = ((x + x1) * cross).sum() / (6.0 * a)
    cy = ((y + y1) * cross).sum() / (6.0 * a)
    return float(abs(a)), (float(cx), float(cy))


def mean_diameter(poly: F64, center: tuple[float, float]) -> float:
    """Mean of the max and min chords through ``center`` of a star-shaped polygon (pixels)."""
    d = poly - np.asarray(center)
    ang = np.mod(np.arctan2(d[:, 1], d[:, 0]), 2 * np.pi)
    rad = np.hypot(d[:, 0], d[:, 1])
    order = np.argsort(ang)
    ang, rad = ang[order], rad[order]
    q = np.deg2rad(np.arange(0.0, 360.0, 0.5))
    r_q = np.interp(q, ang, rad, period=2 * np.pi)
    half = len(q) // 2
    chords = r_q[:half] + r_q[half:]
    return float((chords.max() + chords.min()) / 2.0)


def _to_bins(angles_deg: F64) -> B:
    mask = np.zeros(ANGLE_BINS, dtype=bool)
    idx = np.floor(np.mod(angles_deg, 360.0) * ANGLE_BINS / 360.0).astype(int) % ANGLE_BINS
    mask[idx] = True
    return mask


def _bridge(mask: B, hidden: B) -> B:
    """Apply the guidewire bridging rule to ``mask`` over the ``hidden`` bins (circular)."""
    if not hidden.any() or hidden.all():
        return mask
    out = mask.copy()
    n = len(mask)
    start = int(np.argmin(hidden))  # a visible bin
    i = 0
    while i < n:
        j = (start + i) % n
        if hidden[j]:
            run = []
            while hidden[(start + i) % n] and i < n:
                run.append((start + i) % n)
                i += 1
            before = mask[(run[0] - 1) % n]
            after = mask[(run[-1] + 1) % n]
            out[run] = bool(before and after)
        else:
            i += 1
    return out


def frame_truth(
    fa: FrameAnatomy, catheter_px: tuple[float, float], ps: float
) -> FrameTruth:
    """Return the truth of one frame from its anatomy (pixel coordinates ``(x, y)``)."""
    empty = np.zeros(ANGLE_BINS, dtype=bool)
    if not fa.assessable:
        return FrameTruth(
            fa.index + 1, False, catheter_px, catheter_px, None, None, None, None, None,
            empty, empty.copy(), 0.0, 0.0, False, 0.0, 0.0, fa.calcium_rendered, empty.copy(),
        )
    lc = (catheter_px[0] + fa.lumen_center_mm[0] / ps, catheter_px[1] + fa.lumen_center_mm[1] / ps)
    cos, sin = np.cos(np.deg2rad(PHI_DEG)), np.sin(np.deg2rad(PHI_DEG))
    step = NPHI // 360
    lum_full = np.stack([lc[0] + fa.r_lumen / ps * cos, lc[1] + fa.r_lumen / ps * sin], axis=1)
    eem_full = np.stack([lc[0] + fa.r_eem / ps * cos, lc[1] + fa.r_eem / ps * sin], axis=1)
    lum_area, centroid = polygon_area_centroid(lum_full)
    eem_area, eem_c = polygon_area_centroid(eem_full)
    diam = mean_diameter(eem_full, eem_c) * ps
    has = ~np.isnan(fa.r_edge)
    edge_pts = np.stack(
        [lc[0] + np.nan_to_num(fa.r_edge) / ps * cos, lc[1] + np.nan_to_num(fa.r_edge) / ps * sin],
        axis=1,
    )
    ang_c = np.degrees(np.arctan2(edge_pts[:, 1] - centroid[1], edge_pts[:, 0] - centroid[0]))
    calc = _to_bins(ang_c[has])
    sup = _to_bins(ang_c[has & fa.superficial])
    depth = np.full(ANGLE_BINS, np.nan)
    if has.any():
        bins = np.floor(np.mod(ang_c[has], 360.0) * ANGLE_BINS / 360.0).astype(int) % ANGLE_BINS
        np.fmin.at(depth, bins, (fa.r_edge - fa.r_lumen)[has])
    # Bins (about the centroid) hidden by the guidewire shadow, seen from the catheter.
    hidden = np.zeros(ANGLE_BINS, dtype=bool)
    gw = fa.guidewire
    if gw is not None:
        ang_lum_c = np.degrees(
            np.arctan2(lum_full[:, 1] - centroid[1], lum_full[:, 0] - centroid[0])
        )
        ang_cath = np.degrees(
            np.arctan2(lum_full[:, 1] - catheter_px[1], lum_full[:, 0] - catheter_px[0])
        )
        dth = np.abs(np.mod(ang_cath - gw.theta_deg + 180.0, 360.0) - 180.0)
        in_sh = dth < gw.shadow_deg / 2.0
        if in_sh.any():
            hidden = _to_bins(ang_lum_c[in_sh])
            calc = _bridge(calc, hidden)
            sup = _bridge(sup, hidden) & calc
    # EEM fraction hidden behind calcium (leading edge nearer the catheter on the same ray).
    eem_ang = np.mod(np.degrees(np.arctan2(eem_full[:, 1] - catheter_px[1],
                                           eem_full[:, 0] - catheter_px[0])), 360.0)
    sh_start = np.full(720, np.inf)
    if has.any():
        e_ang = np.mod(np.degrees(np.arctan2(edge_pts[has, 1] - catheter_px[1],
                                             edge_pts[has, 0] - catheter_px[0])), 360.0)
        e_rho = np.hypot(edge_pts[has, 0] - catheter_px[0], edge_pts[has, 1] - catheter_px[1])
        np.minimum.at(sh_start, (e_ang * 2).astype(int) % 720, e_rho)
    eem_rho = np.hypot(eem_full[:, 0] - catheter_px[0], eem_full[:, 1] - catheter_px[1])
    shadowed = eem_rho > sh_start[(eem_ang * 2).astype(int) % 720]
    if gw is not None:
        shadowed |= np.abs(np.mod(eem_ang - gw.theta_deg + 180.0, 360.0) - 180.0) < (
            gw.shadow_deg / 2.0
        )
    shadowed |= fa.attenuated
    return FrameTruth(
        frame=fa.index + 1,
        assessable=True,
        center=centroid,
        catheter_center=catheter_px,
        lumen_contour=lum_full[::step].copy(),
        eem_contour=eem_full[::step].copy(),
        lumen_area_mm2=lum_area * ps * ps,
        eem_area_mm2=eem_area * ps * ps,
        eem_mean_diameter_mm=diam,
        calcium_mask=calc,
        superficial_calcium_mask=sup,
        calcium_arc_deg=float(calc.sum() * 360.0 / ANGLE_BINS),
        superficial_calcium_arc_deg=float(sup.sum() * 360.0 / ANGLE_BINS),
        calcified_nodule=fa.nodule,
        protrusion_mm=fa.protrusion_mm,
        eem_shadowed_fraction=float(shadowed.mean()),
        calcium_rendered=fa.calcium_rendered,
        guidewire_hidden_mask=hidden,
        calcium_depth_mm=np.where(calc, depth, np.nan),
    )


def longest_over_270_run(frames: list[FrameTruth]) -> tuple[int, int] | None:
    """Return 1-based (first, last) of the longest > 270-degree superficial run, or None.

    A single unassessable frame between qualifying frames does not break the run.
    """
    best: tuple[int, int] | None = None
    start: int | None = None
    last: int | None = None
    i = 0
    while i < len(frames):
        f = frames[i]
        if f.assessable and f.superficial_calcium_arc_deg > 270.0:
            if start is None:
                start = f.frame
            last = f.frame
        elif (
            not f.assessable and start is not None and i + 1 < len(frames)
            and frames[i + 1].assessable and frames[i + 1].superficial_calcium_arc_deg > 270.0
        ):
            pass  # single unassessable gap
        else:
            if start is not None and last is not None and (
                best is None or last - start > best[1] - best[0]
            ):
                best = (start, last)
            start = last = None
        i += 1
    if start is not None and last is not None and (
        best is None or last - start > best[1] - best[0]
    ):
        best = (start, last)
    return best


def lesion_features(
    frames: list[FrameTruth], first: int, last: int, spacing: float
) -> LesionFeatures | None:
    """Return the features of the calcified segment within 1-based frames [first, last]."""
    seg = [f for f in frames if first <= f.frame <= last]
    calc = [f for f in seg if f.calcium_arc_deg > 0]
    if not calc:
        return None
    s, e = calc[0].frame, calc[-1].frame
    seg = [f for f in seg if s <= f.frame <= e]
    ok = [f for f in seg if f.assessable]
    best = max(ok, key=lambda f: (f.superficial_calcium_arc_deg, -(f.eem_mean_diameter_mm or 0)))
    run = longest_over_270_run(seg)
    return LesionFeatures(
        start_frame=s,
        end_frame=e,
        max_calcium_frame=best.frame,
        max_superficial_calcium_arc_deg=best.superficial_calcium_arc_deg,
        length_superficial_calcium_over_270_mm=(run[1] - run[0] + 1) * spacing if run else 0.0,
        over_270_start_frame=run[0] if run else None,
        over_270_end_frame=run[1] if run else None,
        circumferential_superficial_calcium=any(
            bool(f.superficial_calcium_mask.all()) for f in ok
        ),
        calcified_nodule=any(f.calcified_nodule for f in ok),
        vessel_diameter_at_max_calcium_mm=best.eem_mean_diameter_mm,
        lumen_area_at_max_calcium_mm2=best.lumen_area_mm2,
        eem_interpolated_fraction_at_max_calcium=best.eem_shadowed_fraction,
        calcium_length_mm=(e - s + 1) * spacing,
    )
