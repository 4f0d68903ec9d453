"""The accuracy suite of synthetic pullbacks and small cases for fast unit tests.

The suite covers every IVUS calcium score 0-4 several times and each threshold edge of Zhang
et al. (Circ Cardiovasc Interv 2021;14:e010296): length of > 270-degree superficial calcium
4.1 (worked example, 0 points) vs 5.5 vs 8.9 mm (worked example, 1 point); maximum arc 260 vs
280 and 340 vs 360 degrees; vessel diameter 3.3 vs 3.7 mm; calcified nodule vs smooth
protrusion < 0.2 mm; deep-only calcium; attenuated plaque; guidewire over calcium; no calcium;
pixel sizes 0.015-0.03 mm; pullback 0.5-2 mm/s at 30 frames/s and an ECG-gated pullback.
"""

from __future__ import annotations

import math

from srservice.phantom.case import PhantomCase, make_case
from srservice.phantom.spec import CaseSpec, LesionSpec, SegmentFeature

_MARGIN_MM = 0.7


def _frames(total_mm: float, spacing_mm: float) -> int:
    return math.ceil(total_mm / spacing_mm) + 1


def _single(
    name: str, seed: int, lesion: LesionSpec | None, intended: int, *, rate: float = 1.0,
    rows: int = 256, ps: float = 0.025, extra_mm: float = 0.0, **kw: object,
) -> CaseSpec:
    """Return a case with one lesion centred in the pullback (or none)."""
    hr = kw.get("heart_rate_hz", 1.1)
    spacing = rate / float(hr) if kw.get("gated") else rate / 30.0  # type: ignore[arg-type]
    if lesion is not None:
        total = lesion.length_mm + 2 * _MARGIN_MM + extra_mm
        lesion = LesionSpec(**{**lesion.__dict__, "center_mm": _MARGIN_MM + lesion.length_mm / 2})
    else:
        total = 3.0
    n = _frames(total, spacing)
    return CaseSpec(
        name=name, seed=seed, rows=rows, pixel_spacing_mm=ps, frame_count=n,
        pullback_rate_mm_s=rate, lesions=(lesion,) if lesion else (), intended_score=intended,
        **kw,  # type: ignore[arg-type]
    )


def standard_suite() -> list[CaseSpec]:
    """Return the accuracy suite (>= 24 cases; see the module docstring)."""
    L = LesionSpec
    s: list[CaseSpec] = [
        _single("none_025", 101, None, 0, rate=1.0, frequency_mhz=40, guidewire=False,
                description="no calcium, no visible guidewire"),
        _single("none_rgb_branch", 102, None, 0, rate=0.5, overlays="colour", frequency_mhz=55,
                side_branches=(SegmentFeature(1.5, 1.0, 70, 200),),
                description="no calcium, coloured overlays, side branch"),
        _single("attenuated_only", 103, None, 0, rate=1.0, rows=384, ps=0.02,
                attenuated=(SegmentFeature(1.5, 1.6, 110, 30),),
                description="attenuated plaque (shadow without bright edge): not calcium"),
        _single("deep_only", 104, L(0, 2.0, 200, depth="deep", vessel_diameter_mm=3.9), 0,
                rate=1.0, description="deep calcium only"),
        _single("arc260", 105, L(0, 2.0, 260, vessel_diameter_mm=3.8), 0, rate=1.0,
                overlays="grey", description="max arc 260 (<= 270, outside derivation pop.)"),
        _single("arc280_short", 106, L(0, 2.5, 280, over_270_mm=1.0, vessel_diameter_mm=3.8), 0,
                rate=1.0, frequency_mhz=50, description="max arc 280, short run"),
        _single("run4p1", 107, L(0, 6.0, 310, over_270_mm=4.1, vessel_diameter_mm=3.9), 0,
                rate=2.0, description="worked example: > 270 length 4.1 mm -> 0"),
        _single("run5p5", 108, L(0, 7.0, 310, over_270_mm=5.5, vessel_diameter_mm=3.9,
                                 pieces=2), 1, rate=2.0, description="> 270 length 5.5 mm"),
        _single("run8p9", 109, L(0, 10.5, 320, over_270_mm=8.9, vessel_diameter_mm=4.0), 1,
                rate=2.0, frequency_mhz=45, catheter_offset_px=(-2.0, 1.5),
                description="worked example: > 270 length 8.9 mm -> 1"),
        _single("circ_only", 110, L(0, 3.0, 360, over_270_mm=1.5, circumferential_mm=0.4,
                                    vessel_diameter_mm=3.9), 1, rate=1.0,
                description="worked example: 360-degree calcium alone scores 1"),
        _single("arc340", 111, L(0, 3.0, 340, over_270_mm=1.5, vessel_diameter_mm=3.9), 0,
                rate=1.0, rows=384, ps=0.02, guidewire_angle_deg=270.0,
                description="max arc 340 (not 360); guidewire in the calcium gap"),
        _single("small_vessel_3p3", 112, L(0, 2.0, 200, vessel_diameter_mm=3.3), 1, rate=1.0,
                description="vessel diameter 3.3 mm at max site"),
        _single("vessel_3p7", 113, L(0, 2.0, 200, vessel_diameter_mm=3.7), 0, rate=1.0,
                ps=0.03, guidewire=False, description="vessel diameter 3.7 mm at max site"),
        _single("nodule_only", 114, L(0, 1.8, 180, nodule=True, protrusion_mm=0.35,
                                      vessel_diameter_mm=3.9), 1, rate=0.5, frequency_mhz=60,
                description="calcified nodule"),
        _single("smooth_protrusion", 115, L(0, 1.8, 180, protrusion_mm=0.1,
                                            vessel_diameter_mm=3.9), 0, rate=0.5,
                description="smooth calcium protrusion < 0.2 mm: not a nodule"),
        _single("nodule_small", 116, L(0, 1.8, 220, nodule=True, protrusion_mm=0.3,
                                       vessel_diameter_mm=3.2), 2, rate=0.5,
                description="nodule + small vessel"),
        _single("long_small", 117, L(0, 8.0, 300, over_270_mm=6.0, vessel_diameter_mm=3.3), 2,
                rate=2.0, frequency_mhz=50, description="long > 270 + small vessel"),
        _single("circ_long", 118, L(0, 9.0, 360, over_270_mm=7.0, circumferential_mm=1.0,
                                    vessel_diameter_mm=3.8, deep_extra_arc_deg=0), 2, rate=2.0,
                description="360 + long"),
        _single("guidewire_over_calcium", 119, L(0, 8.0, 300, over_270_mm=5.8,
                                                 vessel_diameter_mm=3.9, center_angle_deg=45),
                1, rate=2.0, guidewire_angle_deg=45.0, guidewire_shadow_deg=35.0,
                description="35-degree guidewire shadow over the calcium arc (bridged)"),
        _single("long_circ_small", 120, L(0, 8.5, 360, over_270_mm=6.5, circumferential_mm=0.8,
                                          vessel_diameter_mm=3.3), 3, rate=2.0,
                description="long + 360 + small vessel"),
        _single("long_circ_nodule", 121, L(0, 8.5, 360, over_270_mm=6.5, circumferential_mm=0.8,
                                           nodule=True, protrusion_mm=0.35,
                                           vessel_diameter_mm=3.8), 3, rate=2.0,
                description="long + 360 + nodule"),
        _single("full4", 122, L(0, 9.0, 360, over_270_mm=7.0, circumferential_mm=1.0,
                                nodule=True, protrusion_mm=0.35, vessel_diameter_mm=3.2,
                                deep_extra_arc_deg=40), 4, rate=2.0, overlays="grey",
                description="all four components"),
        _single("full4_gated", 123, L(0, 9.0, 360, over_270_mm=6.0, circumferential_mm=1.5,
                                      nodule=True, protrusion_mm=0.35, vessel_diameter_mm=3.3),
                4, rate=0.5, gated=True, heart_rate_hz=1.0,
                description="ECG-gated pullback (0.5 mm/beat)"),
        _single("full4_rgb_512", 124, L(0, 7.5, 360, over_270_mm=5.8, circumferential_mm=0.6,
                                        nodule=True, protrusion_mm=0.3,
                                        vessel_diameter_mm=3.3), 4, rate=2.0, rows=512,
                ps=0.015, overlays="colour", frequency_mhz=60, catheter_offset_px=(3.0, -2.0),
                description="512 px at 0.015 mm, RGB overlays, 60 MHz"),
        _single("score3_flicker", 125, L(0, 8.0, 360, over_270_mm=6.0, circumferential_mm=0.6,
                                         vessel_diameter_mm=3.3), 3, rate=2.0,
                flicker_prob=0.06, gain_jitter_db=3.0,
                description="calcium drops out of isolated frames; truth keeps it"),
        _single("guide_catheter", 126, L(0, 2.0, 220, vessel_diameter_mm=3.3), 1, rate=1.0,
                extra_mm=0.8, guide_catheter_frames=20,
                description="last 20 frames inside the guide catheter"),
    ]
    # Two lesions in one pullback: scores 1 (small vessel) and 2 (long + small) -> 2.
    sp = 2.0 / 30.0
    a = L(1.5, 2.0, 200, vessel_diameter_mm=3.4)
    b = L(8.0, 8.0, 300, over_270_mm=5.5, vessel_diameter_mm=3.3, center_angle_deg=200)
    s.append(CaseSpec(name="two_lesions", seed=127, frame_count=_frames(12.8, sp),
                      pullback_rate_mm_s=2.0, lesions=(a, b), intended_score=2,
                      reference_diameter_mm=3.7, description="two lesions (1 and 2 points)"))
    return s


def small_case(
    kind: str = "calcium", *, frames: int = 24, rows: int = 192, seed: int = 0
) -> PhantomCase:
    """Return a small fast case for unit tests elsewhere.

    Parameters
    ----------
    kind : str
        ``"none"``, ``"calcium"`` (300-degree superficial arc), ``"circumferential"`` (360),
        ``"nodule"``, ``"deep"`` or ``"guide"`` (last third inside the guide catheter).
    """
    sp = 2.0 / 30.0
    length = frames * sp
    center = length / 2.0
    lesion: LesionSpec | None
    if kind == "none" or kind == "guide":
        lesion = None
    elif kind == "calcium":
        lesion = LesionSpec(center, length * 0.8, 300, over_270_mm=length * 0.3,
                            vessel_diameter_mm=3.8)
    elif kind == "circumferential":
        lesion = LesionSpec(center, length * 0.8, 360, over_270_mm=length * 0.4,
                            circumferential_mm=length * 0.2, vessel_diameter_mm=3.8)
    elif kind == "nodule":
        lesion = LesionSpec(center, length * 0.8, 200, nodule=True, protrusion_mm=0.35,
                            vessel_diameter_mm=3.8)
    elif kind == "deep":
        lesion = LesionSpec(center, length * 0.8, 200, depth="deep", vessel_diameter_mm=3.8)
    else:
        raise ValueError(f"unknown small_case kind {kind!r}")
    spec = CaseSpec(
        name=f"small_{kind}", seed=seed, rows=rows, pixel_spacing_mm=0.03, frame_count=frames,
        pullback_rate_mm_s=2.0, lesions=(lesion,) if lesion else (),
        guide_catheter_frames=frames // 3 if kind == "guide" else 0,
    )
    return make_case(spec)
