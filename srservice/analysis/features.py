"""Calcified segments along the pullback and their IVUS calcium score features.

Rules from docs/scoring.md (Zhang M, Matsumura M, Usui E, et al. Circ Cardiovasc
Interv 2021;14:e010296, and the service's operational definitions):

- A calcified segment is a run of frames whose calcium arc (any depth) exceeds
  ``lesion_min_arc_deg``; gaps of up to ``lesion_max_gap_frames`` frames (including
  unassessable ones) are merged; segments shorter than ``lesion_min_length_mm`` (or
  ``lesion_min_frames`` when the frame spacing is unknown) are dropped. The segment starts at
  its first and ends at its last frame with calcium.
- Length of > 270-degree superficial calcium: the longest run of consecutive frames whose
  superficial arc is > 270 degrees, where a single unassessable frame between two qualifying
  frames does not break the run; length = (last - first + 1) x frame spacing; 0 when there is
  no such frame; None when the frame spacing is unknown.
- Maximum calcium site: the assessable frame with the largest superficial arc; ties go to the
  smallest mean EEM diameter (unknown diameters last), then to the first frame.
- Circumferential calcium: any assessable frame with a 360-degree superficial arc.
- Calcified nodule: any frame of the segment flagged as nodule.
- Vessel diameter at the maximum calcium site: its mean EEM diameter (None when unknown).
"""

from __future__ import annotations

from collections.abc import Sequence

from srservice.analysis.params import AnalysisParameters
from srservice.analysis.types import FrameMeasurement, LesionFeatures


def calcified_segments(frames: Sequence[FrameMeasurement], frame_spacing_mm: float | None,
                       params: AnalysisParameters) -> list[tuple[int, int]]:
    """Return ``(first, last)`` list indices (0-based, inclusive) of calcified segments."""
    calc = [f.assessable and f.calcium_arc_deg > params.lesion_min_arc_deg for f in frames]
    runs: list[list[int]] = []
    for i, c in enumerate(calc):
        if not c:
            continue
        if runs and i - runs[-1][1] - 1 <= params.lesion_max_gap_frames:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    out: list[tuple[int, int]] = []
    for s, e in runs:
        n = e - s + 1
        if frame_spacing_mm is not None:
            if n * frame_spacing_mm < params.lesion_min_length_mm:
                continue
        elif n < params.lesion_min_frames:
            continue
        out.append((s, e))
    return out


def longest_over_270_run(frames: Sequence[FrameMeasurement], threshold_deg: float
                         ) -> tuple[int, int] | None:
    """Longest run (list indices) of frames with superficial arc > ``threshold_deg``.

    A single unassessable frame between two qualifying frames does not break the run.
    Ties keep the first run.
    """
    best: tuple[int, int] | None = None
    start: int | None = None
    last: int | None = None
    n = len(frames)
    for i, f in enumerate(frames):
        if f.assessable and f.superficial_calcium_arc_deg > threshold_deg:
            if start is None:
                start = i
            last = i
            continue
        gap_ok = (not f.assessable and start is not None and i + 1 < n
                  and frames[i + 1].assessable
                  and frames[i + 1].superficial_calcium_arc_deg > threshold_deg)
        if gap_ok:
            continue
        if start is not None and last is not None and (
                best is None or last - start > best[1] - best[0]):
            best = (start, last)
        start = last = None
    if start is not None and last is not None and (
            best is None or last - start > best[1] - best[0]):
        best = (start, last)
    return best


def _site_key(f: FrameMeasurement) -> tuple[float, float, int]:
    diam = f.eem_mean_diameter_mm if f.eem_mean_diameter_mm is not None else float("inf")
    return (-f.superficial_calcium_arc_deg, diam, f.frame)


def lesion_features(frames: Sequence[FrameMeasurement], first: int, last: int,
                    frame_spacing_mm: float | None, params: AnalysisParameters
                    ) -> LesionFeatures | None:
    """Features of the segment ``frames[first:last+1]`` (None if no assessable frame)."""
    seg = list(frames[first : last + 1])
    ok = [f for f in seg if f.assessable]
    if not ok:
        return None
    best = min(ok, key=_site_key)
    run = longest_over_270_run(seg, params.over_270_deg)
    length_270: float | None = None
    calc_len: float | None = None
    if frame_spacing_mm is not None:
        length_270 = (run[1] - run[0] + 1) * frame_spacing_mm if run else 0.0
        calc_len = (last - first + 1) * frame_spacing_mm
    return LesionFeatures(
        start_frame=seg[0].frame,
        end_frame=seg[-1].frame,
        max_calcium_frame=best.frame,
        max_superficial_calcium_arc_deg=best.superficial_calcium_arc_deg,
        length_superficial_calcium_over_270_mm=length_270,
        over_270_start_frame=seg[run[0]].frame if run else None,
        over_270_end_frame=seg[run[1]].frame if run else None,
        circumferential_superficial_calcium=any(
            f.superficial_calcium_arc_deg >= params.circumferential_deg for f in ok),
        calcified_nodule=any(f.calcified_nodule for f in ok),
        vessel_diameter_at_max_calcium_mm=best.eem_mean_diameter_mm,
        lumen_area_at_max_calcium_mm2=best.lumen_area_mm2,
        eem_interpolated_fraction_at_max_calcium=best.eem_interpolated_fraction,
        calcium_length_mm=calc_len,
    )


def find_lesions(frames: Sequence[FrameMeasurement], frame_spacing_mm: float | None,
                 params: AnalysisParameters) -> tuple[LesionFeatures, ...]:
    """All calcified segments of a pullback with their features, in pullback order."""
    out: list[LesionFeatures] = []
    for s, e in calcified_segments(frames, frame_spacing_mm, params):
        lf = lesion_features(frames, s, e, frame_spacing_mm, params)
        if lf is not None:
            out.append(lf)
    return tuple(out)
