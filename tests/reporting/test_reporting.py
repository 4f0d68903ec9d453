"""SR and PDF outputs: validity (dciodvfy), rendering (dsrdump, pdftoppm), round trip, UIDs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from srservice import ALGORITHM_VERSION
from srservice.reporting import codes as c
from srservice.reporting.outputs import Outputs, produce_outputs
from srservice.reporting.overlay import (
    ARC_OFFSET_FRACTION,
    arc_pieces,
    arc_polylines,
    closed,
)
from srservice.reporting.sr import COMMENT, COMPONENT_NAMES, VIEWER_TRACKING_PREFIX
from srservice.reporting.uids import derived_uid
from srservice.scoring import DISCLAIMER
from tests.support.environment import require_tool
from tests.support.reporting import (
    FRAME_MM,
    SERIES_UID,
    SOURCE_SOP_UID,
    STUDY_UID,
    analysis,
    loaded,
    small_analysis,
    write_single_frame_series,
)

VARIANTS = {
    "score2": dict(kind="score2", spacing=True),
    "none": dict(kind="none", spacing=True),
    "outside": dict(kind="outside", spacing=True),
    "nospacing": dict(kind="score2", spacing=False),
}
NOW = dt.datetime(2026, 1, 10, 12, 0, 0)


def approx(value: Any) -> Any:
    """SR numbers are rounded to 0.001."""
    return pytest.approx(value, abs=1e-3)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Outputs, Path, Path]]:
    root = tmp_path_factory.mktemp("reports")
    out = {}
    for name, v in VARIANTS.items():
        o = produce_outputs(loaded(spacing=v["spacing"]),
                            analysis(v["kind"], spacing=v["spacing"]),
                            parameters={"threshold": 0.5, "mode": "test"}, now=NOW)
        sr_path, pdf_path = root / f"{name}-sr.dcm", root / f"{name}-pdf.dcm"
        pydicom.dcmwrite(sr_path, o.sr, enforce_file_format=True)
        pydicom.dcmwrite(pdf_path, o.pdf, enforce_file_format=True)
        out[name] = (o, sr_path, pdf_path)
    return out


def run(*cmd: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(x) for x in cmd], capture_output=True, text=True, timeout=60,
                          encoding="utf-8", errors="replace",
                          check=False)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("which", ["sr", "pdf"])
def test_dciodvfy_has_no_errors(outputs: dict[str, Any], variant: str, which: str) -> None:
    tool = require_tool("dciodvfy")
    _, sr_path, pdf_path = outputs[variant]
    res = run(tool, sr_path if which == "sr" else pdf_path)
    text = res.stdout + res.stderr
    assert ("Comprehensive3DSR" if which == "sr" else "EncapsulatedPDF") in text
    errors = [line for line in text.splitlines() if line.startswith("Error")]
    assert errors == [], errors
    # Only our private scheme may raise warnings.
    warnings = [line for line in text.splitlines()
                if line.startswith("Warning") and c.SCHEME not in line]
    assert warnings == [], warnings


def test_dsrdump_renders_the_values(outputs: dict[str, Any]) -> None:
    tool = require_tool("dsrdump")
    _, sr_path, _ = outputs["score2"]
    res = run(tool, "+U8", sr_path)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    for expected in ('"Arc of Calcium")="300',
                     '"Length of superficial calcium arc > 270 degrees")="6.5"',
                     '"IVUS calcium score")="2', "Müller^Anna",
                     "Verification Flag   : UNVERIFIED",
                     "Completion Flag     : COMPLETE", "POLYLINE", "Image Library",
                     "(241466007,SCT,\"Intravascular ultrasound\")",
                     '"Calcium modification before stenting recommended")=(373066001,SCT,"Yes")'):
        assert expected in out, expected


def test_dsr2html_renders(outputs: dict[str, Any], tmp_path: Path) -> None:
    tool = require_tool("dsr2html")
    _, sr_path, _ = outputs["outside"]
    res = run(tool, sr_path, tmp_path / "sr.html")
    assert res.returncode == 0, res.stderr
    html = (tmp_path / "sr.html").read_text(errors="replace")
    assert "outside the population" in html and "not verified by a physician" in html


def _measurements(group: Any) -> dict[tuple[str, str | None], Any]:
    out = {}
    for m in group.get_measurements():
        method = m.method.value if m.method is not None else None
        out[(m.name.value, method)] = m
    return out


def test_sr_round_trips_through_highdicom(outputs: dict[str, Any]) -> None:
    o, sr_path, _ = outputs["score2"]
    a = analysis("score2")
    lesion = a.lesions[0]
    sr = hd.sr.srread(sr_path)
    assert sr.VerificationFlag == "UNVERIFIED" and sr.CompletionFlag == "COMPLETE"
    assert sr.StudyInstanceUID == STUDY_UID and sr.PatientID == "PAT-0042"
    assert str(sr.PatientName) == "Müller^Anna"
    assert sr.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == c.SCHEME
    report = sr.content
    groups = report.get_image_measurement_groups()
    summary, seg, *contours = groups
    assert _measurements(summary)[(c.IVUS_CALCIUM_SCORE.value, None)].value == 2
    assert seg.finding_type == c.VASCULAR_CALCIFICATION
    assert seg.tracking_uid == derived_uid(SOURCE_SOP_UID, "lesion-1")
    ms = _measurements(seg)
    arc = ms[(c.ARC_OF_CALCIUM.value, c.METHOD_SUPERFICIAL_ARC.value)]
    assert arc.value == approx(lesion.max_superficial_calcium_arc_deg)
    assert arc.unit.value == "deg" and arc.derivation == c.MAXIMUM
    scoord = arc.referenced_coordinates[0]
    assert scoord.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
    ref = scoord.ContentSequence[0].ReferencedSOPSequence[0]
    assert ref.ReferencedFrameNumber == lesion.max_calcium_frame
    assert ms[(c.LENGTH_OVER_270.value, None)].value == approx(6.5)
    assert ms[(c.CALCIUM_LENGTH.value, c.METHOD_SEGMENT_EXTENT.value)].value == approx(
        lesion.calcium_length_mm)
    assert ms[(c.EEM_DIAMETER.value, None)].value == approx(
        lesion.vessel_diameter_at_max_calcium_mm)
    assert ms[(c.LUMEN_AREA.value, None)].value == approx(
        lesion.lumen_area_at_max_calcium_mm2)
    assert ms[(c.IVUS_CALCIUM_SCORE.value, None)].value == 2
    lesion_json = o.summary["lesions"][0]
    for comp in lesion_json["score_components"]:
        code = c.COMPONENT_CODES[comp["name"]]
        assert ms[(code.value, None)].value == comp["points"]
    q = {e.name.value: e.value for e in seg.get_qualitative_evaluations()}
    assert q[c.CIRCUMFERENTIAL_CALCIUM.value] == c.NO
    assert q[c.CALCIFIED_NODULE.value] == c.NO
    assert q[c.CALCIUM_MODIFICATION_RECOMMENDED.value] == c.YES
    assert q[c.OUTSIDE_DERIVATION_POPULATION.value] == c.NO

    kinds = [g.finding_type for g in contours]
    assert kinds[:2] == [c.LUMEN_OF_ARTERY, c.EEM] and c.VASCULAR_CALCIFICATION in kinds
    for g in contours:
        for m in g.get_measurements():
            region = m.referenced_coordinates[0]
            assert region.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
            ref = region.ContentSequence[0].ReferencedSOPSequence[0]
            assert ref.ReferencedSOPInstanceUID == SOURCE_SOP_UID
            assert ref.ReferencedFrameNumber == lesion.max_calcium_frame
    frame = a.frames[lesion.max_calcium_frame - 1]
    lumen_area = contours[0].get_measurements()[0]
    lumen = lumen_area.referenced_coordinates[0].value
    assert np.allclose(lumen, closed(frame.lumen_contour), atol=1e-3)
    assert np.array_equal(lumen[0], lumen[-1])            # closed polyline
    assert lumen_area.value == approx(frame.lumen_area_mm2)
    eem = _measurements(contours[1])
    assert eem[(c.EEM_AREA.value, None)].value == approx(frame.eem_area_mm2)
    assert eem[(c.EEM_DIAMETER.value, None)].derivation == c.MEAN
    algo = seg.get_algorithm_id() if hasattr(seg, "get_algorithm_id") else None
    if algo is not None:
        assert algo.version == ALGORITHM_VERSION


def _texts(sr_path: Path) -> list[str]:
    ds = pydicom.dcmread(sr_path)
    container = ds.ContentSequence[-1]
    assert container.ConceptNameCodeSequence[0].CodeValue == "C0034375"
    return [item.TextValue for item in container.ContentSequence]


def test_statements_in_sr(outputs: dict[str, Any]) -> None:
    assert DISCLAIMER in _texts(outputs["score2"][1])
    outside = _texts(outputs["outside"][1])
    assert any("outside the population" in t for t in outside)
    none = _texts(outputs["none"][1])
    assert any("No calcified segment" in t for t in none)


def test_not_assessable_sr_says_what_is_missing(outputs: dict[str, Any]) -> None:
    o, sr_path, _ = outputs["nospacing"]
    texts = _texts(sr_path)
    assert any("pixel spacing unknown" in t for t in texts)
    assert any("Small vessel" in t and "not assessable" in t for t in texts)
    sr = hd.sr.srread(sr_path)
    seg = sr.content.get_image_measurement_groups()[1]
    q = {e.name.value: e.value for e in seg.get_qualitative_evaluations()}
    assert q[c.COMPONENT_CODES["small_vessel"].value] == c.UNDETERMINED
    assert q[c.COMPONENT_CODES["long_superficial_calcium"].value] == c.UNDETERMINED
    assert q[c.SCORE_COMPLETE.value] == c.NO
    names = {m.name.value for m in seg.get_measurements()}
    assert c.EEM_DIAMETER.value not in names and c.IVUS_CALCIUM_SCORE.value not in names
    assert {c.IVUS_CALCIUM_SCORE_MINIMUM.value, c.IVUS_CALCIUM_SCORE_MAXIMUM.value} <= names
    assert o.summary["ivus_calcium_score"] is None
    assert o.summary["lesions"][0]["calcium_modification_recommended"] is None


def test_uids_are_deterministic_and_distinct(outputs: dict[str, Any]) -> None:
    o1 = outputs["score2"][0]
    o2 = produce_outputs(loaded(), analysis("score2"), parameters={"threshold": 0.5}, now=NOW)
    for a, b in ((o1.sr, o2.sr), (o1.pdf, o2.pdf)):
        assert a.SOPInstanceUID == b.SOPInstanceUID
        assert a.SeriesInstanceUID == b.SeriesInstanceUID
        assert a.file_meta.MediaStorageSOPInstanceUID == a.SOPInstanceUID
    assert o1.sr.SOPInstanceUID == derived_uid(SOURCE_SOP_UID, "sr-instance")
    assert o1.pdf.SOPInstanceUID == derived_uid(SOURCE_SOP_UID, "pdf-instance")
    assert o1.pdf.EncapsulatedDocument == o2.pdf.EncapsulatedDocument   # reproducible PDF
    uids = {o1.sr.SOPInstanceUID, o1.sr.SeriesInstanceUID, o1.pdf.SOPInstanceUID,
            o1.pdf.SeriesInstanceUID}
    assert len(uids) == 4
    assert all(u.startswith("2.25.") and len(u) <= 64 for u in uids)
    assert derived_uid(SOURCE_SOP_UID, "sr-instance", "9.9.9") != o1.sr.SOPInstanceUID
    assert derived_uid(SOURCE_SOP_UID + ".1", "sr-instance") != o1.sr.SOPInstanceUID
    assert o1.sr.StudyInstanceUID == o1.pdf.StudyInstanceUID == STUDY_UID


def test_pdf_dataset_and_rendering(outputs: dict[str, Any], tmp_path: Path) -> None:
    pdftoppm = require_tool("pdftoppm")
    for name in VARIANTS:
        _, _, pdf_path = outputs[name]
        ds = pydicom.dcmread(pdf_path)
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1"
        assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
        assert ds.PatientID == "PAT-0042" and ds.StudyInstanceUID == STUDY_UID
        assert ds.SourceInstanceSequence[0].ReferencedSOPInstanceUID == SOURCE_SOP_UID
        assert ds.ConceptNameCodeSequence[0].CodeValue == codes.DCM.IVUSReport.value
        data = bytes(ds.EncapsulatedDocument)[: ds.EncapsulatedDocumentLength]
        assert data.startswith(b"%PDF") and data.rstrip().endswith(b"%%EOF")
        pdf = tmp_path / f"{name}.pdf"
        pdf.write_bytes(data)
        res = run(pdftoppm, "-png", "-r", "40", "-f", "1", "-l", "1", pdf, tmp_path / name)
        assert res.returncode == 0, res.stderr
        png = next(tmp_path.glob(f"{name}*.png"))
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        # Exactly one page: asking for page 2 fails.
        res2 = run(pdftoppm, "-png", "-f", "2", "-l", "2", pdf, tmp_path / f"{name}-p2")
        assert not list(tmp_path.glob(f"{name}-p2*.png")), res2.stderr


def test_pdf_text_content(outputs: dict[str, Any], tmp_path: Path) -> None:
    pdftotext = require_tool("pdftotext")
    o, _, _ = outputs["score2"]
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(bytes(o.pdf.EncapsulatedDocument)[: o.pdf.EncapsulatedDocumentLength])
    res = run(pdftotext, "-layout", pdf, "-")
    text = " ".join(res.stdout.split())
    for expected in ("PAT-0042", "Long superficial calcium", "6.50 mm", "Small vessel",
                     "3.30 mm", "not verified by a physician", "Calcium modification",
                     "270°", "Maximum calcium site: frame 20"):
        assert expected in text, expected


def test_arc_pieces_wrap_and_polylines() -> None:
    mask = np.zeros(360, dtype=bool)
    mask[350:] = True
    mask[:10] = True
    mask[100:120] = True
    assert arc_pieces(mask) == [(100, 20), (350, 20)]
    assert arc_pieces(np.ones(360, dtype=bool)) == [(0, 360)]
    assert arc_pieces(np.zeros(360, dtype=bool)) == []
    frame = analysis("score2").frames[19]
    lines = arc_polylines(frame)
    assert len(lines) == 1 and lines[0][1] == approx(frame.calcium_arc_deg)
    pts = lines[0][0]
    r = np.hypot(pts[:, 0] - frame.center[0], pts[:, 1] - frame.center[1])
    # just outside the lumen border (radius 25 px), whatever the leading-edge depth
    assert np.allclose(r, 25.0 * (1 + ARC_OFFSET_FRACTION), atol=0.3)


def test_arc_has_no_radial_spikes() -> None:
    """A leading-edge depth that jumps between angles and a jagged lumen border draw no spikes."""
    frame = analysis("score2").frames[19]
    rng = np.random.default_rng(3)
    depth = np.where(rng.random(360) < 0.3, 0.8, 0.05)
    angles = np.radians(np.arange(0, 360, 2.0))
    radius = 25.0 + np.where(np.arange(len(angles)) % 7 == 0, 3.0, 0.0)
    lumen = np.column_stack([frame.center[0] + radius * np.cos(angles),
                             frame.center[1] + radius * np.sin(angles)])
    jagged = dataclasses.replace(frame, calcium_depth_mm=depth, lumen_contour=lumen)
    for pts, _ in arc_polylines(jagged):
        r = np.hypot(pts[:, 0] - frame.center[0], pts[:, 1] - frame.center[1])
        assert np.abs(np.diff(r)).max() < 0.5, "radial spike"
        assert r.min() > 25.0 and r.max() < 28.0 * (1 + ARC_OFFSET_FRACTION)


def _tracking_uids(sr: pydicom.Dataset) -> list[str]:
    """Every Tracking Unique Identifier (DCM 112040) of an SR, in tree order."""
    out: list[str] = []

    def walk(item: pydicom.Dataset) -> None:
        if (item.get("ValueType") == "UIDREF"
                and item.ConceptNameCodeSequence[0].CodeValue == "112040"):
            out.append(str(item.UID))
        for child in item.get("ContentSequence", []):
            walk(child)

    walk(sr)
    return out


def test_revision_changes_every_uid_deterministically(outputs: dict[str, Any]) -> None:
    plain = outputs["score2"][0]
    none = produce_outputs(loaded(), analysis("score2"), now=NOW, revision=None)
    rev = "0123456789abcdef"
    r1 = produce_outputs(loaded(), analysis("score2"), now=NOW, revision=rev)
    r2 = produce_outputs(loaded(), analysis("score2"), now=NOW, revision=rev)
    other = produce_outputs(loaded(), analysis("score2"), now=NOW, revision="fedcba9876543210")
    version = f"{ALGORITHM_VERSION}+{rev}"

    def uids(o: Outputs) -> list[str]:
        return [o.sr.SeriesInstanceUID, o.sr.SOPInstanceUID, o.pdf.SeriesInstanceUID,
                o.pdf.SOPInstanceUID, *_tracking_uids(o.sr)]

    assert uids(none) == uids(plain)                         # None: UIDs as before
    assert none.summary == plain.summary and "revision" not in none.summary
    assert uids(r1) == uids(r2)                              # deterministic
    assert len(_tracking_uids(r1.sr)) > 3
    assert not set(uids(r1)) & set(uids(plain))             # every UID changes
    assert not set(uids(r1)) & set(uids(other))
    for kind in ("sr", "pdf"):
        ds = getattr(r1, kind)
        assert ds.SOPInstanceUID == derived_uid(SOURCE_SOP_UID, f"{kind}-instance", version)
        assert ds.SeriesInstanceUID == derived_uid(SOURCE_SOP_UID, f"{kind}-series", version)
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert r1.summary[f"{kind}_sop_instance_uid"] == ds.SOPInstanceUID
    assert derived_uid(SOURCE_SOP_UID, "lesion-1", version) in _tracking_uids(r1.sr)
    assert r1.summary["revision"] == rev
    assert r1.summary["sop_instance_uid"] == SOURCE_SOP_UID
    assert r1.sr.StudyInstanceUID == r1.pdf.StudyInstanceUID == STUDY_UID


@pytest.fixture(scope="module")
def series_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Outputs, Path]:
    from srservice.dicomio import load_series

    root = tmp_path_factory.mktemp("series")
    paths = write_single_frame_series(root, 3)
    loaded_series = load_series(paths, default_frame_spacing_mm=FRAME_MM)
    o = produce_outputs(loaded_series, small_analysis(3, max_frame=2), now=NOW)
    sr_path = root / "sr.dcm"
    pydicom.dcmwrite(sr_path, o.sr, enforce_file_format=True)
    return loaded_series, o, sr_path


def test_single_frame_series_sr_is_valid(series_report: tuple[Any, Outputs, Path]) -> None:
    tool = require_tool("dciodvfy")
    _, _, sr_path = series_report
    res = run(tool, sr_path)
    text = res.stdout + res.stderr
    assert "Comprehensive3DSR" in text
    errors = [line for line in text.splitlines() if line.startswith("Error")]
    assert errors == [], errors
    warnings = [line for line in text.splitlines()
                if line.startswith("Warning") and c.SCHEME not in line]
    assert warnings == [], warnings


def test_single_frame_series_references_frame_instances(
        series_report: tuple[Any, Outputs, Path]) -> None:
    loaded_series, o, sr_path = series_report
    uids = [f"{SERIES_UID}.{i}" for i in (1, 2, 3)]
    assert list(loaded_series.frame_sop_instance_uids) == uids       # Instance Number order
    assert [h.SOPInstanceUID for h in loaded_series.frame_headers] == uids
    assert loaded_series.sop_instance_uid == uids[0]
    max_uid = uids[1]                                                 # frame 2's own instance
    sr = hd.sr.srread(sr_path)
    assert sr.SOPInstanceUID == derived_uid(uids[0], "sr-instance")
    evidence = {e[2] for e in sr.get_evidence()}
    assert evidence == set(uids)
    assert {s.ReferencedSOPClassUID for s in
            sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
            .ReferencedSOPSequence} == {"1.2.840.10008.5.1.4.1.1.6.1"}
    report: Any = sr.content
    seg = report.get_image_measurement_groups()[1]
    for m in seg.get_measurements():
        for ref in m.referenced_images or []:
            assert ref.referenced_sop_instance_uid == max_uid
            assert ref.referenced_frame_numbers is None
    contours = report.get_image_measurement_groups()[2:]
    assert contours
    for g in contours:
        for m in g.get_measurements():
            ref = m.referenced_coordinates[0].ContentSequence[0].ReferencedSOPSequence[0]
            assert ref.ReferencedSOPInstanceUID == max_uid
            assert "ReferencedFrameNumber" not in ref
    # Every referenced instance is in the Image Library (TID 1600) and in the evidence.
    referenced = set()
    stack = list(sr.ContentSequence)
    lib_uids = set()
    while stack:
        item = stack.pop()
        if item.get("ValueType") == "IMAGE":
            referenced.add(item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
        stack.extend(item.get("ContentSequence", []))
    for item in sr.ContentSequence:
        if item.ConceptNameCodeSequence[0].CodeValue == "111028":       # Image Library
            for sub in pydicom.Sequence(item.ContentSequence):
                for entry in sub.get("ContentSequence", []):
                    if entry.get("ValueType") == "IMAGE":
                        lib_uids.add(entry.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
    assert {uids[0], max_uid} <= referenced <= evidence
    assert referenced <= lib_uids, (referenced, lib_uids)
    assert o.summary["source_sop_instance_uids"] == uids
    assert o.summary["sop_instance_uid"] == uids[0]
    assert o.summary["frame_count"] == 3
    assert o.pdf.SourceInstanceSequence[0].ReferencedSOPInstanceUID == uids[0]


def test_single_instance_of_single_frame_class(tmp_path: Path) -> None:
    """One Ultrasound Image Storage instance (e.g. ``srservice analyze`` on it)."""
    tool = require_tool("dciodvfy")
    from srservice.dicomio import load_pullback

    path = write_single_frame_series(tmp_path, 1)[0]
    one = load_pullback(path, default_frame_spacing_mm=FRAME_MM)
    o = produce_outputs(one, small_analysis(1, max_frame=1), now=NOW)
    sr_path = tmp_path / "sr.dcm"
    pydicom.dcmwrite(sr_path, o.sr, enforce_file_format=True)
    res = run(tool, sr_path)
    assert [x for x in (res.stdout + res.stderr).splitlines() if x.startswith("Error")] == []
    for g in hd.sr.srread(sr_path).content.get_image_measurement_groups():
        for m in g.get_measurements():
            for sc in m.referenced_coordinates or []:
                ref = sc.ContentSequence[0].ReferencedSOPSequence[0]
                assert ref.ReferencedSOPInstanceUID == one.sop_instance_uid
                assert "ReferencedFrameNumber" not in ref
    assert "source_sop_instance_uids" not in o.summary


def _scoords(item: pydicom.Dataset) -> list[pydicom.Dataset]:
    """SCOORDs of a measurement group: its own and those its NUMs are inferred from."""
    out = []
    for child in item.ContentSequence:
        if child.ValueType == "SCOORD":
            out.append(child)
        if child.ValueType == "NUM":
            out += [g for g in child.get("ContentSequence", []) if g.ValueType == "SCOORD"]
    return out


def _groups(sr: pydicom.Dataset) -> list[pydicom.Dataset]:
    measurements = next(i for i in sr.ContentSequence
                        if i.ConceptNameCodeSequence[0].CodeValue == "126010")
    return [g for g in measurements.ContentSequence
            if g.ConceptNameCodeSequence[0].CodeValue == "125007"]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_group_is_drawable(outputs: dict[str, Any], variant: str) -> None:
    """What OHIF's SR loader needs: every group has a SCOORD on one frame of the pullback,
    every NUM of a TID 1501 group is linked to a contour, no concept name twice in a group."""
    o, _, _ = outputs[variant]
    a = analysis(VARIANTS[variant]["kind"], spacing=VARIANTS[variant]["spacing"])
    groups = _groups(o.sr)
    assert len(groups) >= 1
    for g in groups:
        scoords = _scoords(g)
        assert scoords, g.ContentSequence[0].TextValue
        frames = set()
        for sc in scoords:
            ref = sc.ContentSequence[0].ReferencedSOPSequence[0]
            assert ref.ReferencedSOPInstanceUID == SOURCE_SOP_UID
            frames.add(int(ref.ReferencedFrameNumber))
            assert sc.GraphicType == "POLYLINE" and len(sc.GraphicData) >= 4
        assert len(frames) == 1, "one group, one frame"
        names = [i.ConceptNameCodeSequence[0].CodeValue for i in g.ContentSequence
                 if i.ValueType in {"NUM", "CODE"} and i.RelationshipType == "CONTAINS"]
        assert len(names) == len(set(names)), names
        nums = [i for i in g.ContentSequence if i.ValueType == "NUM"]
        if not any(i.ValueType == "SCOORD" for i in g.ContentSequence):  # TID 1501
            for num in nums:
                assert any(x.ValueType == "SCOORD" for x in num.ContentSequence), num
    # The score (or its bounds) comes first, the components right after it.
    first = [i.ConceptNameCodeSequence[0].CodeValue for i in groups[0].ContentSequence
             if i.ValueType == "NUM"]
    undetermined = [i for i in groups[0].ContentSequence if i.ValueType == "CODE"
                    and i.ConceptNameCodeSequence[0].CodeValue == c.IVUS_CALCIUM_SCORE.value]
    assert first[0] == c.IVUS_CALCIUM_SCORE.value or (
        undetermined and undetermined[0].ConceptCodeSequence[0].CodeValue == "373068000")
    expected_frame = (a.lesions[0].max_calcium_frame if a.lesions
                      else [f.frame for f in a.frames if f.assessable][
                          (sum(f.assessable for f in a.frames) - 1) // 2])
    ref = _scoords(groups[0])[0].ContentSequence[0].ReferencedSOPSequence[0]
    assert int(ref.ReferencedFrameNumber) == expected_frame
    for seg in groups[1:2] if a.lesions else []:
        values = [i.ConceptNameCodeSequence[0].CodeValue for i in seg.ContentSequence
                  if i.ValueType == "NUM"]
        components = [code.value for code in c.COMPONENT_CODES.values()]
        assert values[0] in {c.IVUS_CALCIUM_SCORE.value, c.IVUS_CALCIUM_SCORE_MINIMUM.value,
                             *components}
        assert [v for v in values if v in components] == values[
            values.index(next(v for v in values if v in components)):][:len(
                [v for v in values if v in components])]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_group_says_its_values_in_one_sentence(outputs: dict[str, Any],
                                                     variant: str) -> None:
    """The Comment OHIF lists a group with, and the tracking identifier it loads a group by."""
    o, _, _ = outputs[variant]
    groups = _groups(o.sr)
    sentences = []
    for g in groups:
        tracking = [i.TextValue for i in g.ContentSequence
                    if i.ConceptNameCodeSequence[0].CodeValue == "112039"]
        assert len(tracking) == 1 and tracking[0].startswith(VIEWER_TRACKING_PREFIX + " ")
        comments = [i for i in g.ContentSequence
                    if i.ConceptNameCodeSequence[0].CodeValue == COMMENT.value]
        assert len(comments) == 1
        assert comments[0].ValueType == "TEXT" and comments[0].RelationshipType == "CONTAINS"
        sentences.append(str(comments[0].TextValue))
    summary = o.summary
    total = summary["ivus_calcium_score"]
    assert sentences[0].startswith("Whole pullback: IVUS calcium score "
                                   + ("cannot be determined" if total is None else str(total)))
    for lesion, text in zip(summary["lesions"], sentences[1:], strict=False):
        parts = ", ".join(
            f"{COMPONENT_NAMES[comp['name']]} "
            f"{'cannot be determined' if comp['points'] is None else comp['points']}"
            for comp in lesion["score_components"])
        assert text.startswith(
            f"Calcified segment 1 (frames {lesion['start_frame']}-{lesion['end_frame']}): "
            f"IVUS calcium score {lesion['ivus_calcium_score_text']}; components: {parts}; maximum "
            f"superficial calcium arc {lesion['max_superficial_calcium_arc_deg']:.0f}°"), text
    if summary["lesions"]:
        frame = summary["frames"][summary["lesions"][0]["max_calcium_frame"] - 1]
        n = frame["frame"]
        if frame["lumen_area_mm2"] is None:  # no pixel spacing: no area, no contour group
            assert not any("lumen contour" in t or "EEM contour" in t for t in sentences)
        else:
            assert f"Segment 1, frame {n}, lumen contour: lumen area " \
                   f"{frame['lumen_area_mm2']:.2f} mm²" in sentences
            assert f"Segment 1, frame {n}, EEM contour: EEM area " \
                   f"{frame['eem_area_mm2']:.2f} mm², mean EEM diameter " \
                   f"{frame['eem_mean_diameter_mm']:.2f} mm" in sentences
        assert any(t.startswith(f"Segment 1, frame {n}, calcium arc 1: arc of calcium "
                                "(any depth) ") and t.endswith("°") for t in sentences)
