"""Realistic phantom cases, their ground truth, and the realistic accuracy suite.

:func:`make_realistic_case` renders a :class:`RealisticSpec` with the console-export image model
of :mod:`srservice.phantom.realistic_render` and computes the truth with the rules of
:mod:`srservice.phantom.truth`. :func:`truth_document` gives the truth JSON written beside
each DICOM file; its keys follow ``srservice analyze --json`` where they exist: ``frames[]``
(1-based ``frame``, ``assessable`` and ``reason``, areas, arcs, nodule), ``lesion`` (the
highest-scoring calcified segment), ``lesions[]`` and ``expected`` ``{score, L, C, N, D}``
(L: > 270-degree superficial calcium longer than 5 mm, C: 360 degrees, N: calcified nodule,
D: vessel diameter < 3.5 mm at the maximum calcium site; Zhang et al., Circ Cardiovasc Interv
2021;14:e010296).

:func:`realistic_suite` spans the score space 0-4 with every component on and off, arcs near
270 degrees, vessel diameters near 3.5 mm, and the confounders of real exports (bright fibrous
plaque, side branches, display-depth changes, a wandering guidewire, catheter against the
wall, the guide catheter, attenuated plaque, deep calcium).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from srservice.analysis.types import LesionFeatures, Pullback
from srservice.phantom.case import PhantomCase
from srservice.phantom.geometry import lesion_arc
from srservice.phantom.realistic_geometry import (
    RealisticFrame,
    RealisticSpec,
    build_realistic,
)
from srservice.phantom.realistic_render import (
    RenderState,
    burn_overlays,
    display_geometry,
    levels,
    overlay_layers,
    speckle_image,
    to_pixels,
)
from srservice.phantom.spec import CaseSpec, LesionSpec, SegmentFeature
from srservice.phantom.truth import (
    CaseTruth,
    ExpectedScore,
    FrameTruth,
    expected_score,
    frame_truth,
    lesion_features,
)

#: Version of the realistic image model (written into the truth files).
MODEL_VERSION = "1.0"


@dataclass(frozen=True)
class RealisticCase:
    """A rendered realistic pullback with its truth.

    ``case`` is a :class:`PhantomCase` (header pixel spacing, frames, truth) that the DICOM
    writer accepts; ``frames_info`` holds the per-frame display and quality facts.
    """

    spec: RealisticSpec
    case: PhantomCase
    frames_info: tuple[RealisticFrame, ...]

    @property
    def name(self) -> str:
        """Case name."""
        return self.spec.name

    def pullback(self) -> Pullback:
        """Return the pullback as the loader would (header spacing for every frame)."""
        return self.case.pullback()

    def calcium_free_frames(self) -> list[int]:
        """0-based assessable frames without calcium in them or their two neighbours each side.

        These are the calcium-free stretches whose image statistics are compared with real
        exports (:mod:`srservice.phantom.imagestats`).
        """
        tr = self.case.truth.frames
        reach = 2
        calc = np.array([f.calcium_arc_deg > 0 for f in tr])
        near = np.convolve(calc.astype(int), np.ones(2 * reach + 1, dtype=int), "same") > 0
        return [k for k, info in enumerate(self.frames_info)
                if not near[k] and info.reason is None and not info.side_branch]


def make_realistic_case(spec: RealisticSpec, *, render: bool = True) -> RealisticCase:
    """Render ``spec`` (deterministic given ``spec.base.seed``) and compute its truth.

    ``render=False`` computes the truth only (frames left black): fast, for suite checks.
    """
    base = spec.base
    if base.rows < 128 or base.frame_count < 2:
        raise ValueError("realistic cases need rows >= 128 and at least 2 frames")
    info = build_realistic(spec)
    center = ((base.rows - 1) / 2.0 + base.catheter_offset_px[0],
              (base.rows - 1) / 2.0 + base.catheter_offset_px[1])
    ps0 = base.pixel_spacing_mm
    fov_mm = (base.rows / 2.0 - 4.0) * ps0
    geo0 = display_geometry(base.rows, ps0, center, fov_mm)
    state = RenderState.new(spec, geo0.n_r)
    frames = np.zeros((base.frame_count, base.rows, base.rows), dtype=np.uint8)
    sp = base.frame_spacing_mm
    truths: list[FrameTruth] = []
    for k, rf in enumerate(info):
        if render:
            geo = display_geometry(base.rows, rf.pixel_spacing_mm, center, fov_mm)
            lv, att, blood = levels(spec, rf, geo, state, k * sp)
            polar = speckle_image(lv, att, blood, state, rf.anatomy.gain_db)
            img = to_pixels(geo, polar)
            depth = f"{2 * fov_mm * rf.pixel_spacing_mm / ps0:.0f}mm"
            label = f"{base.frequency_mhz:.0f}MHz {depth} F{k + 1}"
            ring, marks = overlay_layers(base.rows, center, geo.fov_px, rf.pixel_spacing_mm,
                                         label)
            frames[k] = burn_overlays(img, ring, marks)
        full = dataclasses.replace(rf.anatomy, assessable=True) if not rf.guide else rf.anatomy
        ft = frame_truth(full, center, rf.pixel_spacing_mm)
        if rf.reason is not None and ft.assessable:
            ft = dataclasses.replace(ft, assessable=False)
        truths.append(ft)
    lesions: list[LesionFeatures] = []
    scores: list[ExpectedScore] = []
    for les in base.lesions:
        ks = [k for k in range(base.frame_count) if lesion_arc(base, les, k) > 0]
        if not ks:
            continue
        lf = lesion_features(truths, ks[0] + 1, ks[-1] + 1, sp)
        if lf is not None:
            lesions.append(lf)
            scores.append(expected_score(lf))
    truth = CaseTruth(frames=tuple(truths), lesions=tuple(lesions), scores=tuple(scores))
    case = PhantomCase(spec=base, frames=frames, pixel_spacing_mm=ps0, frame_spacing_mm=sp,
                       catheter_center=center, truth=truth)
    return RealisticCase(spec=spec, case=case, frames_info=tuple(info))


def _r(v: float | None, nd: int = 4) -> float | None:
    return None if v is None else round(float(v), nd)


def _lesion_doc(lf: LesionFeatures, s: ExpectedScore) -> dict[str, Any]:
    comp = {
        "length_superficial_calcium_over_270_gt_5mm": s.long_calcium,
        "circumferential_superficial_calcium": s.circumferential,
        "calcified_nodule": s.nodule,
        "vessel_diameter_lt_3_5mm": s.small_vessel,
    }
    return {
        "start_frame": lf.start_frame,
        "end_frame": lf.end_frame,
        "max_superficial_calcium_arc_deg": _r(lf.max_superficial_calcium_arc_deg, 2),
        "max_calcium_frame": lf.max_calcium_frame,
        "length_superficial_calcium_over_270_mm": _r(lf.length_superficial_calcium_over_270_mm),
        "circumferential_superficial_calcium": lf.circumferential_superficial_calcium,
        "calcified_nodule": lf.calcified_nodule,
        "vessel_diameter_at_max_calcium_mm": _r(lf.vessel_diameter_at_max_calcium_mm),
        "score_components": comp,
        "ivus_calcium_score": s.total,
    }


def truth_document(rc: RealisticCase, dicom_name: str, transfer_syntax: str) -> dict[str, Any]:
    """Return the truth JSON of a written case (see the module docstring for the keys)."""
    case = rc.case
    base = rc.spec.base
    tr = case.truth
    lesions = [_lesion_doc(lf, s) for lf, s in zip(tr.lesions, tr.scores, strict=True)]
    best = max(lesions, key=lambda d: d["ivus_calcium_score"], default=None)
    comp = best["score_components"] if best else dict.fromkeys(
        ("length_superficial_calcium_over_270_gt_5mm", "circumferential_superficial_calcium",
         "calcified_nodule", "vessel_diameter_lt_3_5mm"), 0)
    vals = list(comp.values())
    expected = {"score": int(sum(vals)), "L": vals[0], "C": vals[1], "N": vals[2], "D": vals[3]}
    frames = []
    for ft, rf in zip(tr.frames, rc.frames_info, strict=True):
        deep = float((ft.calcium_mask & ~ft.superficial_calcium_mask).sum()) * 360.0 / len(
            ft.calcium_mask)
        gw = rf.anatomy.guidewire
        frames.append({
            "frame": ft.frame,
            "assessable": ft.assessable,
            "reason": rf.reason,
            "lumen_area_mm2": _r(ft.lumen_area_mm2),
            "eem_area_mm2": _r(ft.eem_area_mm2),
            "eem_mean_diameter_mm": _r(ft.eem_mean_diameter_mm),
            "calcium_arc_deg": _r(ft.calcium_arc_deg, 2),
            "superficial_calcium_arc_deg": _r(ft.superficial_calcium_arc_deg, 2),
            "deep_calcium_arc_deg": _r(deep, 2),
            "calcified_nodule": ft.calcified_nodule,
            "nodule_protrusion_mm": _r(ft.protrusion_mm),
            "side_branch": rf.side_branch,
            "guide_catheter": rf.guide,
            "display_depth_changed": rf.depth_changed,
            "pixel_spacing_mm": _r(rf.pixel_spacing_mm, 6),
            "catheter_touching_wall": rf.touching,
            "guidewire_angle_deg": _r(gw.theta_deg, 1) if gw else None,
            "guidewire_shadow_deg": _r(gw.shadow_deg, 1) if gw else None,
            "eem_shadowed_fraction": _r(ft.eem_shadowed_fraction, 3),
        })
    return {
        "case": base.name,
        "title": base.description,
        "description": base.description,
        "generator": f"srservice.phantom.realistic {MODEL_VERSION}",
        "seed": base.seed,
        "dicom": dicom_name,
        "transfer_syntax": transfer_syntax,
        "rows": base.rows,
        "columns": base.rows,
        "n_frames": base.frame_count,
        "pixel_spacing_mm": round(case.pixel_spacing_mm, 6),
        "frame_spacing_mm": round(case.frame_spacing_mm, 6),
        "pullback_rate_mm_s": base.pullback_rate_mm_s,
        "frame_time_ms": round(base.frame_time_ms, 4),
        "pullback_length_mm": round(case.frame_spacing_mm * base.frame_count, 4),
        "catheter_center_px": [round(case.catheter_center[0]), round(case.catheter_center[1])],
        "conventions": {
            "frames": "1-based",
            "arcs": "degrees about the lumen centroid, 1 degree bins; guidewire-shadow gaps "
                    "bridged when calcium lies on both sides",
            "superficial": "calcium leading edge within the inner 50% of the plaque + media "
                           "thickness along the ray",
            "calcified_nodule": "calcium protruding >= 0.2 mm into the lumen with an "
                                "irregular convex surface",
            "eem_mean_diameter": "mean of max and min EEM chords through the EEM centroid",
            "assessable": "false with a reason for frames inside the guide catheter, at a "
                          "side-branch take-off and after a display-depth change (drawn at "
                          "pixel_spacing_mm, not the header's); their areas are the true ones",
            "lesion": "the highest-scoring calcified segment; lesions[] lists all",
        },
        "intended_score": base.intended_score,
        "expected": expected,
        "lesion": best,
        "lesions": lesions,
        "frames": frames,
    }


# ---------------------------------------------------------------------------------------
# the suite
# ---------------------------------------------------------------------------------------

_MARGIN_MM = 1.6


def _case(
    name: str, seed: int, lesions: tuple[LesionSpec, ...], intended: int, *,
    total_mm: float | None = None, rate: float = 2.0, rows: int = 480, ps: float = 0.0227,
    touch: tuple[tuple[float, float], ...] = (), depth_change_mm: float | None = None,
    depth_scale: float = 1.25, fibrous: tuple[SegmentFeature, ...] = (),
    shadow_keep: float = 0.11, blood_db: float = -7.0, jpeg: bool = False,
    wire_drift_deg: float = 70.0, **kw: Any,
) -> RealisticSpec:
    sp = rate / float(kw.get("heart_rate_hz", 1.1)) if kw.get("gated") else rate / 30.0
    if total_mm is None:
        end = max((x.center_mm + x.length_mm / 2 for x in lesions), default=3.0)
        total_mm = end + _MARGIN_MM
    base = CaseSpec(
        name=name, seed=seed, rows=rows, pixel_spacing_mm=ps,
        frame_count=math.ceil(total_mm / sp) + 1, pullback_rate_mm_s=rate, lesions=lesions,
        intended_score=intended, overlays="grey", catheter_offset_px=(0.5, 0.5),
        rotation_seam=False, **{"gain_jitter_db": 0.7, **kw},
    )
    return RealisticSpec(base=base, touch=touch, depth_change_mm=depth_change_mm,
                         depth_scale=depth_scale, fibrous=fibrous, shadow_keep=shadow_keep,
                         blood_db=blood_db, jpeg=jpeg, wire_drift_deg=wire_drift_deg)


def realistic_suite() -> list[RealisticSpec]:
    """Return the realistic accuracy suite (28 cases; see the module docstring)."""
    L = LesionSpec
    F = SegmentFeature

    def at(c: float, length: float, arc: float, **kw: Any) -> LesionSpec:
        return L(c, length, arc, **kw)

    s = [
        _case("r_none_fibrous", 201, (), 0, total_mm=8.0, frequency_mhz=45,
              fibrous=(F(3.0, 3.0, 80, 60), F(6.0, 2.0, 60, 220)),
              touch=((1.0, 2.5),), description="no calcium; bright fibrous plaque (no shadow)"),
        _case("r_none_branch_depth", 202, (), 0, total_mm=9.0, frequency_mhz=55,
              side_branches=(F(2.5, 0.9, 70, 30),), depth_change_mm=6.0,
              description="no calcium; side branch; display depth changes at 6 mm"),
        _case("r_none_attenuated", 203, (), 0, total_mm=7.0,
              attenuated=(F(3.5, 2.0, 70, 300),), guidewire_shadow_deg=20.0,
              description="attenuated plaque (shadow without bright edge); 20-degree wire shadow"),
        _case("r_none_guide", 204, (), 0, total_mm=6.0, guide_catheter_frames=20,
              touch=((0.5, 3.0),), description="no calcium; catheter on the wall; guide catheter"),
        _case("r_deep_only", 205, (at(3.6, 4.0, 220, depth="deep", vessel_diameter_mm=3.9),),
              0, description="deep calcium only"),
        _case("r_arc150_fibrous", 206, (at(3.5, 3.5, 150, vessel_diameter_mm=3.9),), 0,
              fibrous=(F(3.5, 3.0, 70, 270),), jpeg=True,
              description="150-degree superficial calcium next to bright fibrous plaque"),
        _case("r_arc262", 207, (at(3.5, 3.5, 262, vessel_diameter_mm=3.8),), 0,
              description="max arc 262 (just <= 270)"),
        _case("r_arc282_short", 208, (at(3.5, 3.5, 282, over_270_mm=1.2,
                                          vessel_diameter_mm=3.8),), 0,
              description="max arc 282, short > 270 run"),
        _case("r_run4p3", 209, (at(5.0, 7.0, 305, over_270_mm=4.3, vessel_diameter_mm=3.9),),
              0, touch=((1.0, 3.0),), description="> 270 run 4.3 mm (no point)"),
        _case("r_run5p8", 210, (at(5.0, 7.5, 310, over_270_mm=5.8, vessel_diameter_mm=3.9,
                                    pieces=2),), 1,
              description="> 270 run 5.8 mm, two pieces -> L"),
        _case("r_run8_branch", 211, (at(6.0, 9.5, 318, over_270_mm=8.0,
                                         vessel_diameter_mm=4.0),), 1,
              side_branches=(F(1.4, 0.6, 60, 250),), frequency_mhz=50,
              description="long > 270 (8 mm) with a side branch before it -> L"),
        _case("r_circ_only", 212, (at(3.5, 3.5, 360, over_270_mm=1.6, circumferential_mm=0.5,
                                       vessel_diameter_mm=3.9),), 1,
              description="360-degree calcium alone -> C"),
        _case("r_arc345", 213, (at(3.5, 3.5, 345, over_270_mm=1.6, vessel_diameter_mm=3.9),),
              0, guidewire_angle_deg=270.0, description="max arc 345 (not 360)"),
        _case("r_small_3p3", 214, (at(3.0, 2.5, 200, vessel_diameter_mm=3.3),), 1,
              reference_diameter_mm=3.6, description="vessel 3.3 mm at max site -> D"),
        _case("r_vessel_3p65", 215, (at(3.0, 2.5, 200, vessel_diameter_mm=3.65),), 0,
              reference_diameter_mm=3.8, jpeg=True,
              description="vessel 3.65 mm at max site (no point)"),
        _case("r_vessel_3p38", 216, (at(3.0, 2.5, 230, vessel_diameter_mm=3.38),), 1,
              reference_diameter_mm=3.6, touch=((0.5, 5.0),),
              description="vessel 3.38 mm, catheter on the wall -> D"),
        _case("r_nodule", 217, (at(2.5, 2.0, 180, nodule=True, protrusion_mm=0.4,
                                    vessel_diameter_mm=3.9),), 1, rate=1.0,
              description="calcified nodule -> N"),
        _case("r_smooth_bulge", 218, (at(2.5, 2.0, 180, protrusion_mm=0.1,
                                          vessel_diameter_mm=3.9),), 0, rate=1.0,
              description="smooth calcium bulge < 0.2 mm (no nodule)"),
        _case("r_nodule_small", 219, (at(2.5, 2.0, 220, nodule=True, protrusion_mm=0.35,
                                          vessel_diameter_mm=3.25),), 2, rate=1.0,
              reference_diameter_mm=3.5, description="nodule + small vessel -> N D"),
        _case("r_long_small", 220, (at(5.5, 8.0, 300, over_270_mm=6.2,
                                        vessel_diameter_mm=3.3),), 2,
              reference_diameter_mm=3.6, depth_change_mm=10.5,
              description="long > 270 + small vessel, depth change after the lesion -> L D"),
        _case("r_circ_long", 221, (at(6.0, 9.0, 360, over_270_mm=7.0, circumferential_mm=1.0,
                                       vessel_diameter_mm=3.8),), 2, shadow_keep=0.16,
              description="360 + long -> L C"),
        _case("r_wire_over_calcium", 222, (at(5.5, 8.0, 300, over_270_mm=6.0,
                                               vessel_diameter_mm=3.9,
                                               center_angle_deg=45),), 1,
              guidewire_angle_deg=45.0, guidewire_shadow_deg=26.0, wire_drift_deg=20.0,
              description="26-degree wire shadow inside the calcium arc (bridged) -> L"),
        _case("r_long_circ_small", 223, (at(6.0, 8.5, 360, over_270_mm=6.5,
                                             circumferential_mm=0.8,
                                             vessel_diameter_mm=3.3),), 3,
              reference_diameter_mm=3.6, shadow_keep=0.1,
              description="long + 360 + small -> L C D"),
        _case("r_long_circ_nodule", 224, (at(6.0, 8.5, 360, over_270_mm=6.5,
                                              circumferential_mm=0.8, nodule=True,
                                              protrusion_mm=0.35,
                                              vessel_diameter_mm=3.8),), 3,
              jpeg=True, description="long + 360 + nodule -> L C N"),
        _case("r_full4", 225, (at(6.2, 9.0, 360, over_270_mm=7.0, circumferential_mm=1.0,
                                  nodule=True, protrusion_mm=0.35, vessel_diameter_mm=3.2,
                                  deep_extra_arc_deg=40),), 4,
              reference_diameter_mm=3.5, touch=((0.3, 1.2),),
              description="all four components"),
        _case("r_full4_gated", 226, (at(5.0, 8.0, 360, over_270_mm=6.0, circumferential_mm=1.5,
                                        nodule=True, protrusion_mm=0.35,
                                        vessel_diameter_mm=3.3),), 4,
              rate=0.5, gated=True, heart_rate_hz=1.0, total_mm=10.0, rows=512, ps=0.02,
              description="ECG-gated pullback (0.5 mm/beat), 512 px"),
        _case("r_guide_after_calcium", 227, (at(2.5, 2.5, 220, vessel_diameter_mm=3.35),), 1,
              reference_diameter_mm=3.5, guide_catheter_frames=25, total_mm=6.5,
              description="small vessel lesion; last frames inside the guide catheter -> D"),
        _case("r_two_lesions", 228, (at(2.0, 2.0, 200, vessel_diameter_mm=3.4),
                                     at(9.0, 8.0, 300, over_270_mm=5.6, vessel_diameter_mm=3.3,
                                        center_angle_deg=200)), 2,
              reference_diameter_mm=3.7, side_branches=(F(4.6, 0.6, 60, 90),),
              description="two lesions (D, then L D) with a side branch between them"),
    ]
    return s


def small_realistic_case(kind: str = "none", *, frames: int = 12, rows: int = 320,
                         seed: int = 0) -> RealisticCase:
    """Small fast realistic case for tests.

    ``kind``: ``"none"`` (calcium-free), ``"calcium"`` (calcium in every frame, arcs 30-140
    degrees) or ``"stretch"`` (calcium in the middle quarter only, calcium-free stretches on
    both sides).
    """
    ps = 5.4 / (rows / 2.0 - 4.0)
    sp = 2.0 / 30.0
    length = frames * sp
    lesions: tuple[LesionSpec, ...] = ()
    if kind == "calcium":
        lesions = (LesionSpec(length / 2, length * 1.5, 140, vessel_diameter_mm=3.9),)
    elif kind == "stretch":
        lesions = (LesionSpec(length / 2, length / 4, 200, vessel_diameter_mm=3.9),)
    elif kind != "none":
        raise ValueError(f"unknown small realistic case {kind!r}")
    base = CaseSpec(name=f"small_realistic_{kind}", seed=seed, rows=rows, pixel_spacing_mm=ps,
                    frame_count=frames, pullback_rate_mm_s=2.0, lesions=lesions,
                    overlays="grey", catheter_offset_px=(0.5, 0.5), rotation_seam=False,
                    gain_jitter_db=0.7)
    return make_realistic_case(RealisticSpec(base=base))


def calcium_geometry(
    rc: RealisticCase, k: int
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64], npt.NDArray[np.bool_],
           npt.NDArray[np.bool_]]:
    """Truth geometry of 0-based frame ``k`` on the grid of :mod:`srservice.phantom.imagestats`.

    Returns (calcium A-lines outside the guidewire shadow, leading-edge distance from the
    catheter in mm, plaque pixels on A-lines without calcium, A-lines usable as the outside
    reference: at least 10 degrees from calcium and from the guidewire shadow).
    """
    from srservice.phantom.geometry import NPHI
    from srservice.phantom.imagestats import N_THETA, radii_mm

    fa = rc.frames_info[k].anatomy
    rho = radii_mm()
    th = np.deg2rad(np.arange(N_THETA))[None, :]
    x = rho[:, None] * np.cos(th) - fa.lumen_center_mm[0]
    y = rho[:, None] * np.sin(th) - fa.lumen_center_mm[1]
    r = np.hypot(x, y)
    ip = np.round(np.mod(np.degrees(np.arctan2(y, x)), 360.0) * NPHI / 360.0).astype(int) % NPHI
    er = fa.r_edge[ip]
    edge = ~np.isnan(er) & (r >= np.nan_to_num(er, nan=1e9))
    lines = edge.any(axis=0)
    first = np.where(lines, rho[np.argmax(edge, axis=0)], np.nan)
    plaque = (r >= fa.r_lumen[ip]) & (r < fa.r_eem[ip]) & ~lines[None, :]
    near = np.convolve(np.concatenate([lines] * 3).astype(int), np.ones(21, dtype=int),
                       "same")[N_THETA : 2 * N_THETA] > 0
    usable = ~near
    gw = fa.guidewire
    if gw is not None:
        d = np.abs(np.mod(np.arange(N_THETA) - gw.theta_deg + 180.0, 360.0) - 180.0)
        usable &= d > gw.shadow_deg / 2.0 + 10.0
        lines &= d > gw.shadow_deg / 2.0 + 3.0
    return lines, first, plaque, usable


__all__ = [
    "MODEL_VERSION",
    "RealisticCase",
    "calcium_geometry",
    "make_realistic_case",
    "realistic_suite",
    "small_realistic_case",
    "truth_document",
]
