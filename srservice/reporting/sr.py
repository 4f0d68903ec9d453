"""TID 1500 Imaging Measurement Report (Comprehensive 3D SR) built with highdicom.

Content tree (PS3.16 TID 1500, built by :class:`highdicom.sr.MeasurementReport`):

- Observation context with the algorithm as device observer (TID 1004), procedure reported
  SCT 241466007 "Intravascular ultrasound", an Image Library (TID 1600) referencing the source
  IVUS instance(s) the content references.
- A whole-pullback TID 1501 group: the highest segment score and the overall recommendation,
  with the algorithm identification (TID 4019) carrying every analysis parameter (the other
  groups name the algorithm and version only).
- Per calcified segment one TID 1501 group (tracking identifier + UID, finding type SCT
  237897009 "Vascular calcification", algorithm identification TID 4019): maximum superficial
  calcium arc (DCM 122355), length of > 270-degree superficial calcium and calcified segment
  length (DCM 122341 with a method), mean EEM diameter (DCM 122330), EEM area (DCM 122333) and
  lumen area (SCT 397415007) at the maximum calcium site, the IVUS calcium score and its
  components (private scheme ``99SRSVC``), circumferential calcium, calcified nodule,
  recommendation, derivation-population and completeness flags. A value that cannot be
  determined (score, component, recommendation) is a CODE item with SCT 373068000
  "Undetermined" (CID 230 "Yes-No"), never a number.
- Per segment one TID 1501 group per contour of the maximum calcium frame (one referenced
  frame number each): the lumen (lumen area), the EEM (EEM area and mean diameter) and each
  calcium arc piece (arc of any depth), the values INFERRED FROM the contour, a closed or open
  POLYLINE (SCOORD, PS3.3 C.18.6) so viewers such as OHIF can draw them.
- Every group ends with a TEXT qualitative evaluation (TID 1501 row 12) DCM 121106
  "Comment": one sentence with the group's values, score and components first
  (:data:`COMMENT`). Every Tracking Identifier starts with :data:`VIEWER_TRACKING_PREFIX` and
  every value is INFERRED FROM a contour (TID 300), so that OHIF (extension
  cornerstone-dicom-sr with ``@cornerstonejs/adapters``) can load the groups into its
  measurement panel, each listed with its Comment (``docs/viewing.md``).
- A "Qualitative Evaluations" container (UMLS C0034375, TID 1500 row 9) with TEXT items: the
  decision-support disclaimer, "IVUS calcium score cannot be determined: <reason>" for a
  pullback that cannot be scored, recommendation sentences, "outside derivation population"
  statements, the not-assessable frames grouped by reason and everything that could not be
  measured.

Verification Flag UNVERIFIED, Completion Flag COMPLETE; patient and study are copied from the
source by highdicom; Series / SOP Instance / tracking UIDs come from
:mod:`srservice.reporting.uids` (with the revision of a superseding report in the version).

Frame references (PS3.3 C.18.3.1, Referenced Frame Number only for multi-frame SOP classes):
a multi-frame pullback is referenced as (its instance, frame number); a pullback assembled from
single-frame instances (:class:`Source` with ``frame_headers``) references the instance holding
the frame, without a frame number, and lists every instance of the pullback in the Current
Requested Procedure Evidence Sequence (PS3.3 C.17.2.3).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from srservice import ALGORITHM_NAME, ALGORITHM_VERSION, scoring
from srservice.analysis.types import FrameMeasurement, LesionFeatures, PullbackAnalysis
from srservice.reporting import codes as c
from srservice.reporting.assessability import not_assessable_lines
from srservice.reporting.overlay import arc_polylines, closed
from srservice.reporting.uids import derived_uid, output_version
from srservice.scoring import (
    CANNOT_BE_DETERMINED,
    CITATION_IVUS,
    DISCLAIMER,
    IvusCalciumScore,
    PullbackScore,
    score_pullback,
)

SR_SERIES_NUMBER = 990
SR_DECIMALS = 3
MANUFACTURER = "srservice"
QUALITATIVE_EVALUATIONS = Code("C0034375", "UMLS", "Qualitative Evaluations")
#: Score components as the group sentences name them (:func:`lesion_sentence`).
COMPONENT_NAMES = {
    scoring.LONG_CALCIUM: "long superficial calcium",
    scoring.CIRCUMFERENTIAL: "circumferential calcium",
    scoring.NODULE: "calcified nodule",
    scoring.SMALL_VESSEL: "small vessel",
}
#: Concept name of each group's one-sentence summary (TEXT qualitative evaluation).
COMMENT = codes.DCM.Comment
#: Start of every Tracking Identifier (DCM 112039, free text). OHIF 3.13 loads an SR group into
#: its measurement panel only when the identifier starts with a Cornerstone tool's tag
#: (``isValidCornerstoneTrackingIdentifier`` in ``@cornerstonejs/adapters``,
#: Cornerstone3D/BaseAdapter3D.js); the ArrowAnnotate tool shows the group's Comment as its
#: text and computes nothing from the image.
VIEWER_TRACKING_PREFIX = "Cornerstone3DTools@^0.1.0:ArrowAnnotate"


def algorithm_identification(
        parameters: Mapping[str, object] | None) -> hd.sr.AlgorithmIdentification:
    """TID 4019 Algorithm Identification with ``key=value`` parameters."""
    params = [f"{k}={v}" for k, v in sorted((parameters or {}).items())]
    return hd.sr.AlgorithmIdentification(name=ALGORITHM_NAME, version=ALGORITHM_VERSION,
                                         parameters=params or None)


@dataclass(frozen=True)
class Source:
    """The analysed instance(s) and the version output UIDs are derived with.

    Attributes
    ----------
    header : pydicom.dataset.Dataset
        Source dataset without Pixel Data (the first instance of a single-frame series).
    version : str
        Version string for :func:`srservice.reporting.uids.derived_uid`
        (:func:`srservice.reporting.uids.output_version`).
    frame_headers : tuple of Dataset
        For a single-frame series: the header of the instance holding frame ``i + 1`` at
        index ``i``; empty for one (multi-frame) instance.
    """

    header: Dataset
    version: str = ALGORITHM_VERSION
    frame_headers: tuple[Dataset, ...] = ()

    def uid(self, purpose: str) -> str:
        """Output UID for ``purpose`` (derived from the source SOP Instance UID)."""
        return derived_uid(str(self.header.SOPInstanceUID), purpose, self.version)

    def frame_instance(self, frame: int) -> Dataset | None:
        """Header of the single-frame instance holding 1-based ``frame`` (None: multi-frame)."""
        if not self.frame_headers:
            return None
        if not 1 <= frame <= len(self.frame_headers):
            raise ValueError(f"frame {frame} outside the {len(self.frame_headers)} instances "
                             "of the series")
        return self.frame_headers[frame - 1]

    def measurement_ref(self, frame: int) -> hd.sr.SourceImageForMeasurement:
        """Image reference of a measurement made on ``frame``."""
        inst = self.frame_instance(frame)
        if inst is None:
            return hd.sr.SourceImageForMeasurement(self.header.SOPClassUID,
                                                   self.header.SOPInstanceUID, [frame])
        return hd.sr.SourceImageForMeasurement(inst.SOPClassUID, inst.SOPInstanceUID)

    def coords(self, points: np.ndarray, frame: int) -> hd.sr.CoordinatesForMeasurement:
        """Return a POLYLINE on ``frame`` that a measurement is INFERRED FROM (TID 320)."""
        inst = self.frame_instance(frame)
        source = (hd.sr.SourceImageForRegion(self.header.SOPClassUID,
                                             self.header.SOPInstanceUID, [frame])
                  if inst is None else
                  hd.sr.SourceImageForRegion(inst.SOPClassUID, inst.SOPInstanceUID))
        return hd.sr.CoordinatesForMeasurement(
            graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
            graphic_data=np.asarray(points, dtype=np.float64), source_image=source)

    def tracking(self, purpose: str, label: str) -> hd.sr.TrackingIdentifier:
        """Return the Tracking Identifier (TID 4108) of the group for ``purpose``.

        Its text is :data:`VIEWER_TRACKING_PREFIX` followed by ``label``.
        """
        return hd.sr.TrackingIdentifier(uid=self.uid(purpose),
                                        identifier=f"{VIEWER_TRACKING_PREFIX} {label}")

    def library(self, frames: Iterable[int]) -> list[Dataset]:
        """Image Library entries: the source header plus the instances of ``frames``."""
        out = {str(self.header.SOPInstanceUID): self.header}
        for frame in frames:
            inst = self.frame_instance(frame)
            if inst is not None:
                out.setdefault(str(inst.SOPInstanceUID), inst)
        return list(out.values())

    def evidence(self) -> list[Dataset]:
        """Every analysed instance (Current Requested Procedure Evidence)."""
        return [self.header, *(h for h in self.frame_headers
                               if h.SOPInstanceUID != self.header.SOPInstanceUID)]


def _measurement(name: Code, value: float | int, unit: Code, *, method: Code | None = None,
                 derivation: Code | None = None,
                 refs: Sequence[hd.sr.SourceImageForMeasurement] | None = None,
                 coords: Sequence[hd.sr.CoordinatesForMeasurement] | None = None,
                 ) -> hd.sr.Measurement:
    # Numeric values are rounded to SR_DECIMALS decimals (0.001 mm / deg / mm2), far below
    # the measurement precision, so viewers do not print 15 digits.
    value = value if isinstance(value, int) else round(float(value), SR_DECIMALS)
    return hd.sr.Measurement(name=name, value=value, unit=unit, method=method,
                             derivation=derivation,
                             referenced_images=list(refs) if refs else None,
                             referenced_coordinates=list(coords) if coords else None)


class _Anchor:
    """The contours of one frame as SCOORDs a measurement is INFERRED FROM (TID 300 row 8).

    Every NUM of a TID 1501 group is linked to a contour on the frame its group is about
    (PS3.16 TID 300 "Measurement": INFERRED FROM SCOORD, TID 320 image or spatial coordinates),
    so that a viewer can show the value where it was measured; OHIF's SR loader needs at
    least one SCOORD per measurement group. A frame without any contour is outlined whole
    (the region the analysis looked at).
    """

    def __init__(self, src: Source, frame: FrameMeasurement, shape: tuple[int, int]) -> None:
        self.src = src
        self.frame = frame
        self.shape = shape

    def _coords(self, points: np.ndarray) -> hd.sr.CoordinatesForMeasurement:
        return self.src.coords(points, self.frame.frame)

    def outline(self) -> list[hd.sr.CoordinatesForMeasurement]:
        """Return the whole frame (image border)."""
        rows, cols = self.shape
        box = np.array([[0, 0], [cols - 1, 0], [cols - 1, rows - 1], [0, rows - 1], [0, 0]],
                       dtype=np.float64)
        return [self._coords(box)]

    def lumen(self) -> list[hd.sr.CoordinatesForMeasurement]:
        """Return the lumen contour (else the whole frame)."""
        c = self.frame.lumen_contour
        return [self._coords(closed(c))] if c is not None and len(c) >= 3 else self.outline()

    def eem(self) -> list[hd.sr.CoordinatesForMeasurement]:
        """Return the EEM contour (else the lumen contour, else the whole frame)."""
        c = self.frame.eem_contour
        return [self._coords(closed(c))] if c is not None and len(c) >= 3 else self.lumen()

    def arcs(self, mask: np.ndarray | None = None) -> list[hd.sr.CoordinatesForMeasurement]:
        """Return one arc per calcium piece of ``mask`` (else the EEM contour)."""
        pieces = arc_polylines(self.frame, mask)
        return [self._coords(p) for p, _ in pieces] if pieces else self.eem()


def _lesion_group(src: Source, index: int, lesion: LesionFeatures, score: IvusCalciumScore,
                  anchor: _Anchor | None, algo: hd.sr.AlgorithmIdentification,
                  ) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """TID 1501 group of one calcified segment: score and components first, then the values.

    No concept name appears twice in the group (viewers show concept names, not modifiers).
    """
    at_max = [src.measurement_ref(lesion.max_calcium_frame)]

    def num(name: Code, value: float | int, unit: Code, on: str, *,
            method: Code | None = None, derivation: Code | None = None) -> hd.sr.Measurement:
        """Return a value linked to the contour ``on`` ("eem", "lumen", "arc") of the max frame."""
        if anchor is None:
            return _measurement(name, value, unit, method=method, derivation=derivation,
                                refs=at_max)
        coords = (anchor.arcs(anchor.frame.superficial_calcium_mask) if on == "arc"
                  else anchor.lumen() if on == "lumen" else anchor.eem())
        return _measurement(name, value, unit, method=method, derivation=derivation,
                            coords=coords)

    m: list[hd.sr.Measurement] = []
    q: list[hd.sr.QualitativeEvaluation] = []
    if score.total is not None:
        m.append(num(c.IVUS_CALCIUM_SCORE, score.total, c.POINTS, on="eem"))
    else:
        q.append(hd.sr.QualitativeEvaluation(c.IVUS_CALCIUM_SCORE, c.UNDETERMINED))
        if score.determinable:  # some components known: the bracket says something
            m.append(num(c.IVUS_CALCIUM_SCORE_MINIMUM, score.minimum_total, c.POINTS, on="eem"))
            m.append(num(c.IVUS_CALCIUM_SCORE_MAXIMUM, score.maximum_total, c.POINTS, on="eem"))
    for comp in score.components:
        if comp.points is not None:
            m.append(num(c.COMPONENT_CODES[comp.name], comp.points, c.POINTS, on="eem"))
        else:
            q.append(hd.sr.QualitativeEvaluation(c.COMPONENT_CODES[comp.name], c.UNDETERMINED))
    m.append(num(c.ARC_OF_CALCIUM, lesion.max_superficial_calcium_arc_deg, c.DEG, on="arc",
                 method=c.METHOD_SUPERFICIAL_ARC, derivation=c.MAXIMUM))
    if lesion.length_superficial_calcium_over_270_mm is not None:
        m.append(num(c.LENGTH_OVER_270, lesion.length_superficial_calcium_over_270_mm, c.MM,
                     on="arc"))
    if lesion.calcium_length_mm is not None:
        m.append(num(c.CALCIUM_LENGTH, lesion.calcium_length_mm, c.MM, on="arc",
                     method=c.METHOD_SEGMENT_EXTENT))
    if lesion.vessel_diameter_at_max_calcium_mm is not None:
        m.append(num(c.EEM_DIAMETER, lesion.vessel_diameter_at_max_calcium_mm, c.MM, on="eem",
                     derivation=c.MEAN))
    if anchor is not None and anchor.frame.eem_area_mm2 is not None:
        m.append(num(c.EEM_AREA, anchor.frame.eem_area_mm2, c.MM2, on="eem"))
    if lesion.lumen_area_at_max_calcium_mm2 is not None:
        m.append(num(c.LUMEN_AREA, lesion.lumen_area_at_max_calcium_mm2, c.MM2, on="lumen"))
    m.append(num(c.EEM_INTERPOLATED_FRACTION,
                 100.0 * lesion.eem_interpolated_fraction_at_max_calcium, c.PERCENT, on="eem"))
    circumferential = score.component("circumferential_calcium")
    nodule = score.component("calcified_nodule")
    q += [
        hd.sr.QualitativeEvaluation(
            c.CIRCUMFERENTIAL_CALCIUM,
            c.yes_no(bool(circumferential.value)) if circumferential.assessable
            else c.UNDETERMINED),
        hd.sr.QualitativeEvaluation(
            c.CALCIFIED_NODULE,
            c.yes_no(lesion.calcified_nodule) if nodule.assessable else c.UNDETERMINED),
        hd.sr.QualitativeEvaluation(
            c.CALCIUM_MODIFICATION_RECOMMENDED,
            _yes_no_undetermined(score.calcium_modification_recommended)),
        hd.sr.QualitativeEvaluation(c.OUTSIDE_DERIVATION_POPULATION,
                                    c.yes_no(score.outside_derivation_population)),
        hd.sr.QualitativeEvaluation(c.SCORE_COMPLETE, c.yes_no(score.total is not None)),
    ]
    name = f"Calcified segment {index} (frames {lesion.start_frame}-{lesion.end_frame})"
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=src.tracking(f"lesion-{index}", name),
        finding_type=c.VASCULAR_CALCIFICATION, algorithm_id=algo, measurements=m,
        qualitative_evaluations=q)
    return _with_comment(group, f"{name}: {lesion_sentence(lesion, score)}")


def lesion_sentence(lesion: LesionFeatures, score: IvusCalciumScore) -> str:
    """Return the values of a segment in one sentence: score and components first.

    E.g. "IVUS calcium score 4; components: long superficial calcium 1, circumferential
    calcium 1, calcified nodule 1, small vessel 1; maximum superficial calcium arc 360°".
    """
    parts = [f"{COMPONENT_NAMES[comp.name]} "
             f"{comp.points if comp.points is not None else CANNOT_BE_DETERMINED}"
             for comp in score.components]
    out = (f"IVUS calcium score {score.total_text}; components: {', '.join(parts)}; maximum "
           f"superficial calcium arc {lesion.max_superficial_calcium_arc_deg:.0f}°")
    if lesion.length_superficial_calcium_over_270_mm is not None:
        out += (", superficial calcium arc > 270° over "
                f"{lesion.length_superficial_calcium_over_270_mm:.1f} mm")
    return out


def _with_comment(group: hd.sr.MeasurementsAndQualitativeEvaluations, text: str,
                  ) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """Append the TEXT qualitative evaluation DCM 121106 "Comment" (TID 1501 row 12)."""
    group[0].ContentSequence.append(hd.sr.TextContentItem(
        name=COMMENT, value=text, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
    return group


def _roi_group(src: Source, uid_purpose: str, label: str, points: np.ndarray, frame: int,
               finding: Code, values: list[tuple[Code, float, Code, Code | None, Code | None]],
               text: str, algo: hd.sr.AlgorithmIdentification,
               ) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """TID 1501 group of one contour: its values, each INFERRED FROM the contour, and a Comment.

    ``values`` holds (name, value, unit, method, derivation) tuples. A TID 1501 group rather
    than a TID 1410 planar ROI group: TID 1410 measurements are of the region itself and may
    not reference coordinates (TID 1419), and OHIF loads a group into its measurement panel
    only from the coordinates its first value is INFERRED FROM (``getSetupMeasurementData`` in
    ``@cornerstonejs/adapters``, Cornerstone3D/MeasurementReport.js).
    """
    on = [src.coords(points, frame)]
    measurements = [_measurement(name, value, unit, method=method, derivation=derivation,
                                 coords=on)
                    for name, value, unit, method, derivation in values]
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=src.tracking(uid_purpose, label), finding_type=finding,
        algorithm_id=algo, measurements=measurements)
    return _with_comment(group, f"{label}: {text}")


def _roi_groups(src: Source, index: int, frame: FrameMeasurement,
                algo: hd.sr.AlgorithmIdentification,
                ) -> list[hd.sr.MeasurementsAndQualitativeEvaluations]:
    """One group per contour of the maximum calcium ``frame``: lumen, EEM, each calcium arc.

    A contour without any measured value gets no group of its own (it is still drawn with the
    segment's values it is linked to).
    """
    n = frame.frame
    groups = []
    if (frame.lumen_contour is not None and len(frame.lumen_contour) >= 3
            and frame.lumen_area_mm2 is not None):
        lumen = frame.lumen_area_mm2
        groups.append(_roi_group(
            src, f"lesion-{index}-lumen", f"Segment {index}, frame {n}, lumen contour",
            closed(frame.lumen_contour), n, c.LUMEN_OF_ARTERY,
            [(c.LUMEN_AREA, lumen, c.MM2, None, None)], f"lumen area {lumen:.2f} mm²", algo))
    area, diameter = frame.eem_area_mm2, frame.eem_mean_diameter_mm
    if (frame.eem_contour is not None and len(frame.eem_contour) >= 3
            and (area is not None or diameter is not None)):
        values: list[tuple[Code, float, Code, Code | None, Code | None]] = []
        texts = []
        if area is not None:
            values.append((c.EEM_AREA, area, c.MM2, None, None))
            texts.append(f"EEM area {area:.2f} mm²")
        if diameter is not None:
            values.append((c.EEM_DIAMETER, diameter, c.MM, None, c.MEAN))
            texts.append(f"mean EEM diameter {diameter:.2f} mm")
        groups.append(_roi_group(src, f"lesion-{index}-eem",
                                 f"Segment {index}, frame {n}, EEM contour",
                                 closed(frame.eem_contour), n, c.EEM, values,
                                 ", ".join(texts), algo))
    for k, (pts, arc) in enumerate(arc_polylines(frame), start=1):
        groups.append(_roi_group(
            src, f"lesion-{index}-arc-{k}", f"Segment {index}, frame {n}, calcium arc {k}",
            pts, n, c.VASCULAR_CALCIFICATION,
            [(c.ARC_OF_CALCIUM, arc, c.DEG, c.METHOD_ANY_DEPTH_ARC, None)],
            f"arc of calcium (any depth) {arc:.0f}°", algo))
    return groups


def _yes_no_undetermined(flag: bool | None) -> Code:
    """SCT Yes / No, or SCT Undetermined for None (all three in CID 230)."""
    return c.UNDETERMINED if flag is None else c.yes_no(flag)


def summary_frame(analysis: PullbackAnalysis,
                  scores: Sequence[IvusCalciumScore]) -> FrameMeasurement | None:
    """Return the frame the whole-pullback results are shown on.

    The maximum calcium frame of the top segment (highest score, else highest upper bound,
    the first on ties); without a calcified segment the middle assessable frame; without an
    assessable frame the middle frame; None for a pullback without frames.
    """
    by_frame = {f.frame: f for f in analysis.frames}
    if analysis.lesions:
        def rank(i: int) -> tuple[int, int]:
            s = scores[i]
            return (s.total if s.total is not None else s.maximum_total, -i)
        top = max(range(len(analysis.lesions)), key=rank)
        frame = by_frame.get(analysis.lesions[top].max_calcium_frame)
        if frame is not None:
            return frame
    assessable = [f for f in analysis.frames if f.assessable]
    pool = assessable or list(analysis.frames)
    return pool[(len(pool) - 1) // 2] if pool else None


def _summary_group(src: Source, analysis: PullbackAnalysis, pullback: PullbackScore,
                   anchor: _Anchor | None,
                   algo: hd.sr.AlgorithmIdentification,
                   ) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """Pullback-level group: the highest segment score (0 when nothing is calcified).

    A score that cannot be determined is no NUM item but a CODE item "IVUS calcium score" =
    SCT "Undetermined"; the reason is a TEXT item of the Qualitative Evaluations container.
    The number of assessable frames closes the group, so that it always holds a value linked
    to the frame it is shown on (:func:`summary_frame`).
    """
    m = ([] if pullback.total is None
         else [_measurement(c.IVUS_CALCIUM_SCORE, pullback.total, c.POINTS,
                            coords=anchor.eem() if anchor is not None else None)])
    m.append(_measurement(c.ASSESSABLE_FRAMES, sum(1 for f in analysis.frames if f.assessable),
                          c.FRAMES, coords=anchor.outline() if anchor is not None else None))
    q = []
    if pullback.total is None:
        q.append(hd.sr.QualitativeEvaluation(c.IVUS_CALCIUM_SCORE, c.UNDETERMINED))
    q += [hd.sr.QualitativeEvaluation(
              c.CALCIUM_MODIFICATION_RECOMMENDED,
              _yes_no_undetermined(pullback.calcium_modification_recommended)),
          hd.sr.QualitativeEvaluation(c.SCORE_COMPLETE, c.yes_no(pullback.total is not None))]
    assessable = sum(1 for f in analysis.frames if f.assessable)
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=src.tracking("pullback", "Whole pullback (highest segment score)"),
        algorithm_id=algo, measurements=m, qualitative_evaluations=q, source_images=[
            hd.sr.SourceImageForMeasurementGroup(src.header.SOPClassUID,
                                                 src.header.SOPInstanceUID)])
    return _with_comment(group, f"Whole pullback: {pullback.result}; {assessable} of "
                                f"{analysis.frame_count} frames assessable")


def statements(analysis: PullbackAnalysis, scores: Sequence[IvusCalciumScore]) -> list[str]:
    """All sentences the reports carry: disclaimer, recommendations, caveats, missing values.

    A pullback that cannot be scored says "IVUS calcium score cannot be determined: <reason>"
    right after the disclaimer, never "score 0". Not-assessable frames are listed as runs
    grouped by reason (:func:`srservice.reporting.assessability.not_assessable_lines`).
    """
    pullback = score_pullback(analysis, scores)
    out = [DISCLAIMER]
    if not pullback.assessable:
        out.append(f"{pullback.result}. No score is given and no recommendation on calcium "
                   "modification is made.")
    elif not analysis.lesions:
        out.append("No calcified segment found: IVUS calcium score 0; the score does not call "
                   "for calcium modification.")
    for i, (lesion, score) in enumerate(zip(analysis.lesions, pullback.segments, strict=True),
                                        start=1):
        prefix = f"Segment {i} (frames {lesion.start_frame}-{lesion.end_frame}): "
        out.append(prefix + score.recommendation)
        out += [prefix + s for s in score.statements]
    out += not_assessable_lines(analysis.frames)
    out += [f"Not measured: {reason}" for reason in analysis.not_assessable]
    out.append(f"Method: IVUS calcium score of {CITATION_IVUS}; choices where the paper is "
               "silent are documented in docs/scoring.md.")
    return out


def build_sr(header: Dataset, analysis: PullbackAnalysis, scores: Sequence[IvusCalciumScore],
             parameters: Mapping[str, object] | None = None, *, revision: str | None = None,
             frame_headers: Sequence[Dataset] = ()) -> hd.sr.Comprehensive3DSR:
    """Build the TID 1500 Comprehensive 3D SR for one analysed pullback.

    Parameters
    ----------
    header : pydicom.dataset.Dataset
        The source IVUS dataset (pixel data not needed): patient, study and references.
    analysis : PullbackAnalysis
        Per-frame measurements and lesions.
    scores : sequence of IvusCalciumScore
        One score per lesion, in the order of ``analysis.lesions``.
    parameters : mapping, optional
        Algorithm parameters (``AnalysisParameters.as_dict()``), written into TID 4019.
    revision : str, optional
        Revision of a superseding report: every derived UID (series, instance, tracking) uses
        the version ``f"{ALGORITHM_VERSION}+{revision}"``.
    frame_headers : sequence of Dataset, optional
        One header per frame for a pullback made of single-frame instances (frame order);
        frames are then referenced as their own instance, without a frame number.

    Returns
    -------
    highdicom.sr.Comprehensive3DSR
        Valid SR (highdicom validates while building), UIDs derived deterministically.
    """
    src = Source(header, output_version(revision), tuple(frame_headers))
    if src.frame_headers and len(src.frame_headers) != analysis.frame_count:
        raise ValueError(f"{len(src.frame_headers)} frame instances for "
                         f"{analysis.frame_count} analysed frames")
    # Parameters once (pullback group); the other groups name the algorithm and version only.
    algo_full = algorithm_identification(parameters)
    algo = algorithm_identification(None)
    pullback = score_pullback(analysis, scores)
    by_frame = {f.frame: f for f in analysis.frames}
    shape = (int(header.get("Rows", 0) or 0), int(header.get("Columns", 0) or 0))

    def anchor(frame: FrameMeasurement | None) -> _Anchor | None:
        return None if frame is None else _Anchor(src, frame, shape)

    # The whole-pullback group comes first: viewers (OHIF) open an SR at its first group.
    groups: list[hd.sr.MeasurementsAndQualitativeEvaluations] = [
        _summary_group(src, analysis, pullback,
                       anchor(summary_frame(analysis, pullback.segments)), algo_full)]
    for i, (lesion, score) in enumerate(zip(analysis.lesions, pullback.segments, strict=True),
                                        start=1):
        frame = by_frame.get(lesion.max_calcium_frame)
        groups.append(_lesion_group(src, i, lesion, score, anchor(frame), algo))
        if frame is not None and frame.assessable:
            groups.extend(_roi_groups(src, i, frame, algo))
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=derived_uid(ALGORITHM_NAME, "device-observer"), name=ALGORITHM_NAME,
            manufacturer_name=MANUFACTURER, model_name=ALGORITHM_VERSION))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=c.IVUS_PROCEDURE,
        imaging_measurements=groups,
        title=codes.cid7021.ImagingMeasurementReport,
        referenced_images=src.library(_referenced_frames(analysis, scores)))
    texts = hd.sr.ContainerContentItem(name=QUALITATIVE_EVALUATIONS,
                                       relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
    texts.ContentSequence = hd.sr.ContentSequence([
        hd.sr.TextContentItem(name=c.FINDING, value=text,
                              relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
        for text in statements(analysis, scores)])
    report[0].ContentSequence.append(texts)
    sr = hd.sr.Comprehensive3DSR(
        evidence=src.evidence(), content=report,
        series_instance_uid=src.uid("sr-series"), series_number=SR_SERIES_NUMBER,
        sop_instance_uid=src.uid("sr-instance"), instance_number=1,
        manufacturer=MANUFACTURER, is_complete=True, is_final=True, is_verified=False,
        series_description="IVUS calcium score (automated, unverified)")
    sr.CodingSchemeIdentificationSequence = [c.coding_scheme_identification()]
    _separate(sr)
    return sr



def _referenced_frames(analysis: PullbackAnalysis,
                       scores: Sequence[IvusCalciumScore]) -> list[int]:
    """Frames the SR's coordinates are on (for the Image Library)."""
    frames = [x.max_calcium_frame for x in analysis.lesions]
    shown = summary_frame(analysis, scores)
    return frames + ([shown.frame] if shown is not None else [])


def _separate(item: Dataset) -> None:
    """Mark every CONTAINER's content as SEPARATE items (PS3.3 C.17.3.2.3).

    highdicom writes CONTINUOUS; renderers (e.g. DCMTK ``dsr2html``) then print a measurement
    group as running text without the concept names. The items here are independent
    measurements, which is what SEPARATE says.
    """
    if item.get("ValueType") == "CONTAINER":
        item.ContinuityOfContent = "SEPARATE"
    for child in item.get("ContentSequence", []):
        _separate(child)
