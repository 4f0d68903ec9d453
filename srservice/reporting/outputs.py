"""The outputs of one analysed pullback: built (:func:`produce_outputs`), then written.

One analysed pullback produces these files, named the same wherever they are written (a job's
``data_dir/outputs/<job>/``, ``srservice analyze --out DIR``, the outbox): :data:`SR_NAME`
(the TID 1500 SR, :mod:`srservice.reporting.sr`), :data:`PDF_NAME` (the Encapsulated PDF,
:mod:`srservice.reporting.pdf`), :data:`PR_NAME` (the Grayscale Softcopy Presentation State,
:mod:`srservice.reporting.presentation`; absent for a pullback without a frame to annotate)
and :data:`SUMMARY_NAME` (the summary JSON, :mod:`srservice.reporting.summary`).

Building involves no I/O. Output UIDs are derived from the source SOP Instance UID and the
algorithm version (:mod:`srservice.reporting.uids`), so a re-run yields the same objects; a
superseding report passes ``revision`` and gets new UIDs throughout.

Writing is atomic per file (:func:`srservice.durable.atomic_write`): a crash leaves the old
complete file or the new complete file, never a partial one.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

from pydicom import dcmwrite
from pydicom.dataset import Dataset

from srservice import sopclasses
from srservice.analysis.params import AnalysisParameters
from srservice.analysis.types import PullbackAnalysis
from srservice.dicomio import LoadedPullback
from srservice.durable import atomic_write
from srservice.reporting.pdf import build_pdf_dataset, page_header, render_pdf
from srservice.reporting.presentation import build_presentation_state
from srservice.reporting.sr import build_sr, statements
from srservice.reporting.summary import build_summary
from srservice.reporting.text import sanitised_header
from srservice.scoring import score_pullback

#: File names of the outputs, the same in every directory they are written to.
SR_NAME = "sr.dcm"
PDF_NAME = "pdf.dcm"
PR_NAME = "pr.dcm"
SUMMARY_NAME = "summary.json"


@dataclass(frozen=True)
class Outputs:
    """What one analysed pullback produces.

    Attributes
    ----------
    sr : pydicom.dataset.Dataset
        Comprehensive 3D SR (TID 1500), with file meta.
    pdf : pydicom.dataset.Dataset
        Encapsulated PDF Storage instance, with file meta.
    summary : dict
        The summary dictionary (:mod:`srservice.reporting.summary`).
    pr : pydicom.dataset.Dataset or None
        Grayscale Softcopy Presentation State (None: no frame to annotate).
    """

    sr: Dataset
    pdf: Dataset
    summary: dict[str, Any]
    pr: Dataset | None = None


def produce_outputs(loaded: LoadedPullback, analysis: PullbackAnalysis,
                    parameters: Mapping[str, object] | None = None,
                    now: dt.datetime | None = None, *,
                    revision: str | None = None) -> Outputs:
    """Score every lesion and build the SR, the PDF and the JSON summary.

    A pullback that cannot be scored (``analysis.reason``, or no assessable frame) still
    gets all three outputs: they say "IVUS calcium score cannot be determined: <reason>"
    (a valid clinical answer, delivered like any other).

    Parameters
    ----------
    loaded : LoadedPullback
        The loaded pullback (header, SOP Instance UID, frames).
    analysis : PullbackAnalysis
        Result of ``analyze_pullback``.
    parameters : mapping, optional
        Algorithm parameters for TID 4019 (default: ``AnalysisParameters().as_dict()``).
    now : datetime, optional
        Creation time of the PDF instance (tests pin it).
    revision : str, optional
        ``None`` (first report of a source instance): UIDs derived from (source SOP Instance
        UID, ``ALGORITHM_VERSION``, purpose). A string (superseding report, e.g. a content
        hash prefix): every derived UID (series, instance, tracking) uses the version
        ``f"{ALGORITHM_VERSION}+{revision}"``, and the summary lists those UIDs.

    Returns
    -------
    Outputs
        SR, PDF and presentation state datasets (with file meta) and the summary dictionary.
    """
    # highdicom logs every copied module at INFO and quotes values (a patient's name) in its
    # warnings: errors only (as srservice.config.configure_logging sets it).
    logging.getLogger("highdicom").setLevel(logging.ERROR)
    # No score at all when the pullback cannot be scored (srservice.scoring.pullback_reason).
    scores = list(score_pullback(analysis).segments)
    params = (dict(parameters) if parameters is not None
              else AnalysisParameters().as_dict())
    # Received text enters the reports here only: decoded, cleaned, capped, UTF-8.
    header, *frame_headers = [sanitised_header(h)
                              for h in (loaded.header, *_frame_headers(loaded))]
    sr = build_sr(header, analysis, scores, params, revision=revision,
                  frame_headers=frame_headers)
    texts = statements(analysis, scores)
    pdf_bytes = render_pdf(page_header(header), analysis, scores, texts, loaded.pullback.frames)
    pdf = build_pdf_dataset(header, pdf_bytes, now=now, revision=revision)
    doc = build_summary(loaded.sop_instance_uid, analysis, scores, revision=revision,
                        source_sop_instance_uids=loaded.frame_sop_instance_uids)
    pr = build_presentation_state(header, analysis, scores, revision=revision,
                                  frame_headers=frame_headers)
    return Outputs(sr=sr, pdf=pdf, summary=doc, pr=pr)


def _frame_headers(loaded: LoadedPullback) -> tuple[Dataset, ...]:
    """One header per frame of a single-frame series (empty for one multi-frame instance).

    Without ``frame_headers``, each frame's header is the source header with the frame's
    SOP Instance UID (same series and SOP class).
    """
    uids = loaded.frame_sop_instance_uids
    if not uids:
        # One single-frame instance (Ultrasound Image Storage has no Multi-frame module,
        # PS3.3 A.6): reference it without a frame number too.
        single = loaded.header.get("SOPClassUID") in sopclasses.SINGLE_FRAME_IVUS
        return (loaded.header,) if single else ()
    if loaded.frame_headers:
        if [str(h.SOPInstanceUID) for h in loaded.frame_headers] != list(uids):
            raise ValueError("frame_headers and frame_sop_instance_uids disagree")
        return loaded.frame_headers
    out = []
    for uid in uids:
        ds = copy.deepcopy(loaded.header)  # setting a value changes the shared element
        ds.SOPInstanceUID = uid
        out.append(ds)
    return tuple(out)


@dataclass(frozen=True)
class WrittenOutputs:
    """Paths and UIDs of written outputs."""

    directory: Path
    sr_path: Path
    pdf_path: Path
    summary_path: Path
    sr_sop_instance_uid: str
    pdf_sop_instance_uid: str
    pr_path: Path | None = None


def dataset_bytes(ds: Dataset) -> bytes:
    """Encode a dataset with its File Meta Information as a DICOM Part 10 file (PS3.10 7.1)."""
    buf = BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def summary_bytes(summary: Mapping[str, Any]) -> bytes:
    """Encode a summary as strict JSON (no NaN or Infinity), indented, with a final newline."""
    return (json.dumps(summary, indent=2, allow_nan=False) + "\n").encode()


def write_outputs(directory: Path, outputs: Outputs) -> WrittenOutputs:
    """Write the SR, the PDF, the presentation state and the summary, each file atomically.

    Parameters
    ----------
    directory : pathlib.Path
        Created when missing; files of an earlier run are replaced whole.
    outputs : Outputs
        What :func:`produce_outputs` built.

    Raises
    ------
    OSError
        The directory or a file cannot be written.
    ValueError
        The summary holds a value JSON cannot represent (NaN, Infinity).
    """
    directory.mkdir(parents=True, exist_ok=True)
    paths = WrittenOutputs(directory, directory / SR_NAME, directory / PDF_NAME,
                           directory / SUMMARY_NAME, str(outputs.sr.SOPInstanceUID),
                           str(outputs.pdf.SOPInstanceUID))
    atomic_write(paths.sr_path, dataset_bytes(outputs.sr))
    atomic_write(paths.pdf_path, dataset_bytes(outputs.pdf))
    pr_path = directory / PR_NAME
    if outputs.pr is not None:
        atomic_write(pr_path, dataset_bytes(outputs.pr))
        paths = dataclasses.replace(paths, pr_path=pr_path)
    else:
        pr_path.unlink(missing_ok=True)  # from an earlier run into the same directory
    atomic_write(paths.summary_path, summary_bytes(outputs.summary))
    return paths
