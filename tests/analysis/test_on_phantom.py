"""Accuracy regression on small phantom pullbacks (looser than benchmarks/accuracy.py)."""

from __future__ import annotations

import numpy as np
import pytest

from srservice.analysis.pipeline import analyze_pullback
from srservice.analysis.types import PullbackAnalysis
from srservice.phantom import small_case
from srservice.phantom.case import PhantomCase


def _run(kind: str) -> tuple[PhantomCase, PullbackAnalysis]:
    case = small_case(kind, frames=24, rows=192, seed=3)
    return case, analyze_pullback(case.pullback())


def _paired(case: PhantomCase, analysis: PullbackAnalysis) -> list[tuple[object, object]]:
    return [(f, t) for f, t in zip(analysis.frames, case.truth.frames, strict=True)
            if f.assessable and t.assessable]


@pytest.mark.parametrize("kind", ["none", "calcium", "circumferential", "nodule", "deep"])
def test_small_phantom_frame_accuracy(kind: str) -> None:
    case, analysis = _run(kind)
    pairs = _paired(case, analysis)
    assert len(pairs) >= 20
    sup_err = [abs(f.superficial_calcium_arc_deg - t.superficial_calcium_arc_deg)  # type: ignore[attr-defined]
               for f, t in pairs]
    assert float(np.mean(sup_err)) <= 25.0
    inter = sum(int((f.calcium_mask & t.calcium_mask).sum()) for f, t in pairs)  # type: ignore[attr-defined]
    denom = sum(int(f.calcium_mask.sum() + t.calcium_mask.sum()) for f, t in pairs)  # type: ignore[attr-defined]
    if denom:
        assert 2 * inter / denom >= 0.8
    lum = [abs(f.lumen_area_mm2 - t.lumen_area_mm2) / t.lumen_area_mm2  # type: ignore[attr-defined]
           for f, t in pairs]
    eem = [abs(f.eem_area_mm2 - t.eem_area_mm2) / t.eem_area_mm2  # type: ignore[attr-defined]
           for f, t in pairs]
    assert float(np.median(lum)) <= 0.15
    # The clean phantom draws the adventitia as a sharp step, not the log-compressed blurred
    # edge of an echo image, so the EEM (placed eem_edge_offset_mm outside the steepest point
    # of the rise, as real exports need) lies about 3 % outside in radius here.
    assert float(np.median(eem)) <= 0.17


@pytest.mark.parametrize("kind", ["none", "calcium", "circumferential", "nodule", "deep"])
def test_small_phantom_lesion_features(kind: str) -> None:
    case, analysis = _run(kind)
    truth = case.truth.lesions
    if kind == "none":
        assert analysis.lesions == ()
        return
    assert len(analysis.lesions) == 1 and len(truth) == 1
    got, want = analysis.lesions[0], truth[0]
    assert abs(got.start_frame - want.start_frame) <= 3
    assert abs(got.end_frame - want.end_frame) <= 3
    assert got.circumferential_superficial_calcium == want.circumferential_superficial_calcium
    assert got.max_superficial_calcium_arc_deg == pytest.approx(
        want.max_superficial_calcium_arc_deg, abs=25.0)
    assert got.vessel_diameter_at_max_calcium_mm == pytest.approx(
        want.vessel_diameter_at_max_calcium_mm, rel=0.12)
    if kind == "nodule":
        assert got.calcified_nodule


def test_guide_catheter_frames_not_assessable() -> None:
    case, analysis = _run("guide")
    truth = [t.assessable for t in case.truth.frames]
    got = [f.assessable for f in analysis.frames]
    agree = sum(a == b for a, b in zip(truth, got, strict=True))
    assert agree >= len(truth) - 2
    assert not all(got)
