"""The JSON of ``srservice analyze --json`` (fixed keys: ISSUE 2 item 5; more keys are extra).

Fixed schema (other tools read it)::

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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from pydicom.dataset import Dataset

from srservice import ALGORITHM_NAME, ALGORITHM_VERSION
from srservice.analysis.types import FrameMeasurement, LesionFeatures, Pullback, PullbackAnalysis
from srservice.reporting.uids import derived_uid, output_version
from srservice.scoring import (
    DISCLAIMER,
    IvusCalciumScore,
    ScoreComponent,
    highest_total,
    ivus_calcium_score,
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


class LoadedLike(Protocol):
    """What the reports need from :class:`srservice.dicomio.LoadedPullback`."""

    @property
    def pullback(self) -> Pullback:
        """The decoded pullback (frames for the key-frame image)."""

    @property
    def header(self) -> Dataset:
        """Source dataset without pixel data."""

    @property
    def sop_instance_uid(self) -> str:
        """Source SOP Instance UID."""

    @property
    def frame_sop_instance_uids(self) -> tuple[str, ...]:
        """One SOP Instance UID per frame for a single-frame series (else empty)."""

    @property
    def frame_headers(self) -> tuple[Dataset, ...]:
        """One header per frame for a single-frame series (else empty)."""


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
        "ivus_calcium_score_minimum": score.minimum_total,
        "ivus_calcium_score_maximum": score.maximum_total,
        "outside_derivation_population": score.outside_derivation_population,
        "score_components": [_component(c) for c in score.components],
        "recommendation": score.recommendation,
        "statements": list(score.statements),
    }


def scores_for(analysis: PullbackAnalysis) -> list[IvusCalciumScore]:
    """IVUS calcium score of every lesion, in order."""
    return [ivus_calcium_score(lesion) for lesion in analysis.lesions]


def summary(sop_instance_uid: str, analysis: PullbackAnalysis,
            scores: Sequence[IvusCalciumScore] | None = None, *, revision: str | None = None,
            source_sop_instance_uids: Sequence[str] = ()) -> dict[str, Any]:
    """Build the ``analyze --json`` dictionary from an analysis (JSON-serialisable).

    Parameters
    ----------
    sop_instance_uid : str
        Source SOP Instance UID (first instance of a single-frame series).
    analysis : PullbackAnalysis
        The analysis.
    scores : sequence of IvusCalciumScore, optional
        Precomputed lesion scores (default: computed here).
    revision : str, optional
        Revision of a superseding report: the output UIDs listed are derived with it (as in
        :func:`srservice.reporting.produce_outputs`) and ``"revision"`` is added.
    source_sop_instance_uids : sequence of str, optional
        For a single-frame series, the instance of every frame in frame order (added as
        ``"source_sop_instance_uids"``).
    """
    scores = list(scores) if scores is not None else scores_for(analysis)
    version = output_version(revision)
    decided = [s.calcium_modification_recommended for s in scores]
    overall: bool | None = (True if any(d is True for d in decided)
                            else False if all(d is False for d in decided) else None)
    doc: dict[str, Any] = {
        "sop_instance_uid": sop_instance_uid,
        "frame_count": int(analysis.frame_count),
        "frame_spacing_mm": _num(analysis.frame_spacing_mm),
        "pixel_spacing_mm": _num(analysis.pixel_spacing_mm),
        "frames": [_frame(f) for f in analysis.frames],
        "lesions": [_lesion(x, s) for x, s in zip(analysis.lesions, scores, strict=True)],
        "ivus_calcium_score": highest_total(scores),
        # extra keys
        "calcium_modification_recommended": overall,
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


def analysis_json(loaded: LoadedLike, analysis: PullbackAnalysis) -> dict[str, Any]:
    """Return the exact JSON of ``srservice analyze --json`` for a loaded, analysed pullback."""
    return summary(loaded.sop_instance_uid, analysis,
                   source_sop_instance_uids=loaded.frame_sop_instance_uids)

