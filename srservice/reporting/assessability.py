"""Not-assessable frames grouped by reason, as the reports list them.

The analysis gives every frame a verdict (``FrameMeasurement.assessable``) and, when the frame
cannot be measured, a reason in words (``FrameMeasurement.reason``; rules in
``docs/scoring.md``). A reader wants the runs, not hundreds of frame numbers:
"frames 1-40: transducer inside the guide catheter". The summary JSON lists every group in
full; the SR and the PDF list at most :data:`MAX_GROUPS` groups of at most :data:`MAX_RANGES`
runs each and say how many more there are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from srservice.analysis.types import FrameMeasurement

#: Groups (distinct reasons) listed in the SR and the PDF; the summary JSON lists all.
MAX_GROUPS = 6
#: Runs of frames listed per reason in the SR and the PDF.
MAX_RANGES = 5
#: Reason of a not-assessable frame for which the analysis gave none.
UNSPECIFIED = "not assessable (no reason given)"


@dataclass(frozen=True)
class ReasonGroup:
    """The not-assessable frames sharing one reason.

    Attributes
    ----------
    reason : str
        Why these frames are not assessable.
    ranges : tuple of (int, int)
        Runs of consecutive 1-based frame numbers ``(first, last)``, in pullback order.
    """

    reason: str
    ranges: tuple[tuple[int, int], ...]

    @property
    def frame_count(self) -> int:
        """Number of frames in the group."""
        return sum(b - a + 1 for a, b in self.ranges)

    def text(self, max_ranges: int | None = MAX_RANGES) -> str:
        """``"frames 1-40, 300-310: <reason>"`` (``"frame 7: ..."`` for one frame)."""
        shown = self.ranges if max_ranges is None else self.ranges[:max_ranges]
        runs = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in shown)
        more = len(self.ranges) - len(shown)
        if more:
            runs += f" and {more} more run(s), {self.frame_count} frames in all"
        word = "frame" if self.frame_count == 1 else "frames"
        return f"{word} {runs}: {self.reason}"


def not_assessable_groups(frames: Sequence[FrameMeasurement]) -> list[ReasonGroup]:
    """Group the not-assessable frames by reason, in the order each reason first occurs.

    Parameters
    ----------
    frames : sequence of FrameMeasurement
        The pullback's frames (any order; grouped by frame number).

    Returns
    -------
    list of ReasonGroup
        One group per distinct reason; frames whose numbers follow each other form one run.
    """
    runs: dict[str, list[list[int]]] = {}
    for f in sorted(frames, key=lambda m: m.frame):
        if f.assessable:
            continue
        ranges = runs.setdefault(f.reason or UNSPECIFIED, [])
        if ranges and ranges[-1][1] == f.frame - 1:
            ranges[-1][1] = f.frame
        else:
            ranges.append([f.frame, f.frame])
    return [ReasonGroup(reason, tuple((a, b) for a, b in ranges))
            for reason, ranges in runs.items()]


def not_assessable_lines(frames: Sequence[FrameMeasurement],
                         max_groups: int = MAX_GROUPS) -> list[str]:
    """Sentences for the SR and the PDF: ``"Not assessable: frames 1-40: <reason>"``.

    At most ``max_groups`` reasons (those with the most frames, listed in pullback order),
    then one line counting the rest.
    """
    groups = not_assessable_groups(frames)
    if not groups:
        return []
    kept = sorted(groups, key=lambda g: -g.frame_count)[:max_groups]
    shown = [g for g in groups if g in kept]
    lines = [f"Not assessable: {g.text()}" for g in shown]
    rest = [g for g in groups if g not in kept]
    if rest:
        lines.append(f"Not assessable: {sum(g.frame_count for g in rest)} more frame(s) for "
                     f"{len(rest)} other reason(s) (every frame's reason is in the summary "
                     "JSON)")
    return lines
