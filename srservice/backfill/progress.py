"""The backfill's progress: counts, ETA, the terminal line and the final report.

The same text is shown by ``srservice backfill`` (one line rewritten in place on a terminal,
a new line per change otherwise) and by ``srservice jobs`` (from the job store).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from srservice.jobs.models import BACKFILL_IN_FLIGHT, BackfillState
from srservice.jobs.views import BackfillRunView, BackfillStudyView

S = BackfillState


def eta_seconds(run: BackfillRunView, studies: list[BackfillStudyView], *, max_in_flight: int,
                per_minute: float) -> int | None:
    """Estimate the seconds left of a run.

    Studies to go x the slower of the rate and the measured time per study (retrieve start
    to scored) divided by the in-flight limit, plus one study's time while any is in flight.

    None until one study has been retrieved and scored (or when nothing is left: 0).
    """
    to_go = run.count(S.FOUND, S.TO_RETRIEVE)
    in_flight = run.count(*BACKFILL_IN_FLIGHT)
    if to_go == 0 and in_flight == 0:
        return 0
    spans = [(s.finished_at - s.started_at).total_seconds() for s in studies
             if s.state == S.SCORED and s.started_at and s.finished_at]
    if not spans:
        return None
    per_study = sum(spans) / len(spans)
    pace = max(60.0 / per_minute, per_study / max_in_flight)
    return int(to_go * pace + (per_study if in_flight else 0))


def clock(seconds: int | None) -> str:
    """Return ``H:MM:SS`` (``?`` when unknown)."""
    if seconds is None:
        return "?"
    return time.strftime("%H:%M:%S", time.gmtime(seconds)) if seconds < 86400 else \
        f"{seconds // 86400}d {time.strftime('%H:%M:%S', time.gmtime(seconds % 86400))}"


def progress_text(run: BackfillRunView) -> str:
    """Return the one-line progress of a run (counts, ETA, note)."""
    skipped = run.count(S.ALREADY_SCORED, S.SR_IN_PACS)
    text = (f"backfill {run.id} {run.source}: {run.found} found, {skipped} already scored, "
            f"{run.count(S.NOTHING_TO_SCORE)} nothing to score, "
            f"{run.count(S.RETRIEVING)} retrieving, {run.count(S.SCORING)} scoring, "
            f"{run.count(S.SCORED)} scored, {run.count(S.FAILED)} failed, "
            f"{run.count(S.FOUND, S.TO_RETRIEVE)} to go")
    if run.state == "running":
        text += f", ETA {clock(run.eta_seconds)}"
    else:
        text += " (finished)"
    if run.note:
        text += f" [{run.note}]"
    return text


class ProgressLine:
    """Writes the progress to ``stream``: in place on a terminal, else a line per change."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = ""

    def show(self, run: BackfillRunView) -> None:
        """Show the run's progress (nothing when it did not change)."""
        text = progress_text(run)
        if text == self._last:
            return
        self._last = text
        if self.tty:
            self.stream.write("\r\x1b[2K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def done(self) -> None:
        """End the in-place line."""
        if self.tty and self._last:
            self.stream.write("\n")
            self.stream.flush()


def report_text(run: BackfillRunView, studies: list[BackfillStudyView]) -> str:
    """Return the final report: found, already scored, retrieved, scored, failed (reasons)."""
    retrieved = sum(1 for s in studies if s.retrieved_at is not None)
    lines = [
        f"backfill run {run.id} from {run.source}"
        + (f" (studies {run.since or '...'} to {run.until or '...'})"
           if run.since or run.until else ""),
        f"  found:            {run.found}",
        f"  already scored:   {run.count(S.ALREADY_SCORED, S.SR_IN_PACS)} "
        f"(job store {run.count(S.ALREADY_SCORED)}, SR in the PACS {run.count(S.SR_IN_PACS)})",
        f"  nothing to score: {run.count(S.NOTHING_TO_SCORE)}",
        f"  retrieved:        {retrieved}",
        f"  scored:           {run.count(S.SCORED)}",
        f"  failed:           {run.count(S.FAILED)}",
    ]
    lines += [f"    {s.study_instance_uid}: {s.reason}" for s in studies
              if s.state == S.FAILED]
    left = run.count(S.FOUND, S.TO_RETRIEVE)
    if left:
        lines.append(f"  not retrieved:    {left}"
                     + (f" (limit of {run.max_studies} reached)" if run.max_studies else ""))
    return "\n".join(lines)
