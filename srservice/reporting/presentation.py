"""Grayscale Softcopy Presentation State: the result drawn on the IVUS frames for any viewer.

Many PACS viewers do not draw TID 1500 SR content but do apply presentation states. One
Grayscale Softcopy Presentation State (PS3.3 A.33.1, built with :mod:`highdicom.pr`) in the
study of the pullback annotates, for every calcified segment, its maximum calcium frame
(without a calcified segment: the frame the SR's summary is shown on,
:func:`srservice.reporting.sr.summary_frame`):

- graphic layer ``LUMEN``: the lumen contour (closed POLYLINE, PIXEL units, PS3.3 C.10.5),
- graphic layer ``EEM``: the EEM contour,
- graphic layer ``CALCIUM``: one arc per calcium piece, just outside the lumen border
  (:func:`srservice.reporting.overlay.arc_polylines`),
- graphic layer ``SCORE``: text lines at the top left of the frame: the segment's IVUS calcium
  score with its components, and the decision-support caveat.

Frames are referenced as (instance, Referenced Frame Number) for a multi-frame pullback and as
their own instance for a single-frame series (PS3.3 C.10.5.1). UIDs are derived like the SR's
(:mod:`srservice.reporting.uids`). The presentation state changes no pixel value: no VOI or
Presentation LUT beyond the identity of the source's grey levels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

from srservice import ALGORITHM_NAME, ALGORITHM_VERSION
from srservice.analysis.types import FrameMeasurement, PullbackAnalysis
from srservice.reporting.overlay import arc_polylines, closed
from srservice.reporting.sr import MANUFACTURER, Source, summary_frame
from srservice.reporting.uids import output_version
from srservice.scoring import IvusCalciumScore, PullbackScore, score_pullback

PR_SERIES_NUMBER = 992
CONTENT_LABEL = "IVUS_CA_SCORE"
SERIES_DESCRIPTION = "IVUS calcium score overlay (automated, unverified)"
#: Text line height in pixels of the annotated frame (a fraction of the frame height).
_LINE_FRACTION = 0.045

# CIELab colours (PS3.3 C.10.7.1.1) close to the PDF's: lumen cyan, EEM yellow, calcium
# orange-red, text white.
_LAYERS = (
    ("LUMEN", "Lumen contour", (88.0, -37.0, -12.0)),
    ("EEM", "External elastic membrane contour", (95.0, -15.0, 85.0)),
    ("CALCIUM", "Calcium arc (one per calcium piece)", (60.0, 60.0, 65.0)),
    ("SCORE", "IVUS calcium score", (100.0, 0.0, 0.0)),
)


@dataclass(frozen=True)
class _Annotated:
    frame: FrameMeasurement
    lines: tuple[str, ...]


def _segment_lines(index: int, start: int, end: int, score: IvusCalciumScore) -> list[str]:
    out = [f"Segment {index} (frames {start}-{end}): IVUS calcium score {score.total_text}"]
    for comp in score.components:
        points = "not assessable" if comp.points is None else f"{comp.points} point" + (
            "" if comp.points == 1 else "s")
        out.append(f"  {comp.label}: {points}")
    return out


def _annotated(analysis: PullbackAnalysis, pullback: PullbackScore) -> list[_Annotated]:
    by_frame = {f.frame: f for f in analysis.frames}
    caveat = "Automated, not verified by a physician"
    out: list[_Annotated] = []
    for i, (lesion, score) in enumerate(zip(analysis.lesions, pullback.segments, strict=True),
                                        start=1):
        frame = by_frame.get(lesion.max_calcium_frame)
        if frame is not None:
            lines = _segment_lines(i, lesion.start_frame, lesion.end_frame, score)
            if pullback.reason:  # the pullback cannot be scored: say why on every frame
                lines.append(pullback.reason)
            out.append(_Annotated(frame, (*lines, caveat)))
    if not out:
        frame = summary_frame(analysis, pullback.segments)
        if frame is not None:
            head = ("No calcified segment: IVUS calcium score 0" if pullback.total == 0
                    else f"IVUS calcium score {pullback.total_text}")
            text = [head, pullback.reason] if pullback.reason else [head]
            out.append(_Annotated(frame, (*text, caveat)))
    return out


def _graphics(frame: FrameMeasurement, rows: int, cols: int
              ) -> dict[str, list[hd.pr.GraphicObject]]:
    def poly(points: np.ndarray) -> hd.pr.GraphicObject:
        # PIXEL annotation units address the image matrix (PS3.3 C.10.5.1.2): a contour that
        # runs beyond the field of view is drawn along the image edge.
        pts = np.asarray(points, dtype=np.float64).copy()
        pts[:, 0] = np.clip(pts[:, 0], 0.0, float(cols - 1))
        pts[:, 1] = np.clip(pts[:, 1], 0.0, float(rows - 1))
        return hd.pr.GraphicObject(graphic_type=hd.pr.GraphicTypeValues.POLYLINE,
                                   graphic_data=pts, units=hd.pr.AnnotationUnitsValues.PIXEL)

    out: dict[str, list[hd.pr.GraphicObject]] = {"LUMEN": [], "EEM": [], "CALCIUM": []}
    if frame.lumen_contour is not None and len(frame.lumen_contour) >= 3:
        out["LUMEN"].append(poly(closed(frame.lumen_contour)))
    if frame.eem_contour is not None and len(frame.eem_contour) >= 3:
        out["EEM"].append(poly(closed(frame.eem_contour)))
    out["CALCIUM"] = [poly(pts) for pts, _ in arc_polylines(frame)]
    return out


def _texts(lines: Sequence[str], rows: int, cols: int) -> list[hd.pr.TextObject]:
    height = max(8.0, rows * _LINE_FRACTION)
    out = []
    for k, line in enumerate(lines):
        top = 2.0 + k * height
        if top + height > rows:
            break
        out.append(hd.pr.TextObject(
            text_value=line, units=hd.pr.AnnotationUnitsValues.PIXEL,
            bounding_box=(2.0, top, float(cols - 2), top + height),
            text_justification=hd.pr.TextJustificationValues.LEFT))
    return out


def build_presentation_state(header: Dataset, analysis: PullbackAnalysis,
                             scores: Sequence[IvusCalciumScore], *,
                             revision: str | None = None,
                             frame_headers: Sequence[Dataset] = (),
                             ) -> hd.pr.GrayscaleSoftcopyPresentationState | None:
    """Build the presentation state of one analysed pullback (see the module docstring).

    Parameters
    ----------
    header : pydicom.dataset.Dataset
        The source IVUS dataset (pixel data not needed).
    analysis : PullbackAnalysis
        Per-frame measurements and lesions.
    scores : sequence of IvusCalciumScore
        One score per lesion, in the order of ``analysis.lesions``.
    revision : str, optional
        Revision of a superseding report (as for the SR).
    frame_headers : sequence of Dataset, optional
        One header per frame for a pullback made of single-frame instances.

    Returns
    -------
    highdicom.pr.GrayscaleSoftcopyPresentationState or None
        None when the pullback has no frame to annotate.
    """
    src = Source(header, output_version(revision), tuple(frame_headers))
    pullback = score_pullback(analysis, scores)
    annotated = _annotated(analysis, pullback)
    if not annotated:
        return None
    rows, cols = int(header.Rows), int(header.Columns)
    layers = {name: hd.pr.GraphicLayer(layer_name=name, order=k, description=desc,
                                       display_color=hd.color.CIELabColor(*lab))
              for k, (name, desc, lab) in enumerate(_LAYERS, start=1)}
    annotations = []
    images: dict[str, Dataset] = {}
    for item in annotated:
        n = item.frame.frame
        inst = src.frame_instance(n)
        image = header if inst is None else inst
        images.setdefault(str(image.SOPInstanceUID), image)
        frame_number = n if inst is None else None
        for name, objects in _graphics(item.frame, rows, cols).items():
            if objects:
                annotations.append(hd.pr.GraphicAnnotation(
                    referenced_images=[image], graphic_layer=layers[name],
                    referenced_frame_number=frame_number, graphic_objects=objects))
        annotations.append(hd.pr.GraphicAnnotation(
            referenced_images=[image], graphic_layer=layers["SCORE"],
            referenced_frame_number=frame_number, text_objects=_texts(item.lines, rows, cols)))
    referenced = [header] if not src.frame_headers else list(src.frame_headers)
    # Identity Modality LUT and a window over the stored range: the grey levels as stored
    # (PS3.3 C.11.1, C.11.8). Explicit, because highdicom reads these from the functional
    # groups of a multi-frame image, which an Ultrasound Multi-frame Image does not have.
    bits = int(header.get("BitsStored", 8) or 8)
    full = float(2 ** bits)
    pr = hd.pr.GrayscaleSoftcopyPresentationState(
        modality_lut_transformation=hd.ModalityLUTTransformation(
            rescale_intercept=0.0, rescale_slope=1.0, rescale_type="US"),
        voi_lut_transformations=[hd.pr.SoftcopyVOILUTTransformation(
            window_center=full / 2.0, window_width=full)],
        referenced_images=referenced,
        series_instance_uid=src.uid("pr-series"), series_number=PR_SERIES_NUMBER,
        sop_instance_uid=src.uid("pr-instance"), instance_number=1,
        manufacturer=MANUFACTURER, manufacturer_model_name=ALGORITHM_NAME,
        software_versions=ALGORITHM_VERSION, device_serial_number=ALGORITHM_VERSION,
        content_label=CONTENT_LABEL,
        content_description="IVUS calcium score (automated, unverified)",
        graphic_annotations=annotations, graphic_layers=list(layers.values()),
        content_creator_name=None)
    # General Series Laterality (Type 2C) is required for paired body parts; naming the body
    # part (PS3.16 Annex L, the source's or "HEART" for a coronary pullback) says it is not.
    pr.BodyPartExamined = header.get("BodyPartExamined") or "HEART"
    pr.SeriesDescription = SERIES_DESCRIPTION
    return pr
