"""The summary JSON of an analysed pullback (``analyze --json``, a job's ``summary.json``).

Fixed schema (other tools read these keys; more keys are extra and may be added)::

    {"sop_instance_uid": str, "frame_count": int, "frame_spacing_mm": float|null,
     "pixel_spacing_mm": float|null,
     "frames": [{"frame": int, "lumen_area_mm2": float|null, "eem_area_mm2": float|null,
                 "eem_mean_diameter_mm": float|null, "calcium_arc_deg": float,
                 "superficial_calcium_arc_deg": float, "calcified_nodule": bool}],
     "lesions": [{"start_frame": int, "end_frame": int, "max_calcium_frame": int,
                  "max_superficial_calcium_arc_deg": float,
                  "length_superficial_calcium_over_270_mm": float|null,
                  "circumferential_superficial_calcium": bool, "calcified_nodule": bool,
                  "vessel_diameter_at_max_calcium_mm": float|null,
                  "ivus_calcium_score": int|null, "calcium_modification_recommended": bool|null}],
     "ivus_calcium_score": int|null}

The top-level score is the highest lesion score (0 without a calcified lesion; null only when
a lesion whose score is incomplete could exceed the highest known score, see
:func:`srservice.scoring.highest_total`).

A pullback that cannot be scored as a whole (:func:`srservice.scoring.pullback_reason`) has
``"assessable": false``, its ``"reason"``, ``"ivus_calcium_score": null``,
``"calcium_modification_recommended": null`` and every component of every lesion not
assessable with that reason; ``"result"`` says "IVUS calcium score cannot be determined:
<reason>". Extra frame keys: ``"assessable"``, ``"reason"`` (empty when assessable),
``"flags"`` (cautions on an assessable frame), ``"nodule_protrusion_mm"``; extra top-level
``"not_assessable_frames"``: ``[{"reason": str, "frames": [[first, last], ...],
"frame_count": int}]`` in the order each reason first occurs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from srservice import ALGORITHM_NAME, ALGORITHM_VERSION
from srservice.analysis.types import FrameMeasurement, LesionFeatures, PullbackAnalysis
from srservice.dicomio import LoadedPullback
from srservice.reporting.assessability import not_assessable_groups
from srservice.reporting.uids import derived_uid, output_version
from srservice.scoring import (
    DISCLAIMER,
    IvusCalciumScore,
    ScoreComponent,
    score_pullback,
)

FIXED_FRAME_KEYS = ("frame", "lumen_area_mm2", "eem_area_mm2", "eem_mean_diameter_mm",
                    "calcium_arc_deg", "superficial_calcium_arc_deg", "calcified_nodule")
FIXED_LESION_KEYS = ("start_frame", "end_frame", "max_calcium_frame",
                     "max_superficial_calcium_arc_deg", "length_superficial_calcium_over_270_mm",
                     "circumferential_superficial_calcium", "calcified_nodule",
                     "vessel_diameter_at_max_calcium_mm", "ivus_calcium_score",
                     "calcium_modification_recommended")
FIXED_TOP_KEYS = ("sop_instance_uid", "frame_count", "frame_spacing_mm", "pixel_spacing_mm",
                  "frames", "lesions", "ivus_calcium_score")


def _num(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def _frame(f: FrameMeasurement) -> dict[str, Any]:
    return {
        "frame": int(f.frame), "lumen_area_mm2": _num(f.lumen_area_mm2),
        "eem_area_mm2": _num(f.eem_area_mm2), "eem_mean_diameter_mm": _num(f.eem_mean_diameter_mm),
        "calcium_arc_deg": float(f.calcium_arc_deg),
        "superficial_calcium_arc_deg": float(f.superficial_calcium_arc_deg),
        "calcified_nodule": bool(f.calcified_nodule),
        "assessable": bool(f.assessable),
        "reason": "" if f.assessable else f.reason,
        "flags": list(f.flags),
        "nodule_protrusion_mm": _num(f.nodule_protrusion_mm),
        "eem_interpolated_fraction": _num(f.eem_interpolated_fraction),
    }


def _component(c: ScoreComponent) -> dict[str, Any]:
    value: float | bool | None = c.value
    if isinstance(value, float):
        value = _num(value)
    return {"name": c.name, "label": c.label, "points": c.points, "max_points": c.max_points,
            "value": value, "unit": c.unit, "threshold": c.threshold,
            "assessable": c.assessable, "reason": c.reason}


def _lesion(lesion: LesionFeatures, score: IvusCalciumScore) -> dict[str, Any]:
    return {
        "start_frame": int(lesion.start_frame), "end_frame": int(lesion.end_frame),
        "max_calcium_frame": int(lesion.max_calcium_frame),
        "max_superficial_calcium_arc_deg": float(lesion.max_superficial_calcium_arc_deg),
        "length_superficial_calcium_over_270_mm":
            _num(lesion.length_superficial_calcium_over_270_mm),
        "circumferential_superficial_calcium":
            bool(score.component("circumferential_calcium").value),
        "calcified_nodule": bool(lesion.calcified_nodule),
        "vessel_diameter_at_max_calcium_mm": _num(lesion.vessel_diameter_at_max_calcium_mm),
        "ivus_calcium_score": score.total,
        "calcium_modification_recommended": score.calcium_modification_recommended,
        # extra keys
        "over_270_start_frame": lesion.over_270_start_frame,
        "over_270_end_frame": lesion.over_270_end_frame,
        "calcium_length_mm": _num(lesion.calcium_length_mm),
        "lumen_area_at_max_calcium_mm2": _num(lesion.lumen_area_at_max_calcium_mm2),
        "eem_interpolated_fraction_at_max_calcium":
            _num(lesion.eem_interpolated_fraction_at_max_calcium),
        "ivus_calcium_score_text": score.total_text,
        "ivus_calcium_score_minimum": score.minimum_total,
        "ivus_calcium_score_maximum": score.maximum_total,
        "outside_derivation_population": score.outside_derivation_population,
        "score_components": [_component(c) for c in score.components],
        "recommendation": score.recommendation,
        "statements": list(score.statements),
    }


def build_summary(sop_instance_uid: str, analysis: PullbackAnalysis,
            scores: Sequence[IvusCalciumScore] | None = None, *, revision: str | None = None,
                  source_sop_instance_uids: Sequence[str] = ()) -> dict[str, Any]:
    """Build the summary dictionary of an analysis (JSON-serialisable).

    Parameters
    ----------
    sop_instance_uid : str
        Source SOP Instance UID (first instance of a single-frame series).
    analysis : PullbackAnalysis
        The analysis.
    scores : sequence of IvusCalciumScore, optional
        Precomputed lesion scores (default: computed here; ignored when the pullback cannot
        be scored, :func:`srservice.scoring.score_pullback`).
    revision : str, optional
        Revision of a superseding report: the output UIDs listed are derived with it (as in
        :func:`srservice.reporting.outputs.produce_outputs`) and ``"revision"`` is added.
    source_sop_instance_uids : sequence of str, optional
        For a single-frame series, the instance of every frame in frame order (added as
        ``"source_sop_instance_uids"``).
    """
    pullback = score_pullback(analysis, scores)
    version = output_version(revision)
    doc: dict[str, Any] = {
        "sop_instance_uid": sop_instance_uid,
        "frame_count": int(analysis.frame_count),
        "frame_spacing_mm": _num(analysis.frame_spacing_mm),
        "pixel_spacing_mm": _num(analysis.pixel_spacing_mm),
        "frames": [_frame(f) for f in analysis.frames],
        "lesions": [_lesion(x, s) for x, s in zip(analysis.lesions, pullback.segments,
                                                   strict=True)],
        "ivus_calcium_score": pullback.total,
        # extra keys
        "assessable": pullback.assessable,
        "reason": pullback.reason,
        "result": pullback.result,
        "calcium_modification_recommended": pullback.calcium_modification_recommended,
        "assessable_frame_count": analysis.assessable_frame_count,
        "not_assessable_frames": [
            {"reason": g.reason, "frames": [list(r) for r in g.ranges],
             "frame_count": g.frame_count}
            for g in not_assessable_groups(analysis.frames)],
        "not_assessable": list(analysis.not_assessable),
        "algorithm": {"name": ALGORITHM_NAME, "version": ALGORITHM_VERSION},
        "sr_sop_instance_uid": derived_uid(sop_instance_uid, "sr-instance", version),
        "pdf_sop_instance_uid": derived_uid(sop_instance_uid, "pdf-instance", version),
        "disclaimer": DISCLAIMER,
    }
    if revision:
        doc["revision"] = revision
    if source_sop_instance_uids:
        doc["source_sop_instance_uids"] = list(source_sop_instance_uids)
    return doc


def summary_of(loaded: LoadedPullback, analysis: PullbackAnalysis) -> dict[str, Any]:
    """Return the summary of a loaded, analysed pullback (the first report of its source)."""
    return build_summary(loaded.sop_instance_uid, analysis,
                         source_sop_instance_uids=loaded.frame_sop_instance_uids)
