"""``srservice analyze --out`` on pullbacks that cannot be scored, in a real process.

A 1-frame pullback and a pullback of random noise (no ultrasound signal): the analysis says why
they cannot be scored, and every output says "cannot be determined" with that reason: never
"score 0", never "no calcium modification", never a complete score.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

import srservice.phantom as phantom
from srservice.phantom.writer import build_dataset, write_pullback
from srservice.reporting import codes as c
from srservice.reporting.outputs import PDF_NAME, SR_NAME, SUMMARY_NAME
from tests.support.environment import require_tool

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = (re.compile(r"score 0\b"), re.compile(r"does not call for calcium modification"),
             re.compile(r"No calcified segment found"), re.compile(r"not predicted"))


def one_frame(directory: Path) -> Path:
    return write_pullback(phantom.small_case("calcium", frames=1, rows=192),
                          directory / "one-frame.dcm")


def noise(directory: Path) -> Path:
    ds = build_dataset(phantom.small_case("none", frames=30, rows=192))
    rng = np.random.default_rng(7)
    shape = (int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns))
    ds.PixelData = rng.integers(0, 256, size=shape, dtype=np.uint8).tobytes()
    path = directory / "noise.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def run(*cmd: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(x) for x in cmd], capture_output=True, text=True, timeout=180,
                          encoding="utf-8", errors="replace", check=False, cwd=ROOT)


def never_scored(text: str) -> None:
    for pattern in FORBIDDEN:
        assert not pattern.search(text), pattern.pattern


@pytest.mark.parametrize("make", [one_frame, noise], ids=["one-frame", "noise"])
def test_analyze_out_says_cannot_be_determined(make: Callable[[Path], Path],
                                                tmp_path: Path) -> None:
    dciodvfy, dsrdump = require_tool("dciodvfy"), require_tool("dsrdump")
    pdftotext = require_tool("pdftotext")
    src = make(tmp_path)
    out = tmp_path / "out"
    res = run(sys.executable, "-m", "srservice.cli", "analyze", src, "--out", out)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    # The analysis' verdict and reason, as the JSON gives them.
    doc = json.loads((out / SUMMARY_NAME).read_text())
    reason = doc["reason"]
    assert doc["assessable"] is False and reason
    assert doc["ivus_calcium_score"] is None and doc["calcium_modification_recommended"] is None
    assert doc["result"] == f"IVUS calcium score cannot be determined: {reason}"
    for lesion in doc["lesions"]:
        assert lesion["ivus_calcium_score"] is None
        assert all(x["points"] is None for x in lesion["score_components"])
    assert all(f["reason"] for f in doc["frames"] if not f["assessable"])
    if make is noise:   # random noise: no frame has a usable signal
        assert doc["assessable_frame_count"] == 0
        assert doc["not_assessable_frames"]
    never_scored(json.dumps(doc))
    # The text output.
    assert f"IVUS calcium score cannot be determined: {reason}" in res.stdout
    never_scored(res.stdout)
    # The SR: valid, readable, says it.
    check = run(dciodvfy, out / SR_NAME)
    assert not [x for x in (check.stdout + check.stderr).splitlines() if x.startswith("Error")]
    dump = run(dsrdump, "+U8", "+Pl", out / SR_NAME).stdout
    assert f"IVUS calcium score cannot be determined: {reason}" in dump
    assert '"IVUS calcium score")=(373068000,SCT,"Undetermined")' in dump
    never_scored(dump)
    summary = hd.sr.srread(out / SR_NAME).content.get_image_measurement_groups()[0]
    assert c.IVUS_CALCIUM_SCORE.value not in {m.name.value for m in summary.get_measurements()}
    q = {e.name.value: e.value for e in summary.get_qualitative_evaluations()}
    assert q[c.CALCIUM_MODIFICATION_RECOMMENDED.value] == c.UNDETERMINED
    # The PDF.
    ds = pydicom.dcmread(out / PDF_NAME)
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(bytes(ds.EncapsulatedDocument)[: ds.EncapsulatedDocumentLength])
    text = " ".join(run(pdftotext, "-layout", pdf, "-").stdout.split())
    assert "IVUS calcium score cannot be determined: " in text
    assert " ".join(reason.split())[:60] in text
    never_scored(text)
