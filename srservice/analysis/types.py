"""Frozen data types shared by the pure analysis, the scoring, the loader and the reports.

Conventions (every module follows them):

- Frame numbers are 1-based, as in DICOM (Referenced Frame Number, PS3.3 C.7.6.16).
- Image coordinates are ``(x, y) = (column, row)`` in pixels, as in DICOM SCOORD (PS3.3
  C.18.6.1.2), origin at the centre of the top-left pixel.
- Angles are degrees in ``[0, 360)``, ``theta = atan2(y - cy, x - cx)`` about the frame's
  centre of measurement: 0 points to +x (right), 90 to +y (down on screen, i.e. clockwise as
  displayed). Angular masks have :data:`ANGLE_BINS` bins; bin ``i`` covers ``[i, i+1)`` degrees
  scaled by ``360 / ANGLE_BINS``.
- Lengths in millimetres, areas in square millimetres.

No module here imports pydicom, pynetdicom, celery or sqlalchemy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

#: Number of angular bins (A-lines after polar resampling) used for arcs and masks.
ANGLE_BINS = 360

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Pullback:
    """A decoded IVUS pullback, ready for analysis; nothing DICOM-specific.

    Attributes
    ----------
    frames : numpy.ndarray
        ``(n_frames, rows, columns)`` greyscale, uint8 (0 dark, 255 bright; MONOCHROME1 and
        colour already converted by the loader).
    pixel_spacing_mm : float or None
        Isotropic in-plane pixel size (mm) from the Sequence of Ultrasound Regions or Pixel
        Spacing (PS3.3 C.8.5.5.1); None when unknown.
    frame_spacing_mm : float or None
        Distance between neighbouring frames along the vessel (mm): IVUS Pullback Rate
        (0018,3101) x Frame Time (0018,1063), PS3.3 C.8.5.6.1.19; None when unknown.
    catheter_center : tuple of float or None
        ``(x, y)`` of the transducer centre, from Reference Pixel X0/Y0 when present.
    notes : tuple of str
        Why some quantity is unknown or defaulted (reported as "not assessable" reasons).
    """

    frames: npt.NDArray[np.uint8]
    pixel_spacing_mm: float | None
    frame_spacing_mm: float | None
    catheter_center: tuple[float, float] | None = None
    notes: tuple[str, ...] = ()

    @property
    def frame_count(self) -> int:
        """Number of frames."""
        return int(self.frames.shape[0])


@dataclass(frozen=True)
class FrameMeasurement:
    """Measurements of one frame (cross-section).

    Attributes
    ----------
    frame : int
        1-based frame number.
    assessable : bool
        False when the frame cannot be measured (catheter inside the guide catheter, blank,
        saturated); its measurements are then None / 0.
    center : tuple of float
        ``(x, y)`` pixel centre about which the arcs were measured (lumen centroid, or
        catheter centre where the lumen centroid is unreliable).
    lumen_contour, eem_contour : numpy.ndarray or None
        ``(K, 2)`` closed polygons ``(x, y)`` in pixels (first point not repeated).
    lumen_area_mm2, eem_area_mm2, eem_mean_diameter_mm : float or None
        None when not assessable or pixel spacing is unknown. The lumen area includes the
        catheter. The mean EEM diameter is the mean of the maximum and minimum diameters
        through the EEM centroid.
    eem_interpolated_fraction : float
        Fraction (0-1) of the EEM contour interpolated behind acoustic shadows.
    calcium_mask, superficial_calcium_mask : numpy.ndarray
        ``(ANGLE_BINS,)`` bool: angular bins covered by calcium (any depth) and by
        superficial calcium; guidewire-shadow gaps bridged as the rules say.
    calcium_arc_deg, superficial_calcium_arc_deg : float
        Arcs in degrees (0-360) of the masks above.
    calcified_nodule : bool
        A calcified nodule is present in this frame.
    calcium_depth_mm : numpy.ndarray or None
        ``(ANGLE_BINS,)`` distance (mm) from the lumen border to the calcium leading edge,
        NaN where there is no calcium; None when pixel spacing is unknown.
    reason : str
        Why the frame is not assessable (empty when it is), in words a reader understands,
        e.g. "transducer inside the guide catheter" or "EEM mean diameter 11.3 mm outside
        the coronary range 1.5-7 mm".
    flags : tuple of str
        Cautions on an assessable frame a reader may want to check, e.g. "EEM interpolated
        behind calcium over 140 degrees" or "guidewire shadow bridged".
    nodule_protrusion_mm : float or None
        Largest protrusion (mm) of the calcium surface into the lumen in this frame (the
        per-frame evidence of the calcified-nodule rule); None without calcium or spacing.
    """

    frame: int
    assessable: bool
    center: tuple[float, float]
    lumen_contour: FloatArray | None
    eem_contour: FloatArray | None
    lumen_area_mm2: float | None
    eem_area_mm2: float | None
    eem_mean_diameter_mm: float | None
    eem_interpolated_fraction: float
    calcium_mask: BoolArray
    superficial_calcium_mask: BoolArray
    calcium_arc_deg: float
    superficial_calcium_arc_deg: float
    calcified_nodule: bool
    calcium_depth_mm: FloatArray | None = None
    reason: str = ""
    flags: tuple[str, ...] = ()
    nodule_protrusion_mm: float | None = None


@dataclass(frozen=True)
class LesionFeatures:
    """One calcified segment along the pullback and the features the scores need.

    Attributes follow docs/scoring.md (Zhang et al., Circ Cardiovasc Interv
    2021;14:e010296). Lengths are None when the frame spacing is unknown; the vessel diameter
    is None when the pixel spacing is unknown.
    """

    start_frame: int
    end_frame: int
    max_calcium_frame: int
    max_superficial_calcium_arc_deg: float
    length_superficial_calcium_over_270_mm: float | None
    over_270_start_frame: int | None
    over_270_end_frame: int | None
    circumferential_superficial_calcium: bool
    calcified_nodule: bool
    vessel_diameter_at_max_calcium_mm: float | None
    lumen_area_at_max_calcium_mm2: float | None
    eem_interpolated_fraction_at_max_calcium: float
    calcium_length_mm: float | None


@dataclass(frozen=True)
class PullbackAnalysis:
    """Everything the analysis measured on one pullback."""

    frame_count: int
    pixel_spacing_mm: float | None
    frame_spacing_mm: float | None
    frames: tuple[FrameMeasurement, ...]
    lesions: tuple[LesionFeatures, ...]
    not_assessable: tuple[str, ...] = field(default=())
    """Human-readable reasons why some measurements are missing."""
    reason: str = ""
    """Why the pullback as a whole cannot be scored (empty when it can): no or too few
    assessable frames, no usable signal, unknown geometry. When set, no component and no total
    may be reported: the reports say "cannot be determined" with this reason."""

    @property
    def assessable_frame_count(self) -> int:
        """Number of assessable frames."""
        return sum(1 for f in self.frames if f.assessable)

    @property
    def assessable(self) -> bool:
        """True when the pullback can be scored (see :attr:`reason`)."""
        return not self.reason
