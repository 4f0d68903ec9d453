"""Table-driven tests of the lesion feature rules (docs/scoring.md)."""

from __future__ import annotations

import numpy as np
import pytest

from srservice.analysis.features import calcified_segments, find_lesions, longest_over_270_run
from srservice.analysis.params import AnalysisParameters
from srservice.analysis.types import ANGLE_BINS, FrameMeasurement

P = AnalysisParameters()


def fm(frame: int, sup: float, calc: float | None = None, *, ok: bool = True,
       diam: float | None = 3.8, nodule: bool = False) -> FrameMeasurement:
    """A frame with the given superficial and total arcs (masks consistent with arcs)."""
    calc = sup if calc is None else calc
    cm = np.zeros(ANGLE_BINS, dtype=bool)
    cm[: round(calc)] = True
    sm = np.zeros(ANGLE_BINS, dtype=bool)
    sm[: round(sup)] = True
    return FrameMeasurement(
        frame=frame, assessable=ok, center=(0.0, 0.0), lumen_contour=None, eem_contour=None,
        lumen_area_mm2=5.0 if ok else None, eem_area_mm2=12.0 if ok else None,
        eem_mean_diameter_mm=diam if ok else None, eem_interpolated_fraction=0.0,
        calcium_mask=cm if ok else cm & False, superficial_calcium_mask=sm if ok else sm & False,
        calcium_arc_deg=calc if ok else 0.0, superficial_calcium_arc_deg=sup if ok else 0.0,
        calcified_nodule=nodule)


def frames_from(arcs: list[float | None], **kw: object) -> list[FrameMeasurement]:
    """``None`` marks an unassessable frame."""
    return [fm(i + 1, a, **kw) if a is not None else fm(i + 1, 0.0, ok=False)  # type: ignore[arg-type]
            for i, a in enumerate(arcs)]


@pytest.mark.parametrize(("arcs", "expected"), [
    ([300, 300, 300], (0, 2)),
    ([300, None, 300], (0, 2)),            # single unassessable frame does not break the run
    ([300, None, None, 300], (0, 0)),      # two unassessable frames do
    ([300, 200, 300, 300], (2, 3)),        # an assessable frame <= 270 breaks it
    ([270, 270], None),                    # strictly greater than 270
    ([271, 0, 280, 290, 300], (2, 4)),
    ([300, 300, 0, 300, 300], (0, 1)),     # ties keep the first run
])
def test_longest_over_270_run(arcs: list[float | None], expected: tuple[int, int] | None
                              ) -> None:
    assert longest_over_270_run(frames_from(arcs), 270.0) == expected


def _lesion_frames(arcs: list[float | None], **kw: object) -> list[FrameMeasurement]:
    return frames_from([0.0] * 3 + arcs + [0.0] * 3, **kw)


def test_length_uses_frame_spacing_and_none_when_unknown() -> None:
    frames = _lesion_frames([100, 300, 300, None, 300, 100] * 1)
    (les,) = find_lesions(frames, 0.5, P)
    assert les.length_superficial_calcium_over_270_mm == pytest.approx(4 * 0.5)
    assert (les.over_270_start_frame, les.over_270_end_frame) == (5, 8)
    assert les.calcium_length_mm == pytest.approx(6 * 0.5)
    (les2,) = find_lesions(frames, None, AnalysisParameters(lesion_min_frames=3))
    assert les2.length_superficial_calcium_over_270_mm is None
    assert les2.calcium_length_mm is None
    assert les2.over_270_start_frame == 5


def test_no_frame_over_270_gives_zero_length() -> None:
    (les,) = find_lesions(_lesion_frames([100, 200, 250, 200]), 0.5, P)
    assert les.length_superficial_calcium_over_270_mm == 0.0
    assert les.over_270_start_frame is None


def test_max_site_ties_broken_by_smallest_eem_diameter() -> None:
    frames = _lesion_frames([100, 200, 200, 200, 100])
    frames = [f if f.frame != 6 else fm(6, 200.0, diam=3.1) for f in frames]
    frames = [f if f.frame != 5 else fm(5, 200.0, diam=3.3) for f in frames]
    (les,) = find_lesions(frames, 0.5, P)
    assert les.max_calcium_frame == 6
    assert les.max_superficial_calcium_arc_deg == 200.0
    assert les.vessel_diameter_at_max_calcium_mm == pytest.approx(3.1)


def test_max_site_unknown_diameter_loses_ties_and_none_propagates() -> None:
    frames = _lesion_frames([100, 200, 200, 100])
    frames = [f if f.frame != 5 else fm(5, 200.0, diam=None) for f in frames]
    (les,) = find_lesions(frames, 0.5, P)
    assert les.max_calcium_frame == 6
    frames = [fm(f.frame, f.superficial_calcium_arc_deg, diam=None) for f in frames]
    (les,) = find_lesions(frames, 0.5, P)
    assert les.max_calcium_frame == 5
    assert les.vessel_diameter_at_max_calcium_mm is None


def test_circumferential_and_nodule() -> None:
    frames = _lesion_frames([100, 359, 200])
    (les,) = find_lesions(frames, 0.5, P)
    assert not les.circumferential_superficial_calcium
    frames = _lesion_frames([100, 360, 200])
    frames = [f if f.frame != 6 else fm(6, 200.0, nodule=True) for f in frames]
    (les,) = find_lesions(frames, 0.5, P)
    assert les.circumferential_superficial_calcium
    assert les.calcified_nodule


@pytest.mark.parametrize(("arcs", "spacing", "segments"), [
    ([0, 50, 50, 50, 0], 0.5, [(1, 3)]),
    ([0, 50, 50, 50, 0], 0.1, []),                          # shorter than 1 mm
    ([50] * 10 + [0] * 4 + [50] * 10, 0.2, [(0, 23)]),      # gap of 4 frames merged
    ([50] * 10 + [0] * 8 + [50] * 10, 0.2, [(0, 9), (18, 27)]),
    ([50] * 10 + [10] * 8 + [50] * 10, 0.2, [(0, 9), (18, 27)]),  # 10 deg is not a lesion
])
def test_calcified_segments(arcs: list[float], spacing: float,
                            segments: list[tuple[int, int]]) -> None:
    assert calcified_segments(frames_from(arcs), spacing, P) == segments  # type: ignore[arg-type]


def test_lesion_start_end_are_one_based_frames() -> None:
    (les,) = find_lesions(_lesion_frames([100, 300, 100]), 0.5, P)
    assert (les.start_frame, les.end_frame) == (4, 6)
    assert les.max_calcium_frame == 5
