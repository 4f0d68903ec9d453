"""Reports for PACS: a TID 1500 SR and an encapsulated one-page PDF, built without any I/O.

Entry point: :func:`produce_outputs`. Output UIDs are derived from the source SOP Instance UID
and the algorithm version (:mod:`srservice.reporting.uids`), so a re-run yields the same
objects; a superseding report passes ``revision`` and gets new UIDs throughout.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset

from srservice import ALGORITHM_NAME, ALGORITHM_VERSION, sopclasses
from srservice.analysis.types import PullbackAnalysis
from srservice.reporting.pdf import DOCUMENT_TITLE, build_pdf_dataset
from srservice.reporting.plots import PageHeader, render_pdf
from srservice.reporting.sr import build_sr, statements

if TYPE_CHECKING:  # results imports reporting.uids: import it lazily to avoid a cycle
    from srservice.results import LoadedLike


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
        The ``srservice analyze --json`` dictionary (:mod:`srservice.results`).
    """

    sr: Dataset
    pdf: Dataset
    summary: dict[str, Any]


def default_parameters() -> dict[str, float | int | str] | None:
    """``AnalysisParameters().as_dict()`` when the analysis package provides it."""
    try:
        from srservice.analysis.params import AnalysisParameters
    except ImportError:
        return None
    return AnalysisParameters().as_dict()


def _date(value: object) -> str:
    s = str(value or "")
    return f"{s[:4]}-{s[4:6]}-{s[6:8]}" if len(s) == 8 and s.isdigit() else (s or "-")


def page_header(header: Dataset) -> PageHeader:
    """Patient / study lines of the PDF page, from the source dataset."""
    name = str(header.get("PatientName", "") or "-").replace("^", " ").strip()
    lines = (
        f"Patient: {name}   ID: {header.get('PatientID', '') or '-'}   "
        f"Born: {_date(header.get('PatientBirthDate'))}   "
        f"Sex: {header.get('PatientSex', '') or '-'}",
        f"Study:   {_date(header.get('StudyDate'))}  {header.get('StudyDescription', '') or ''}"
        f"   Accession: {header.get('AccessionNumber', '') or '-'}",
        f"Source:  IVUS series {header.get('SeriesNumber', '-')}, "
        f"SOP Instance UID {header.get('SOPInstanceUID', '-')}",
        f"Method:  {ALGORITHM_NAME} {ALGORITHM_VERSION}; IVUS calcium score of Zhang et al., "
        "Circ Cardiovasc Interv 2021;14:e010296",
    )
    return PageHeader(title=DOCUMENT_TITLE, lines=lines)


def produce_outputs(loaded: LoadedLike, analysis: PullbackAnalysis,
                    parameters: Mapping[str, object] | None = None,
                    now: dt.datetime | None = None, *,
                    revision: str | None = None) -> Outputs:
    """Score every lesion and build the SR, the PDF and the JSON summary.

    Parameters
    ----------
    loaded : LoadedPullback
        ``srservice.dicomio.LoadedPullback`` (header, SOP Instance UID, frames).
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
        SR and PDF datasets (with file meta) and the summary dictionary.
    """
    from srservice.results import scores_for, summary

    # highdicom logs every copied module at INFO; keep service logs readable.
    logging.getLogger("highdicom").setLevel(logging.WARNING)
    scores = scores_for(analysis)
    params = dict(parameters) if parameters is not None else default_parameters()
    header = loaded.header
    frame_headers = _frame_headers(loaded)
    sr = build_sr(header, analysis, scores, params, revision=revision,
                  frame_headers=frame_headers)
    texts = statements(analysis, scores)
    pdf_bytes = render_pdf(page_header(header), analysis, scores, texts, loaded.pullback.frames)
    pdf = build_pdf_dataset(header, pdf_bytes, now=now, revision=revision)
    doc = summary(loaded.sop_instance_uid, analysis, scores, revision=revision,
                  source_sop_instance_uids=loaded.frame_sop_instance_uids)
    return Outputs(sr=sr, pdf=pdf, summary=doc)


def _frame_headers(loaded: LoadedLike) -> tuple[Dataset, ...]:
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


__all__ = ["Outputs", "produce_outputs"]
