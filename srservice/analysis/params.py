"""Tunable parameters of the IVUS analysis, in physical units where they are physical.

Every threshold the pipeline uses lives here, so a report can state exactly which values
produced it (:meth:`AnalysisParameters.as_dict`). Lengths are millimetres, angles degrees,
intensities are relative to the pullback's robust tissue level (gain-normalised, see
:mod:`srservice.analysis.preprocess`). Where the pixel spacing is unknown,
``fallback_pixel_spacing_mm`` converts the millimetre parameters into pixels for the image
processing only; no millimetre measurement is then reported (docs/scoring.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from srservice import ALGORITHM_VERSION as ALGORITHM_VERSION  # one source: srservice/__init__


@dataclass(frozen=True)
class AnalysisParameters:
    """Frozen set of analysis thresholds (defaults tuned on the phantom suite).

    Attributes
    ----------
    radial_step_mm : float
        Radial sampling step of the polar grid.
    max_radius_mm : float
        Deepest radius analysed (from the catheter centre).
    fallback_pixel_spacing_mm : float
        Pixel size assumed for image processing when the pullback does not say (no mm output).
    catheter_radius_mm : float
        Catheter (ring-down) radius used when it cannot be estimated from the image.
    overlay_range : float
        Grey-level range over frames sampled across the pullback below which a pixel is a
        burnt-in overlay (temporal constancy).
    overlay_min_level : float
        Overlays are brighter than this (constant dark pixels are simply "no echo").
    overlay_samples : int
        Number of frames sampled across the pullback for the constancy test.
    seam_contrast : float
        A single A-line darker than this fraction of its two neighbours is a rotation seam.
    gain_window : int
        Frames in the running median used for per-frame gain normalisation.
    temporal_half_window : int
        Neighbouring frames (each side) used for the blood-speckle decorrelation cue.
    lumen_smoothness_mm, eem_smoothness_mm : float
        Largest radial jump of a border between neighbouring angle bins (1 degree).
    min_plaque_mm : float
        Smallest lumen-to-EEM distance searched.
    max_wall_mm : float
        Largest lumen-to-EEM distance searched.
    calcium_bright_factor : float
        Leading edge brightness relative to the pullback tissue level.
    calcium_shadow_ratio : float
        Shadow mean below this fraction of the unshadowed reference at the same depth.
    calcium_shadow_gap_mm, calcium_shadow_len_mm : float
        Shadow window behind the leading edge (gap skips the edge and its reverberations).
    calcium_fragment_gap_deg : float
        Gaps up to this wide between leading-edge fragments that share one shadow are calcium
        (real exports: fragmented edges over a continuous shadow).
    calcium_fragment_min_deg : float
        Narrower leading-edge candidates are speckle and are not joined.
    calcium_dim_gap_deg : float
        Shadowed gaps up to this wide between calcium rays, with a leading edge at least as
        bright as the plaque, are calcium (a ring whose edge dims over part of its arc).
    calcium_surface_jump_mm : float
        Calcium rays whose leading edge lies this far behind the smooth surface of the
        frame's calcium are dropped (a deeper reflector, not the same calcium).
    calcium_min_arc_deg : float
        Calcium pieces narrower than this are dropped (speckle, guidewire glints).
    guidewire_max_gap_deg : float
        Largest guidewire-shadow gap that is bridged when calcium lies on both sides.
    lumen_edge_tolerance_mm : float
        A leading edge this far inside the lumen border is still wall calcium; anything
        closer to the catheter is a guidewire.
    volume_half_window : int
        Frames each side of the along-pullback majority vote on calcium masks.
    nodule_protrusion_mm : float
        Protrusion beyond the smooth lumen contour that makes calcium a nodule (Lee 2011).
    nodule_catheter_clearance_mm : float
        Calcium whose leading edge lies within this distance of the catheter gives no
        nodule evidence (a catheter pressed against the wall flattens the lumen around it).
    nodule_min_frames : int
        Consecutive frames a nodule must appear on.
    lesion_min_arc_deg : float
        A frame belongs to a calcified segment when its calcium arc exceeds this.
    lesion_max_gap_frames : int
        Gaps up to this many frames are merged into one segment.
    lesion_min_length_mm : float
        Calcified segments shorter than this are dropped.
    lesion_min_frames : int
        Minimum frames of a segment when the frame spacing is unknown.
    over_270_deg : float
        Superficial arc threshold of the "long calcium" component (strictly greater).
    circumferential_deg : float
        A frame has circumferential calcium when its superficial arc reaches this.
    blood_gap_mm, blood_band_mm : float
        The blood level is the median grey of the band ``blood_band_mm`` wide starting
        ``blood_gap_mm`` outside the catheter.
    plaque_band_mm, plaque_percentile : float
        The plaque level is this percentile of the grey levels within ``plaque_band_mm`` of the
        catheter (blood, plaque and adventitia together; real exports: blood almost as bright
        as plaque).
    bright_cap_fraction, bright_min_margin : float
        The leading-edge level is at most this fraction of the pullback's 99.9th percentile
        (real leading edges saturate at 251-255 while their ratio to plaque can be as low as
        1.5) and at least the plaque level plus this margin.
    calcium_dark_fraction : float
        Fraction of the shadow window that must be darker than the shadow level (speckle and
        reverberations inside the shadow are allowed).
    calcium_deep_shadow_len_mm, calcium_deep_dark_fraction, calcium_deep_near_fraction : float
        Permeable shadows with reverberation streaks: a ray that continues a strict calcium arc
        counts when this fraction of a window this long behind the edge is dark, and the near
        fraction of the strict window too (hysteresis, docs/scoring.md).
    calcium_anchor_frames : int
        Strict calcium at the same angle within this many frames before or after also anchors
        the weaker test (the pullback as a volume: a deposit spans many frames).
    calcium_deep_gap_deg : float
        Rays failing that weaker test inside such a run, over at most this many degrees, do not
        stop the growth (a reverberation streak on a single ray).
    calcium_edge_gap_deg : float
        Gaps up to this wide between calcium pieces whose leading edge stays at the bright level
        are calcium without a shadow test (a reverberation blob behind a continuous edge).
    calcium_end_extension_deg, calcium_end_shadow_ratio : float
        A calcium arc continues at each end over at most this many degrees of rays whose
        leading edge (continuing the calcium surface) is at least as bright as the plaque and
        whose signal 0.2-1.2 mm behind it is below this fraction of the unshadowed rays of the
        frame at the same radii (the thin ends of a deposit cast weaker shadows).
    calcium_end_min_deg : float
        Such continuations come in runs at least this wide (narrower: the blur of a sharp end).
    guide_ring_depth_mm, guide_ring_fraction, guide_ring_tolerance_mm : float
        Inside the guide catheter a bright ring concentric with the transducer lies within this
        depth on at least this fraction of the angles, at one radius within this tolerance.
    wire_halo_deg : int
        Angle bins each side of the guidewire shadow where the lumen has no evidence.
    lumen_outlier_mm : float
        Outward lumen excursions beyond the robust smooth contour by more than this are
        replaced by the contour (side-branch openings, wire reflections).
    eem_weak_gradient : float
        A media-to-adventitia rise weaker than this fraction of the plaque level leaves the EEM
        hidden there (interpolated).
    eem_edge_offset_mm : float
        The EEM lies this far outside the steepest point of the media-to-adventitia rise: the
        echo amplitude is log-compressed, which moves the steepest point of a blurred
        dark-to-bright step to its dark side by about 0.9-1.3 blur widths (sigma) for a 20-30 dB
        step; the radial blur of the border search (axial resolution of a 40-60 MHz
        transducer, 0.125 mm box smoothing, 0.1 mm central difference) is about 0.05 mm.
    eem_behind_calcium_mm : float
        Behind a calcium leading edge the EEM lies at least this far outward: it is never drawn
        on or inside the calcium.
    calcium_beyond_eem_mm : float
        A leading edge farther than this beyond the (interpolated) EEM is perivascular
        tissue, not calcium of the vessel wall.
    lumen_hug_calcium_mm : float
        A lumen border this close in front of a calcium leading edge is moved onto the edge
        (speckle in bright blood blurs the border in front of calcium).
    eem_spike_mm : float
        EEM radii farther than this from the robust smooth EEM contour are spikes and are
        replaced by the contour.
    min_eem_diameter_mm, max_eem_diameter_mm : float
        Plausible mean EEM diameter of a coronary artery; frames outside are not assessable.
    lumen_outside_eem_mm : float
        The lumen contour may cross the EEM contour by this much (border noise) before the
        frame fails the shape check.
    min_solidity : float
        Lumen and EEM contours less convex than this (area / convex hull area) are star shapes:
        the frame is not assessable.
    side_branch_excursion_mm, side_branch_min_arc_deg : float
        A lumen opening beyond the smooth lumen contour by this much over at least this arc is
        a side-branch take-off: the frame is not assessable.
    min_structure : float
        Speckle of a real echo is correlated over neighbouring pixels; frames whose correlation
        at 2 pixels is below this hold no usable signal (noise).
    depth_change_tolerance : float
        Frames whose catheter ring and field of view both differ in size by more than this
        fraction from the rest of the pullback were recorded at another display depth.
    min_assessable_frames : int
        Fewer assessable frames than this: the pullback cannot be scored.
    nodule_min_length_mm : float
        A calcified nodule must protrude over at least this length of pullback at a consistent
        angle.
    """

    radial_step_mm: float = 0.025
    max_radius_mm: float = 6.0
    fallback_pixel_spacing_mm: float = 0.025
    catheter_radius_mm: float = 0.5
    overlay_range: float = 3.0
    overlay_min_level: float = 30.0
    overlay_samples: int = 24
    seam_contrast: float = 0.6
    gain_window: int = 15
    temporal_half_window: int = 1
    lumen_smoothness_mm: float = 0.06
    eem_smoothness_mm: float = 0.05
    min_plaque_mm: float = 0.15
    max_wall_mm: float = 2.2
    calcium_bright_factor: float = 1.8
    calcium_shadow_ratio: float = 0.45
    calcium_shadow_gap_mm: float = 0.15
    calcium_shadow_len_mm: float = 0.5
    calcium_fragment_gap_deg: float = 15.0
    calcium_fragment_min_deg: float = 3.0
    calcium_dim_gap_deg: float = 60.0
    calcium_surface_jump_mm: float = 0.5
    calcium_min_arc_deg: float = 6.0
    guidewire_max_gap_deg: float = 45.0
    lumen_edge_tolerance_mm: float = 0.15
    volume_half_window: int = 2
    nodule_protrusion_mm: float = 0.2
    nodule_min_frames: int = 2
    lesion_min_arc_deg: float = 20.0
    lesion_max_gap_frames: int = 5
    lesion_min_length_mm: float = 1.0
    lesion_min_frames: int = 5
    over_270_deg: float = 270.0
    circumferential_deg: float = 360.0
    blood_gap_mm: float = 0.05
    blood_band_mm: float = 0.15
    plaque_band_mm: float = 2.5
    plaque_percentile: float = 75.0
    bright_cap_fraction: float = 0.85
    bright_min_margin: float = 30.0
    calcium_dark_fraction: float = 0.7
    calcium_deep_shadow_len_mm: float = 1.5
    calcium_deep_dark_fraction: float = 0.5
    calcium_deep_near_fraction: float = 0.2
    calcium_deep_gap_deg: float = 4.0
    calcium_edge_gap_deg: float = 8.0
    calcium_end_extension_deg: float = 20.0
    calcium_anchor_frames: int = 2
    calcium_end_shadow_ratio: float = 0.7
    calcium_end_min_deg: float = 4.0
    guide_ring_depth_mm: float = 0.6
    guide_ring_fraction: float = 0.8
    guide_ring_tolerance_mm: float = 0.05
    wire_halo_deg: int = 12
    lumen_outlier_mm: float = 0.2
    eem_weak_gradient: float = 0.3
    eem_behind_calcium_mm: float = 0.35
    eem_edge_offset_mm: float = 0.06
    eem_spike_mm: float = 0.3
    lumen_hug_calcium_mm: float = 0.3
    calcium_beyond_eem_mm: float = 0.2
    min_eem_diameter_mm: float = 1.5
    max_eem_diameter_mm: float = 7.0
    min_solidity: float = 0.75
    lumen_outside_eem_mm: float = 0.2
    side_branch_excursion_mm: float = 0.5
    side_branch_min_arc_deg: float = 30.0
    min_structure: float = 0.3
    depth_change_tolerance: float = 0.1
    min_assessable_frames: int = 10
    nodule_min_length_mm: float = 0.4
    nodule_catheter_clearance_mm: float = 0.05

    def as_dict(self) -> dict[str, float | int | str]:
        """Return the parameters (and the algorithm version) for reports."""
        out: dict[str, float | int | str] = {"algorithm_version": ALGORITHM_VERSION}
        out.update(asdict(self))
        return out
