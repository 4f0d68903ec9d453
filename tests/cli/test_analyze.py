"""``srservice analyze``: JSON schema, output files, bad input (one line, no traceback)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pydicom
import pytest

import srservice.cli.main as cli
import srservice.phantom as phantom
import srservice.phantom.writer as writer
from srservice.reporting.outputs import PDF_NAME, PR_NAME, SR_NAME
from srservice.reporting.outputs import SUMMARY_NAME as JSON_NAME
from srservice.reporting.summary import FIXED_TOP_KEYS, build_summary
from tests.support.environment import require_tool
from tests.support.reporting import analysis

FRAME_TYPES = {"frame": int, "lumen_area_mm2": (float, type(None)),
               "eem_area_mm2": (float, type(None)), "eem_mean_diameter_mm": (float, type(None)),
               "calcium_arc_deg": float, "superficial_calcium_arc_deg": float,
               "calcified_nodule": bool}
LESION_TYPES = {"start_frame": int, "end_frame": int, "max_calcium_frame": int,
                "max_superficial_calcium_arc_deg": float,
                "length_superficial_calcium_over_270_mm": (float, type(None)),
                "circumferential_superficial_calcium": bool, "calcified_nodule": bool,
                "vessel_diameter_at_max_calcium_mm": (float, type(None)),
                "ivus_calcium_score": (int, type(None)),
                "calcium_modification_recommended": (bool, type(None))}
TOP_TYPES = {"sop_instance_uid": str, "frame_count": int, "frame_spacing_mm": (float, type(None)),
             "pixel_spacing_mm": (float, type(None)), "frames": list, "lesions": list,
             "ivus_calcium_score": (int, type(None))}


def check_schema(doc: dict[str, Any]) -> None:
    """The summary's fixed keys (srservice.reporting.summary), typed (bool is not an int here)."""
    assert set(TOP_TYPES) <= set(doc)
    assert set(TOP_TYPES) == set(FIXED_TOP_KEYS)
    for key, typ in TOP_TYPES.items():
        assert isinstance(doc[key], typ), key
    for frame in doc["frames"]:
        assert set(FRAME_TYPES) <= set(frame)
        for key, typ in FRAME_TYPES.items():
            assert isinstance(frame[key], typ), key
            if typ is int:
                assert not isinstance(frame[key], bool)
    for lesion in doc["lesions"]:
        assert set(LESION_TYPES) <= set(lesion)
        for key, typ in LESION_TYPES.items():
            assert isinstance(lesion[key], typ), key
        if isinstance(lesion["ivus_calcium_score"], bool):
            pytest.fail("score must be an int, not a bool")
    assert len(doc["frames"]) == doc["frame_count"]
    known = [x["ivus_calcium_score"] for x in doc["lesions"]]
    if doc["ivus_calcium_score"] is not None and None not in known:
        assert doc["ivus_calcium_score"] == max(known, default=0)


@pytest.fixture(autouse=True)
def analyze_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register only our sub-command, so the tests do not depend on other commands."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("srservice.cli.analyze",))


@pytest.fixture(scope="module")
def calcium_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    case = phantom.small_case("calcium", frames=24, rows=160)
    return Path(writer.write_pullback(case, tmp_path_factory.mktemp("in") / "calcium.dcm"))


@pytest.fixture(scope="module")
def no_spacing_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    case = phantom.small_case("calcium", frames=24, rows=160)
    path = tmp_path_factory.mktemp("in") / "nospacing.dcm"
    return Path(writer.write_pullback(case, path, spacing_source="none", rate_source="none"))


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out = capsys.readouterr()
    return status, out.out, out.err


def test_schema_of_hand_made_analyses() -> None:
    for kind in ("score2", "none", "outside"):
        for spacing in (True, False):
            doc = build_summary("1.2.3", analysis(kind, spacing=spacing))
            check_schema(json.loads(json.dumps(doc, allow_nan=False)))
    assert build_summary("1.2.3", analysis("none"))["ivus_calcium_score"] == 0
    assert build_summary("1.2.3", analysis("score2"))["ivus_calcium_score"] == 2
    assert build_summary("1.2.3", analysis("score2", spacing=False))["ivus_calcium_score"] is None


def test_json_output(calcium_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_cli(capsys, "analyze", str(calcium_file), "--json")
    assert status == 0, err
    doc = json.loads(out)
    check_schema(doc)
    ds = pydicom.dcmread(calcium_file, stop_before_pixels=True)
    assert doc["sop_instance_uid"] == ds.SOPInstanceUID
    assert doc["frame_count"] == int(ds.NumberOfFrames)
    assert doc["pixel_spacing_mm"] is not None and doc["frame_spacing_mm"] is not None


def test_out_dir_writes_valid_outputs(calcium_file: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    dciodvfy = require_tool("dciodvfy")
    out = tmp_path / "out"
    status, stdout, err = run_cli(capsys, "analyze", str(calcium_file), "--out", str(out),
                                  "--json")
    assert status == 0, err
    assert sorted(p.name for p in out.iterdir()) == sorted([SR_NAME, PDF_NAME, PR_NAME,
                                                            JSON_NAME])
    doc = json.loads((out / JSON_NAME).read_text())
    assert doc == json.loads(stdout)
    check_schema(doc)
    sr = pydicom.dcmread(out / SR_NAME)
    pdf = pydicom.dcmread(out / PDF_NAME)
    assert sr.SOPInstanceUID == doc["sr_sop_instance_uid"]
    assert pdf.SOPInstanceUID == doc["pdf_sop_instance_uid"]
    src = pydicom.dcmread(calcium_file, stop_before_pixels=True)
    assert sr.StudyInstanceUID == pdf.StudyInstanceUID == src.StudyInstanceUID
    assert pydicom.dcmread(out / PR_NAME).StudyInstanceUID == src.StudyInstanceUID
    for path in (out / SR_NAME, out / PDF_NAME, out / PR_NAME):
        res = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True,
                             errors="replace", timeout=60, check=False)
        assert not [x for x in (res.stdout + res.stderr).splitlines() if x.startswith("Error")]

    # Re-running gives the same UIDs (idempotent delivery).
    status, _, _ = run_cli(capsys, "analyze", str(calcium_file), "--out", str(out))
    assert status == 0
    assert pydicom.dcmread(out / SR_NAME).SOPInstanceUID == sr.SOPInstanceUID
    assert not [p for p in out.iterdir() if p.name.startswith(".")]   # no temp files left


def test_not_assessable_pullback_still_reports(no_spacing_file: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    status, stdout, err = run_cli(capsys, "analyze", str(no_spacing_file), "--out", str(out),
                                  "--json")
    assert status == 0, err
    doc = json.loads(stdout)
    check_schema(doc)
    assert doc["pixel_spacing_mm"] is None and doc["frame_spacing_mm"] is None
    assert doc["not_assessable"]
    sr = pydicom.dcmread(out / SR_NAME)
    texts = [item.TextValue for item in sr.ContentSequence[-1].ContentSequence]
    assert any(t.startswith("Not measured:") for t in texts)


@pytest.mark.parametrize("content", [b"garbage", b"", b"\0" * 200])
def test_bad_file_one_line_nonzero(content: bytes, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(content)
    out_dir = tmp_path / "out"
    status, out, err = run_cli(capsys, "analyze", str(bad), "--json", "--out", str(out_dir))
    assert status != 0
    assert out == ""
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("srservice: error:"), err
    assert not out_dir.exists()


def test_missing_file_and_no_traceback_in_a_real_process(tmp_path: Path) -> None:
    code = ("import sys, srservice.cli.main as c; c.COMMAND_MODULES = ('srservice.cli.analyze',); "
            "sys.exit(c.main(sys.argv[1:]))")
    for target in (tmp_path / "missing.dcm", tmp_path):
        res = subprocess.run([sys.executable, "-c", code, "analyze", str(target), "--json"],
                             capture_output=True, text=True, timeout=120, check=False,
                             cwd=Path(__file__).resolve().parents[2])
        assert res.returncode != 0
        assert "Traceback" not in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_unwritable_out_dir_is_one_line(calcium_file: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    status, _, err = run_cli(capsys, "analyze", str(calcium_file), "--out",
                             str(blocker / "sub"))
    assert status != 0
    assert len(err.strip().splitlines()) == 1 and "cannot write" in err
