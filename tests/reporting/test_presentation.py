"""The Grayscale Softcopy Presentation State: valid (dciodvfy), on the right frames, readable."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.uid import GrayscaleSoftcopyPresentationStateStorage

from srservice.reporting.outputs import PR_NAME, Outputs, produce_outputs, write_outputs
from srservice.reporting.overlay import arc_polylines, closed
from tests.support.environment import require_tool
from tests.support.reporting import (
    FRAME_MM,
    SOURCE_SOP_UID,
    STUDY_UID,
    analysis,
    loaded,
    small_analysis,
    write_single_frame_series,
)

NOW = dt.datetime(2026, 1, 10, 12, 0, 0)
VARIANTS = {"score2": ("score2", True), "none": ("none", True),
            "outside": ("outside", True), "nospacing": ("score2", False)}


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Outputs, Path]]:
    root = tmp_path_factory.mktemp("pr")
    out = {}
    for name, (kind, spacing) in VARIANTS.items():
        o = produce_outputs(loaded(spacing=spacing), analysis(kind, spacing=spacing), now=NOW)
        written = write_outputs(root / name, o)
        assert written.pr_path == root / name / PR_NAME
        out[name] = (o, root / name / PR_NAME)
    return out


def _dciodvfy_errors(path: Path) -> list[str]:
    tool = require_tool("dciodvfy")
    res = subprocess.run([tool, str(path)], capture_output=True, text=True, errors="replace",
                         timeout=60, check=False)
    text = res.stdout + res.stderr
    assert "GrayscaleSoftcopyPresentationState" in text
    return [line for line in text.splitlines() if line.startswith(("Error", "Warning"))]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_presentation_state_is_valid(reports: dict[str, Any], variant: str) -> None:
    _, path = reports[variant]
    assert _dciodvfy_errors(path) == []


def _annotations(ds: pydicom.Dataset) -> dict[tuple[int, str], pydicom.Dataset]:
    out = {}
    for item in ds.GraphicAnnotationSequence:
        ref = item.ReferencedImageSequence[0]
        assert ref.ReferencedSOPInstanceUID == SOURCE_SOP_UID
        out[(int(ref.ReferencedFrameNumber), item.GraphicLayer)] = item
    return out


def test_contours_and_score_on_the_maximum_calcium_frame(reports: dict[str, Any]) -> None:
    o, path = reports["score2"]
    a = analysis("score2")
    lesion = a.lesions[0]
    frame = a.frames[lesion.max_calcium_frame - 1]
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == GrayscaleSoftcopyPresentationStateStorage
    assert ds.StudyInstanceUID == STUDY_UID and ds.PatientID == "PAT-0042"
    assert ds.SeriesInstanceUID not in {o.sr.SeriesInstanceUID, o.pdf.SeriesInstanceUID}
    assert [x.ReferencedSOPInstanceUID for s in ds.ReferencedSeriesSequence
            for x in s.ReferencedImageSequence] == [SOURCE_SOP_UID]
    layers = {x.GraphicLayer for x in ds.GraphicLayerSequence}
    assert layers == {"LUMEN", "EEM", "CALCIUM", "SCORE"}
    ann = _annotations(ds)
    assert {f for f, _ in ann} == {lesion.max_calcium_frame}
    lumen = ann[(frame.frame, "LUMEN")].GraphicObjectSequence[0]
    assert lumen.GraphicAnnotationUnits == "PIXEL" and lumen.GraphicType == "POLYLINE"
    pts = np.asarray(lumen.GraphicData, dtype=float).reshape(-1, 2)
    assert np.allclose(pts, closed(frame.lumen_contour), atol=1e-3)
    arcs = ann[(frame.frame, "CALCIUM")].GraphicObjectSequence
    expected = arc_polylines(frame)
    assert len(arcs) == len(expected)
    for got, (want, _) in zip(arcs, expected, strict=True):
        assert np.allclose(np.asarray(got.GraphicData, float).reshape(-1, 2), want, atol=1e-3)
    texts = [t.UnformattedTextValue for t in ann[(frame.frame, "SCORE")].TextObjectSequence]
    score = o.summary["lesions"][0]["ivus_calcium_score"]
    assert texts[0].endswith(f"IVUS calcium score {score}"), texts
    assert any("Long superficial calcium" in t for t in texts)
    assert any("not verified by a physician" in t for t in texts)
    rows = int(loaded().header.Rows)
    for t in ann[(frame.frame, "SCORE")].TextObjectSequence:
        top, bottom = t.BoundingBoxTopLeftHandCorner[1], t.BoundingBoxBottomRightHandCorner[1]
        assert 0 <= top < bottom <= rows


def test_no_lesion_annotates_a_representative_frame_with_score_zero(
        reports: dict[str, Any]) -> None:
    o, path = reports["none"]
    a = analysis("none")
    ds = pydicom.dcmread(path)
    ann = _annotations(ds)
    shown = {f for f, _ in ann}
    assert len(shown) == 1
    (frame_number,) = shown
    assert a.frames[frame_number - 1].assessable
    texts = [t.UnformattedTextValue for t in ann[(frame_number, "SCORE")].TextObjectSequence]
    assert texts[0] == "No calcified segment: IVUS calcium score 0"
    # the SR's summary group is shown on the same frame
    sr_frames = {int(sc.ContentSequence[0].ReferencedSOPSequence[0].ReferencedFrameNumber)
                 for group in o.sr.ContentSequence[-2].ContentSequence[:1]
                 for num in group.ContentSequence if num.ValueType == "NUM"
                 for sc in num.ContentSequence if sc.ValueType == "SCOORD"}
    assert sr_frames == shown


def test_single_frame_series_references_the_frame_instance(
        tmp_path: Path) -> None:
    from srservice.dicomio import load_series

    paths = write_single_frame_series(tmp_path, 3)
    series = load_series(paths, default_frame_spacing_mm=FRAME_MM)
    o = produce_outputs(series, small_analysis(3, max_frame=2), now=NOW)
    assert o.pr is not None
    path = tmp_path / "pr.dcm"
    pydicom.dcmwrite(path, o.pr, enforce_file_format=True)
    assert _dciodvfy_errors(path) == []
    ds = pydicom.dcmread(path)
    refs = {x.ReferencedSOPInstanceUID for item in ds.GraphicAnnotationSequence
            for x in item.ReferencedImageSequence}
    assert refs == {series.frame_sop_instance_uids[1]}
    assert all("ReferencedFrameNumber" not in x for item in ds.GraphicAnnotationSequence
               for x in item.ReferencedImageSequence)


@pytest.mark.parametrize("lesion", [False, True])
def test_pullback_that_cannot_be_scored(tmp_path: Path, lesion: bool) -> None:
    """No assessable frame: the SR still opens in viewers (every group has a SCOORD), and the
    presentation state says the score cannot be determined, never 0."""
    from tests.support.reporting import PULLBACK_REASON, not_assessable_analysis

    a = not_assessable_analysis(lesion=lesion)
    o = produce_outputs(loaded(), a, now=NOW)
    measurements = next(i for i in o.sr.ContentSequence
                        if i.ConceptNameCodeSequence[0].CodeValue == "126010")
    for group in measurements.ContentSequence:
        scoords = [sc for item in group.ContentSequence
                   for sc in ([item] if item.ValueType == "SCOORD"
                              else item.get("ContentSequence", []) if item.ValueType == "NUM"
                              else []) if sc.ValueType == "SCOORD"]
        assert scoords, group.ContentSequence[0].TextValue
    assert o.pr is not None
    path = tmp_path / "pr.dcm"
    pydicom.dcmwrite(path, o.pr, enforce_file_format=True)
    assert _dciodvfy_errors(path) == []
    texts = [t.UnformattedTextValue for item in o.pr.GraphicAnnotationSequence
             for t in item.get("TextObjectSequence", [])]
    assert any("cannot be determined" in t for t in texts), texts
    assert not any("score 0" in t for t in texts), texts
    assert PULLBACK_REASON in texts
