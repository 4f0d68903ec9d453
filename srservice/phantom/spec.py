"""Specifications of synthetic IVUS pullbacks (what to draw), as frozen dataclasses.

A :class:`CaseSpec` describes one pullback: image geometry, acquisition (pixel size, pullback
rate, frame rate, gating), the calcified lesions (:class:`LesionSpec`) and the artefacts real
exports from 40-60 MHz consoles contain (guidewire, attenuated plaque, side branches, rotation
seam, guide catheter, display overlays, gain changes, heart motion). Lengths are millimetres
along the pullback measured from frame 1; angles are degrees in the image convention of
``srservice.analysis.types`` (0 = +x, 90 = +y, i.e. down on screen).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LesionSpec:
    """One calcified segment.

    Attributes
    ----------
    center_mm : float
        Position of the maximum calcium site along the pullback (mm from frame 1).
    length_mm : float
        Length of the whole calcified segment (calcium of any depth).
    max_arc_deg : float
        Peak superficial (or, for ``depth="deep"``, deep) calcium arc; 360 allowed.
    over_270_mm : float
        Designed length of the run of frames whose superficial arc is > 270 degrees.
    circumferential_mm : float
        Length of the frames with 360 degrees of superficial calcium (centre of the run).
    nodule : bool
        Calcified nodule over the maximum site: calcium protruding ``protrusion_mm`` (>= 0.2)
        into the lumen with an irregular convex surface (Lee, Mintz, Maehara 2011).
    protrusion_mm : float
        Protrusion height; for ``nodule=False`` a smooth bulge (< 0.2 mm: not a nodule).
    vessel_diameter_mm : float
        Mean EEM diameter at the maximum calcium site.
    depth : str
        ``"superficial"`` (leading edge in the inner half of plaque + media) or ``"deep"``.
    deep_extra_arc_deg : float
        Extra deep calcium next to the superficial arc (frames of the lesion core).
    pieces : int
        1 or 2 separate calcium pieces per frame (their arcs add up).
    center_angle_deg : float
        Angle of the arc centre about the lumen centre.
    reverberations : int
        Number of reverberation echoes drawn behind the leading edge (0-3).
    """

    center_mm: float
    length_mm: float
    max_arc_deg: float
    over_270_mm: float = 0.0
    circumferential_mm: float = 0.0
    nodule: bool = False
    protrusion_mm: float = 0.0
    vessel_diameter_mm: float = 3.8
    depth: str = "superficial"
    deep_extra_arc_deg: float = 0.0
    pieces: int = 1
    center_angle_deg: float = 90.0
    reverberations: int = 1


@dataclass(frozen=True)
class SegmentFeature:
    """A non-calcium feature over a segment: attenuated plaque or a side branch."""

    center_mm: float
    length_mm: float
    arc_deg: float
    angle_deg: float


@dataclass(frozen=True)
class CaseSpec:
    """One synthetic pullback.

    Attributes
    ----------
    name, seed : str, int
        Identifier and random seed (``make_case`` is deterministic given the spec).
    rows : int
        Square frames ``rows x rows``.
    pixel_spacing_mm : float
        Isotropic pixel size.
    frame_count : int
        Number of frames.
    pullback_rate_mm_s, frame_rate_hz : float
        Motor pullback; frame spacing = rate / frame rate (PS3.3 C.8.5.6.1.20).
    gated : bool
        ECG-gated pullback: one frame per heart beat; frame spacing = pullback rate / heart rate
        (written as IVUS Gated Rate in mm/beat).
    heart_rate_hz : float
        Beats per second (motion period; gated frame rate).
    lesions : tuple of LesionSpec
        Calcified segments (must not overlap).
    frequency_mhz : float
        40-60; higher frequencies make blood speckle brighter and finer.
    guidewire : bool
        Draw the guidewire (bright spot and narrow shadow beside the catheter).
    guidewire_angle_deg : float or None
        Angle of the wire about the catheter; None picks one from the seed.
    guidewire_shadow_deg : float
        Angular width of the wire shadow seen from the transducer (8-40 degrees).
    attenuated : tuple of SegmentFeature
        Attenuated plaque: a shadow without a bright leading edge (not calcium).
    side_branches : tuple of SegmentFeature
        Gaps in the vessel wall over an arc.
    guide_catheter_frames : int
        Last frames with the transducer inside the guide catheter (not assessable).
    overlays : str
        ``"none"``, ``"grey"`` or ``"colour"`` burnt-in display overlays (colour -> RGB frames).
    gain_jitter_db : float
        Standard deviation of the per-frame gain change.
    motion : float
        Heart-motion amplitude scale (0 = static).
    flicker_prob : float
        Probability that an isolated frame of a lesion loses its rendered calcium (truth keeps it).
    catheter_offset_px : tuple of float
        Offset of the transducer from the exact image centre.
    rotation_seam : bool
        Draw the dark radial seam where each rotation starts.
    reference_diameter_mm : float
        Mean EEM diameter away from the lesions.
    description, intended_score : str, int or None
        What the case tests and the IVUS calcium score it was designed to have.
    """

    name: str
    seed: int
    rows: int = 256
    pixel_spacing_mm: float = 0.025
    frame_count: int = 120
    pullback_rate_mm_s: float = 1.0
    frame_rate_hz: float = 30.0
    gated: bool = False
    heart_rate_hz: float = 1.1
    lesions: tuple[LesionSpec, ...] = ()
    frequency_mhz: float = 40.0
    guidewire: bool = True
    guidewire_angle_deg: float | None = None
    guidewire_shadow_deg: float = 12.0
    attenuated: tuple[SegmentFeature, ...] = ()
    side_branches: tuple[SegmentFeature, ...] = ()
    guide_catheter_frames: int = 0
    overlays: str = "none"
    gain_jitter_db: float = 1.5
    motion: float = 1.0
    flicker_prob: float = 0.0
    catheter_offset_px: tuple[float, float] = (0.0, 0.0)
    rotation_seam: bool = True
    reference_diameter_mm: float = 4.0
    description: str = ""
    intended_score: int | None = None

    @property
    def frame_spacing_mm(self) -> float:
        """Distance between frames along the vessel (mm)."""
        if self.gated:
            return self.pullback_rate_mm_s / self.heart_rate_hz
        return self.pullback_rate_mm_s / self.frame_rate_hz

    @property
    def frame_time_ms(self) -> float:
        """Nominal time between frames (ms)."""
        if self.gated:
            return 1000.0 / self.heart_rate_hz
        return 1000.0 / self.frame_rate_hz
