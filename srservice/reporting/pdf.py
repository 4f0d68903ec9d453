"""The one-page PDF report: its page, drawn with matplotlib, and its DICOM instance.

**Page** (:func:`render_pdf`, A4 portrait, deterministic bytes: no creation date): the
patient/study header (:func:`page_header`), the score table, the recommendation, caveats and
the decision-support disclaimer, the profiles along the pullback and the maximum calcium frame
(the drawings are :mod:`srservice.reporting.plots`). No pyplot: a bare
:class:`matplotlib.figure.Figure` is drawn into :class:`PdfPages`, so no GUI backend and no
global state are involved.

**Instance** (:func:`build_pdf_dataset`): Encapsulated PDF Storage
(:data:`srservice.sopclasses.REPORT_PDF`) in the source study. IOD: PS3.3 A.45.1
(Encapsulated PDF): Patient and General Study modules copied from the source; Encapsulated
Document Series (Modality DOC); General Equipment; SC Equipment
(Conversion Type SYN, C.8.6.1); Encapsulated Document (C.24.2) with Source Instance Sequence
referencing the IVUS pullback; SOP Common. highdicom has no encapsulated-document class, so
the dataset is built with pydicom. UIDs come from :mod:`srservice.reporting.uids`.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import textwrap
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib import font_manager
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ExplicitVRLittleEndian,
)

from srservice import ALGORITHM_NAME, ALGORITHM_VERSION, sopclasses
from srservice.analysis.types import PullbackAnalysis
from srservice.reporting import plots
from srservice.reporting.uids import derived_uid, output_version
from srservice.scoring import IvusCalciumScore, pullback_reason

PDF_SERIES_NUMBER = 991
DOCUMENT_TITLE = "IVUS calcium score report (automated, unverified)"
#: Page size: A4 portrait, inches.
A4 = (8.27, 11.69)
#: Lines of statements printed on the page (the rest is in the SR).
MAX_BODY_LINES = 24

#: Patient and General Study attributes copied from the source (PS3.3 C.7.1.1, C.7.2.1).
COPIED = (
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
    "OtherPatientIDsSequence", "StudyInstanceUID", "StudyDate", "StudyTime",
    "ReferringPhysicianName", "StudyID", "AccessionNumber", "StudyDescription",
)
#: Type 2 attributes that must be present even when the source lacks them.
TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
         "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber")


#: Fonts of the page, in fallback order: matplotlib's own DejaVu (Latin, Greek, Cyrillic), then
#: Noto Sans CJK (Debian fonts-noto-cjk, installed by scripts/install-system-deps.sh) for
#: Japanese, Korean and Chinese. Fonts that are not installed are left out.
SANS_FONTS = ("DejaVu Sans", "Noto Sans CJK JP")
MONO_FONTS = ("DejaVu Sans Mono", "Noto Sans Mono CJK JP")


@functools.cache
def font_families(mono: bool = False) -> tuple[str, ...]:
    """Return the installed fonts of :data:`SANS_FONTS` (:data:`MONO_FONTS`), in order."""
    installed = {entry.name for entry in font_manager.fontManager.ttflist}
    return tuple(f for f in (MONO_FONTS if mono else SANS_FONTS) if f in installed)


@functools.cache
def _covered(mono: bool = False) -> frozenset[int]:
    """Code points the page fonts can draw."""
    points: set[int] = set()
    for family in font_families(mono):
        path = font_manager.findfont(font_manager.FontProperties(family=family),
                                     fallback_to_default=False)
        points.update(font_manager.get_font(path).get_charmap())
    return frozenset(points)


def drawable(text: str, mono: bool = True) -> bool:
    """Return True when every character of ``text`` has a glyph in the page fonts."""
    covered = _covered(mono)
    return all(ord(ch) in covered or ch.isspace() for ch in text)


def display_name(value: object, mono: bool = True) -> str:
    """Return a person name (PS3.5 6.2.1) as the page shows it.

    Every component group the fonts can draw (alphabetic, ideographic, phonetic), joined by
    ``" = "``; without a font for the ideographic script the romanised (alphabetic) group
    alone; characters no font has become ``?`` as a last resort.
    """
    groups = [g.replace("^", " ").strip() for g in str(value or "").split("=")]
    shown = [g for g in groups if g and drawable(g, mono)]
    if shown:
        return " = ".join(shown)
    first = next((g for g in groups if g), "")
    return "".join(ch if drawable(ch, mono) else "?" for ch in first) or "-"


@dataclass(frozen=True)
class PageHeader:
    """What the header says (all already formatted strings)."""

    title: str
    lines: tuple[str, ...]


def _date(value: object) -> str:
    s = str(value or "")
    return f"{s[:4]}-{s[4:6]}-{s[6:8]}" if len(s) == 8 and s.isdigit() else (s or "-")


def page_header(header: Dataset) -> PageHeader:
    """Patient / study lines of the PDF page, from the source dataset."""
    name = display_name(header.get("PatientName"))
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


def render_pdf(header: PageHeader, analysis: PullbackAnalysis,
               scores: Sequence[IvusCalciumScore], statements: Sequence[str],
               frames: np.ndarray | None) -> bytes:
    """Draw the one-page report and return the PDF bytes (deterministic: no creation date).

    Parameters
    ----------
    header : PageHeader
        Title and formatted patient / study lines.
    analysis : PullbackAnalysis
        Measurements along the pullback.
    scores : sequence of IvusCalciumScore
        One per lesion.
    statements : sequence of str
        Disclaimer, recommendations and caveats (:func:`srservice.reporting.sr.statements`).
    frames : numpy.ndarray or None
        ``(n, rows, cols)`` uint8 pullback pixels for the key-frame image.
    """
    fig = Figure(figsize=A4)
    fig.text(0.05, 0.965, header.title, fontsize=13, weight="bold", va="top")
    fig.text(0.05, 0.94, "\n".join(header.lines), fontsize=7.5, va="top",
             family=list(font_families(mono=True)), linespacing=1.35)
    n_rows = max(1, sum(len(s.components) + 1 for s in scores))
    table_h = 0.0165 * (min(n_rows, 16) + 1)
    top = 0.875
    plots.draw_score_table(fig.add_axes((0.05, top - table_h, 0.9, table_h)), analysis, scores)
    y = top - table_h - 0.012
    wrapped = [textwrap.fill(s, 140, break_on_hyphens=False) for s in statements[1:]]
    body = "\n".join(wrapped)
    lines = body.split("\n") if body else []
    if len(lines) > MAX_BODY_LINES:  # keep one page: the SR carries every statement
        more = len(lines) - MAX_BODY_LINES + 1
        lines = [*lines[:MAX_BODY_LINES - 1], f"... {more} more line(s): see the SR"]
    body = "\n".join(lines)
    n_lines = len(lines)
    fig.text(0.05, y, body, fontsize=7, va="top", linespacing=1.3)
    y -= 0.0112 * n_lines + 0.008
    fig.text(0.05, y, statements[0] if statements else "", fontsize=8, weight="bold",
             va="top", color="#a00000")
    y -= 0.012
    bottom_img = 0.035
    img_h = max(0.18, min(0.33, y - 0.30 - bottom_img))
    plot_top = y - 0.02
    plot_bottom = bottom_img + img_h + 0.06
    plot_h = max(0.12, plot_top - plot_bottom)
    ax_arc = fig.add_axes((0.1, plot_bottom + plot_h * 0.52, 0.86, plot_h * 0.44))
    ax_area = fig.add_axes((0.1, plot_bottom, 0.86, plot_h * 0.40), sharex=ax_arc)
    ax_arc.tick_params(labelbottom=False)
    plots.draw_profiles(ax_arc, ax_area, analysis)
    key = plots.key_frame(analysis, scores)
    frame = next((f for f in analysis.frames if f.frame == key), None)
    pixels = None
    if frames is not None and key is not None and 1 <= key <= len(frames):
        pixels = np.asarray(frames[key - 1])
    if analysis.lesions:
        title = "Maximum calcium site"
    else:
        title = ("Pullback not assessable" if pullback_reason(analysis)
                 else "No calcified segment")
    plots.draw_key_frame(fig.add_axes((0.25, bottom_img, 0.5, img_h)), pixels, frame,
                         analysis.pixel_spacing_mm, title)
    buf = io.BytesIO()
    with PdfPages(buf, metadata={"CreationDate": None, "Producer": "srservice",
                                 "Creator": "srservice", "Title": header.title}) as pdf,\
            warnings.catch_warnings():
        # A missing glyph is reported with the character's name: that could spell out a
        # patient's name in a log. The header lines use only drawable text (display_name).
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        pdf.savefig(fig)
    return buf.getvalue()


def build_pdf_dataset(header: Dataset, pdf_bytes: bytes,
                      now: dt.datetime | None = None, *,
                      revision: str | None = None) -> Dataset:
    """Wrap ``pdf_bytes`` as an Encapsulated PDF instance in the study of ``header``.

    Parameters
    ----------
    header : pydicom.dataset.Dataset
        Source IVUS dataset (patient, study, SOP Class/Instance UIDs).
    pdf_bytes : bytes
        The PDF document.
    now : datetime, optional
        Content / instance creation time (default: current local time).
    revision : str, optional
        Revision of a superseding report (UIDs derived with ``f"{ALGORITHM_VERSION}+{revision}"``).

    Returns
    -------
    pydicom.dataset.Dataset
        With file meta information, ready for ``dcmwrite(..., enforce_file_format=True)``.
    """
    now = now or dt.datetime.now()
    version = output_version(revision)
    sop_uid = derived_uid(header.SOPInstanceUID, "pdf-instance", version)
    ds = Dataset()
    ds.SpecificCharacterSet = header.get("SpecificCharacterSet") or "ISO_IR 192"
    for kw in COPIED:
        if kw in header:
            ds[kw] = header[kw]
    for kw in TYPE2:
        if kw not in ds:
            setattr(ds, kw, None)
    ds.SOPClassUID = sopclasses.REPORT_PDF
    ds.SOPInstanceUID = sop_uid
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = derived_uid(header.SOPInstanceUID, "pdf-series", version)
    ds.SeriesNumber = PDF_SERIES_NUMBER
    ds.SeriesDescription = "IVUS calcium score report (automated, unverified)"
    ds.Manufacturer = "srservice"
    ds.SoftwareVersions = ALGORITHM_VERSION
    ds.ManufacturerModelName = ALGORITHM_NAME
    ds.ConversionType = "SYN"
    ds.InstanceNumber = 1
    ds.ContentDate = ds.InstanceCreationDate
    ds.ContentTime = ds.InstanceCreationTime
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "YES"
    ds.RecognizableVisualFeatures = "NO"
    ref = Dataset()
    ref.ReferencedSOPClassUID = header.SOPClassUID
    ref.ReferencedSOPInstanceUID = header.SOPInstanceUID
    ds.SourceInstanceSequence = [ref]
    ds.DocumentTitle = DOCUMENT_TITLE
    title = Dataset()
    code = codes.DCM.IVUSReport
    title.CodeValue = code.value
    title.CodingSchemeDesignator = code.scheme_designator
    title.CodeMeaning = code.meaning
    ds.ConceptNameCodeSequence = [title]
    ds.VerificationFlag = "UNVERIFIED"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(pdf_bytes)
    ds.EncapsulatedDocument = pdf_bytes + (b"\0" if len(pdf_bytes) % 2 else b"")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sopclasses.REPORT_PDF
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    return ds
