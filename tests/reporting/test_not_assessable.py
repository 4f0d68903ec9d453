"""A pullback (or a segment) that cannot be scored: every output says "cannot be determined".

Never "score 0", never "no calcium modification", never a complete score: the SR (dciodvfy,
dsrdump, highdicom read-back), the PDF (pdftotext), the summary JSON and the ``analyze`` text.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import highdicom as hd
import pydicom
import pytest

from srservice.analysis.types import PullbackAnalysis
from srservice.cli.analyze import _human
from srservice.reporting import codes as c
from srservice.reporting.assessability import not_assessable_groups, not_assessable_lines
from srservice.reporting.outputs import Outputs, produce_outputs
from srservice.reporting.summary import build_summary
from srservice.scoring import score_pullback
from tests.support.environment import require_tool
from tests.support.reporting import (
    FLAG,
    GUIDE,
    NOISE,
    PULLBACK_REASON,
    TOO_BIG,
    analysis,
    loaded,
    not_assessable_analysis,
    unassessable_frame,
)

NOW = dt.datetime(2026, 1, 10, 12, 0, 0)
CANNOT = f"IVUS calcium score cannot be determined: {PULLBACK_REASON}"
#: Wordings that must never appear for a pullback that cannot be scored.
FORBIDDEN = (re.compile(r"score 0\b"), re.compile(r"does not call for calcium modification"),
             re.compile(r"No calcified segment found"), re.compile(r"not predicted"))
VARIANTS: dict[str, Callable[[], PullbackAnalysis]] = {
    "pullback": not_assessable_analysis,
    "pullback-lesion": partial(not_assessable_analysis, lesion=True),
    "segment": partial(analysis, "score2", spacing=False),
}


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Outputs, Path, Path]]:
    root = tmp_path_factory.mktemp("na")
    out = {}
    for name, make in VARIANTS.items():
        o = produce_outputs(loaded(spacing=name != "segment"), make(), now=NOW)
        sr_path, pdf_path = root / f"{name}-sr.dcm", root / f"{name}-pdf.pdf"
        pydicom.dcmwrite(sr_path, o.sr, enforce_file_format=True)
        pdf_path.write_bytes(bytes(o.pdf.EncapsulatedDocument)[: o.pdf.EncapsulatedDocumentLength])
        out[name] = (o, sr_path, pdf_path)
    return out


def run(*cmd: str | Path) -> str:
    res = subprocess.run([str(x) for x in cmd], capture_output=True, text=True, timeout=60,
                         encoding="utf-8", errors="replace", check=False)
    assert res.returncode == 0, res.stderr
    return res.stdout + res.stderr


def flat(text: str) -> str:
    return " ".join(text.split())


def assert_never_scored(text: str) -> None:
    for pattern in FORBIDDEN:
        assert not pattern.search(text), pattern.pattern


def test_scoring_gives_no_component_and_no_total() -> None:
    for make in (VARIANTS["pullback"], VARIANTS["pullback-lesion"]):
        p = score_pullback(make())
        assert not p.assessable and p.reason == PULLBACK_REASON
        assert p.total is None and p.calcium_modification_recommended is None
        assert p.result == CANNOT
        for seg in p.segments:
            assert seg.total is None and seg.calcium_modification_recommended is None
            assert all(not x.assessable and x.points is None and x.reason == PULLBACK_REASON
                       for x in seg.components)
            assert seg.total_text == "cannot be determined"
            assert seg.recommendation.startswith(CANNOT)
    # A pullback without any assessable frame is never scored, even without a reason.
    empty = analysis("none")
    empty = type(empty)(frame_count=2, pixel_spacing_mm=0.05, frame_spacing_mm=0.5,
                        frames=(unassessable_frame(1, GUIDE), unassessable_frame(2, GUIDE)),
                        lesions=())
    assert score_pullback(empty).total is None
    assert score_pullback(empty).reason == "no assessable frame"
    # The same lesion, assessable pullback: scored (so the above is the reason, not the lesion).
    assert score_pullback(analysis("score2")).total == 2


def test_frame_ranges_grouped_by_reason() -> None:
    frames = not_assessable_analysis().frames
    groups = not_assessable_groups(frames)
    assert [(g.reason, g.ranges) for g in groups] == [
        (GUIDE, ((1, 12),)), (NOISE, ((16, 29), (31, 40))), (TOO_BIG, ((30, 30),))]
    assert [g.frame_count for g in groups] == [12, 24, 1]
    lines = not_assessable_lines(frames)
    assert lines == [f"Not assessable: frames 1-12: {GUIDE}",
                     f"Not assessable: frames 16-29, 31-40: {NOISE}",
                     f"Not assessable: frame 30: {TOO_BIG}"]
    # Capped for the SR and the PDF: one line counts the rest.
    many = [unassessable_frame(i, f"reason {i % 9}") for i in range(1, 200)]
    capped = not_assessable_lines(many, max_groups=3)
    assert len(capped) == 4 and "6 other reason(s)" in capped[-1]
    assert capped[0] == ("Not assessable: frames 1, 10, 19, 28, 37 and 18 more run(s), "
                         "23 frames in all: reason 1")


def test_sr_is_valid_and_says_cannot_be_determined(reports: dict[str, Any]) -> None:
    dciodvfy, dsrdump = require_tool("dciodvfy"), require_tool("dsrdump")
    for name in ("pullback", "pullback-lesion"):
        _, sr_path, _ = reports[name]
        text = run(dciodvfy, sr_path)
        assert "Comprehensive3DSR" in text
        assert [x for x in text.splitlines() if x.startswith("Error")] == []
        assert [x for x in text.splitlines()
                if x.startswith("Warning") and c.SCHEME not in x] == []
        dump = run(dsrdump, "+U8", "+Pl", sr_path)
        assert CANNOT in dump
        assert f"frames 1-12: {GUIDE}" in dump and f"frame 30: {TOO_BIG}" in dump
        assert '"IVUS calcium score")=(373068000,SCT,"Undetermined")' in dump
        assert '"IVUS calcium score")="' not in dump          # no numeric score at all
        assert ('"Calcium modification before stenting recommended")=(373068000,SCT,'
                '"Undetermined")') in dump
        assert '"Calcium score complete")=(373067005,SCT,"No")' in dump
        assert '"Calcium score complete")=(373066001' not in dump
        assert_never_scored(dump)


def test_sr_reads_back_with_highdicom(reports: dict[str, Any]) -> None:
    _, sr_path, _ = reports["pullback-lesion"]
    sr = hd.sr.srread(sr_path)
    summary, seg = sr.content.get_image_measurement_groups()
    for group in (summary, seg):
        names = {m.name.value for m in group.get_measurements()}
        assert not names & {c.IVUS_CALCIUM_SCORE.value, c.IVUS_CALCIUM_SCORE_MINIMUM.value,
                            c.IVUS_CALCIUM_SCORE_MAXIMUM.value,
                            *(x.value for x in c.COMPONENT_CODES.values())}
        q = {e.name.value: e.value for e in group.get_qualitative_evaluations()}
        assert q[c.IVUS_CALCIUM_SCORE.value] == c.UNDETERMINED
        assert q[c.CALCIUM_MODIFICATION_RECOMMENDED.value] == c.UNDETERMINED
        assert q[c.SCORE_COMPLETE.value] == c.NO
    q = {e.name.value: e.value for e in seg.get_qualitative_evaluations()}
    for code in (*c.COMPONENT_CODES.values(), c.CIRCUMFERENTIAL_CALCIUM, c.CALCIFIED_NODULE):
        assert q[code.value] == c.UNDETERMINED, code.meaning


def test_pdf_says_cannot_be_determined(reports: dict[str, Any]) -> None:
    pdftotext = require_tool("pdftotext")
    for name in ("pullback", "pullback-lesion"):
        text = flat(run(pdftotext, "-layout", reports[name][2], "-"))
        assert flat(CANNOT) in text, name
        for line in (f"frames 1-12: {GUIDE}", f"frames 16-29, 31-40: {NOISE}",
                     f"frame 30: {TOO_BIG}"):
            assert line in text, line
        assert "cannot be determined" in text
        assert_never_scored(text)
    assert "Pullback not assessable" in flat(run(pdftotext, "-layout",
                                                 reports["pullback"][2], "-"))


def test_json_says_cannot_be_determined(reports: dict[str, Any]) -> None:
    doc = json.loads(json.dumps(reports["pullback-lesion"][0].summary, allow_nan=False))
    assert doc["ivus_calcium_score"] is None and doc["assessable"] is False
    assert doc["reason"] == PULLBACK_REASON and doc["result"] == CANNOT
    assert doc["calcium_modification_recommended"] is None
    assert doc["assessable_frame_count"] == 3
    (lesion,) = doc["lesions"]
    assert lesion["ivus_calcium_score"] is None
    assert lesion["ivus_calcium_score_text"] == "cannot be determined"
    assert lesion["calcium_modification_recommended"] is None
    assert all(x["points"] is None and not x["assessable"] and x["reason"] == PULLBACK_REASON
               for x in lesion["score_components"])
    frames = doc["frames"]
    assert frames[0]["reason"] == GUIDE and not frames[0]["assessable"]
    assert frames[29]["reason"] == TOO_BIG
    assert frames[13]["reason"] == "" and frames[13]["flags"] == [FLAG]
    assert frames[13]["nodule_protrusion_mm"] == pytest.approx(0.05)
    assert frames[0]["flags"] == [] and frames[0]["nodule_protrusion_mm"] is None
    assert doc["not_assessable_frames"] == [
        {"reason": GUIDE, "frames": [[1, 12]], "frame_count": 12},
        {"reason": NOISE, "frames": [[16, 29], [31, 40]], "frame_count": 24},
        {"reason": TOO_BIG, "frames": [[30, 30]], "frame_count": 1}]
    assert_never_scored(json.dumps(doc))


def test_analyze_text_output_says_cannot_be_determined() -> None:
    text = _human(build_summary("1.2.3", not_assessable_analysis()))
    assert CANNOT in text and "(3 assessable)" in text
    assert f"not assessable: frames 1-12: {GUIDE}" in text
    assert_never_scored(text)
    assert "IVUS calcium score 2" in _human(build_summary("1.2.3", analysis("score2")))


def test_incomplete_segment_says_cannot_be_determined_everywhere(
        reports: dict[str, Any]) -> None:
    """A segment whose components are not assessable: the same words in SR, PDF and JSON."""
    pdftotext, dsrdump = require_tool("pdftotext"), require_tool("dsrdump")
    o, sr_path, pdf_path = reports["segment"]
    lesion = o.summary["lesions"][0]
    assert lesion["ivus_calcium_score"] is None
    assert lesion["ivus_calcium_score_text"] == "cannot be determined (0-2)"
    sentence = lesion["recommendation"]
    assert sentence.startswith("IVUS calcium score cannot be determined (between 0 and 2;")
    assert "complete" not in sentence
    dump = run(dsrdump, "+U8", "+Pl", sr_path)
    assert sentence in dump
    assert '"IVUS calcium score")=(373068000,SCT,"Undetermined")' in dump
    assert '"IVUS calcium score upper bound")="2' in dump
    text = flat(run(pdftotext, "-layout", pdf_path, "-"))
    assert "IVUS calcium score cannot be determined max. arc 300° 0-2" in text   # table row
    assert flat(sentence) in text
    assert "cannot be determined" in _human(o.summary)
