"""``srservice analyze INPUT.dcm [--json] [--out DIR]``: analyse one pullback offline.

- ``--json`` prints the summary JSON (:mod:`srservice.reporting.summary`, fixed keys).
- ``--out DIR`` writes the outputs as a job does (:func:`srservice.reporting.outputs.write_outputs`:
  ``sr.dcm``, the TID 1500 Comprehensive 3D SR; ``pdf.dcm``, the Encapsulated PDF;
  ``summary.json``), each atomically (temp file, fsync, rename).
- Without either, a one-paragraph human summary is printed: the result ("IVUS calcium score
  2", or "IVUS calcium score cannot be determined: <reason>" for a pullback that cannot be
  scored), the segments and the not-assessable frames grouped by reason.

A file that cannot be used raises :class:`~srservice.errors.InvalidDicomError` (from the
loader); ``srservice.cli`` turns it into one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from srservice.config import Settings
from srservice.errors import OutputWriteError
from srservice.reporting.outputs import PDF_NAME, PR_NAME, SR_NAME, SUMMARY_NAME


def add_parser(subparsers: Any) -> None:
    """Register the ``analyze`` sub-command."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "analyze", help="analyse one IVUS pullback file and score its calcified lesions",
        description="Analyse an IVUS pullback (DICOM Ultrasound Multi-frame) and compute the "
        "IVUS calcium score of Zhang et al. 2021 for every calcified segment. Decision "
        "support only: automatically derived, not verified by a physician.")
    p.add_argument("input", metavar="INPUT.dcm", help="IVUS pullback DICOM file")
    p.add_argument("--json", action="store_true", help="print the analysis as JSON on stdout")
    p.add_argument("--out", metavar="DIR", type=Path,
                   help=f"write {SR_NAME}, {PDF_NAME}, {PR_NAME} and {SUMMARY_NAME} into DIR")
    p.set_defaults(func=run)


def _human(summary: dict[str, Any]) -> str:
    from srservice.reporting.assessability import MAX_GROUPS, ReasonGroup

    lines = [f"{summary['sop_instance_uid']}: {summary['frame_count']} frames "
             f"({summary['assessable_frame_count']} assessable), {summary['result']}"]
    for i, lesion in enumerate(summary["lesions"], start=1):
        lines.append(f"  segment {i}: frames {lesion['start_frame']}-{lesion['end_frame']}, "
                     f"score {lesion['ivus_calcium_score_text']}: {lesion['recommendation']}")
    groups = summary["not_assessable_frames"]
    lines += [f"  not assessable: "
              f"{ReasonGroup(g['reason'], tuple((a, b) for a, b in g['frames'])).text()}"
              for g in groups[:MAX_GROUPS]]
    if len(groups) > MAX_GROUPS:
        lines.append(f"  not assessable: {len(groups) - MAX_GROUPS} more reason(s) "
                     "(see --json)")
    lines += [f"  not measured: {r}" for r in summary["not_assessable"]]
    lines.append(f"  {summary['disclaimer']}")
    return "\n".join(lines)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Analyse ``args.input``; print / write the results; return the exit status (0 = ok).

    Raises
    ------
    srservice.errors.SrServiceError
        For unusable input (one line on stderr via ``srservice.cli``).
    """
    from srservice.analysis.pipeline import analyze_pullback
    from srservice.dicomheader import ReadLimits
    from srservice.dicomio import load_pullback
    from srservice.reporting.outputs import produce_outputs, write_outputs
    from srservice.reporting.summary import summary_of

    loaded = load_pullback(args.input,
                           default_pixel_spacing_mm=settings.default_pixel_spacing_mm,
                           default_frame_spacing_mm=settings.default_frame_spacing_mm,
                           limits=ReadLimits.from_settings(settings))
    analysis = analyze_pullback(loaded.pullback)
    if args.out is not None:
        outputs = produce_outputs(loaded, analysis)
        summary = outputs.summary
        out: Path = args.out
        try:
            write_outputs(out, outputs)
        except OSError as exc:
            raise OutputWriteError(f"cannot write {out}: {exc.strerror or exc}") from exc
    else:
        summary = summary_of(loaded, analysis)
    if args.json:
        sys.stdout.write(json.dumps(summary, allow_nan=False) + "\n")
    else:
        sys.stdout.write(_human(summary) + "\n")
    return 0
