"""Every Specific Character Set of PS3.3 C.12.1.1.2 that pydicom decodes gives a report.

The source header is written with pydicom in the character set and read back from its bytes,
as the worker reads a spooled instance; the report carries the name in UTF-8 (ISO_IR 192).
Six names (Japanese, Korean, Chinese, Greek, Cyrillic, Latin-1) go through the whole
:func:`srservice.reporting.outputs.produce_outputs`; their PDF pages are checked with poppler
(``pdftotext``, ``pdffonts``) and rendered to PNG with ``pdftoppm`` for a person to look at
(``SRSERVICE_KEEP_PAGES=DIR`` keeps them).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from srservice.dicomio import LoadedPullback
from srservice.reporting.outputs import dataset_bytes, produce_outputs
from srservice.reporting.pdf import font_families, page_header
from srservice.reporting.sr import build_sr
from srservice.reporting.text import UTF8, sanitised_header
from srservice.scoring import score_lesions
from tests.support import figures
from tests.support.environment import require_tool
from tests.support.reporting import analysis, loaded, source_dataset

#: (Specific Character Set, name as written, name the report must carry). Terms of PS3.3
#: C.12.1.1.2: single-byte without and with code extensions, multi-byte with code extensions
#: (first value empty or a single-byte set), multi-byte without code extensions. Names from
#: PS3.5 Annexes H-K where the standard gives one.
CHARSETS: list[tuple[str | list[str], str, str]] = [
    ("", "Doe^John", "Doe^John"),
    ("ISO_IR 6", "Doe^John", "Doe^John"),
    ("ISO_IR 100", "Buc^Jérôme", "Buc^Jérôme"),
    ("ISO_IR 101", "Dvořák^Antonín", "Dvořák^Antonín"),
    ("ISO_IR 109", "Borġ^Ġużeppi", "Borġ^Ġużeppi"),
    ("ISO_IR 110", "Ķēniņš^Ēriks", "Ķēniņš^Ēriks"),
    ("ISO_IR 144", "Люксембург^Гена", "Люксембург^Гена"),
    ("ISO_IR 127", "قباني^لنزار", "قباني^لنزار"),
    ("ISO_IR 126", "Διονυσιος", "Διονυσιος"),
    ("ISO_IR 138", "שרון^דבורה", "שרון^דבורה"),
    ("ISO_IR 148", "Öztürk^Şule", "Öztürk^Şule"),
    ("ISO_IR 166", "สมชาย^ใจดี", "สมชาย^ใจดี"),
    ("ISO_IR 13", "ﾔﾏﾀﾞ^ﾀﾛｳ", "ﾔﾏﾀﾞ^ﾀﾛｳ"),
    ("ISO_IR 192", "Wang^XiaoDong=王^小东", "Wang^XiaoDong=王^小东"),
    ("GB18030", "Wang^XiaoDong=王^小东", "Wang^XiaoDong=王^小东"),
    ("GBK", "王^小东", "王^小东"),
    ("ISO 2022 IR 6", "Doe^John", "Doe^John"),
    ("ISO 2022 IR 100", "Buc^Jérôme", "Buc^Jérôme"),
    ("ISO 2022 IR 101", "Dvořák^Antonín", "Dvořák^Antonín"),
    ("ISO 2022 IR 109", "Borġ^Ġużeppi", "Borġ^Ġużeppi"),
    ("ISO 2022 IR 110", "Ķēniņš^Ēriks", "Ķēniņš^Ēriks"),
    ("ISO 2022 IR 144", "Люксембург^Гена", "Люксембург^Гена"),
    ("ISO 2022 IR 127", "قباني^لنزار", "قباني^لنزار"),
    ("ISO 2022 IR 126", "Διονυσιος", "Διονυσιος"),
    ("ISO 2022 IR 138", "שרון^דבורה", "שרון^דבורה"),
    ("ISO 2022 IR 148", "Öztürk^Şule", "Öztürk^Şule"),
    ("ISO 2022 IR 166", "สมชาย^ใจดี", "สมชาย^ใจดี"),
    ("ISO 2022 IR 13", "ﾔﾏﾀﾞ^ﾀﾛｳ", "ﾔﾏﾀﾞ^ﾀﾛｳ"),
    (["ISO 2022 IR 6", "ISO 2022 IR 126"], "Dionysios^=Διονυσιος^", "Dionysios^=Διονυσιος^"),
    (["", "ISO 2022 IR 87"], "Yamada^Tarou=山田^太郎=やまだ^たろう",
     "Yamada^Tarou=山田^太郎=やまだ^たろう"),
    (["ISO 2022 IR 13", "ISO 2022 IR 87"], "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=ﾔﾏﾀﾞ^ﾀﾛｳ",
     "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=ﾔﾏﾀﾞ^ﾀﾛｳ"),
    (["", "ISO 2022 IR 87", "ISO 2022 IR 159"], "Yamada^Tarou=山田^太郎",
     "Yamada^Tarou=山田^太郎"),
    (["", "ISO 2022 IR 149"], "Hong^Gildong=洪^吉洞=홍^길동", "Hong^Gildong=洪^吉洞=홍^길동"),
]

#: PS3.5 Annex K.2 "Zhang^XiaoDong=张^小东=" in ISO 2022 IR 58 (GB 2312 after ESC $ ) A),
#: as bytes: pydicom 3.0 encodes this set wrongly, so the standard's own bytes are sent.
IR58_NAME = bytes.fromhex("5A68616E675E5869616F446F6E673D1B242941D5C55E1B242941D0A1B6AB3D20")

#: The six scripts looked at in the PDF: (label, character set, name).
SCRIPTS = [
    ("japanese", ["", "ISO 2022 IR 87"], "Yamada^Tarou=山田^太郎=やまだ^たろう"),
    ("korean", ["", "ISO 2022 IR 149"], "Hong^Gildong=洪^吉洞=홍^길동"),
    ("chinese", "GB18030", "Wang^XiaoDong=王^小东"),
    ("greek", "ISO_IR 126", "Διονυσιος^Παπαδοπουλος"),
    ("cyrillic", "ISO_IR 144", "Люксембург^Гена"),
    ("latin1", "ISO_IR 100", "Buc^Jérôme"),
]


def received(charset: str | list[str], name: str | bytes) -> Dataset:
    """A source header written in ``charset`` and read back from its bytes (no pixels)."""
    ds = source_dataset()
    ds.SpecificCharacterSet = charset
    if isinstance(name, bytes):
        ds.add_new(0x00100010, "PN", name)
    else:
        ds.PatientName = name
    ds.StudyDescription = "PCI LAD"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    back = pydicom.dcmread(io.BytesIO(buf.getvalue()))
    del back.PixelData
    return back


def with_header(header: Dataset) -> LoadedPullback:
    base = loaded()
    return LoadedPullback(pullback=base.pullback, header=header,
                          sop_instance_uid=base.sop_instance_uid)


def _report_name(header: Dataset) -> tuple[str, Dataset]:
    """Build the SR from ``header`` as the reports do; return its name and the SR read back."""
    a = analysis("none")
    sr = build_sr(sanitised_header(header), a, score_lesions(a.lesions))
    back = pydicom.dcmread(io.BytesIO(dataset_bytes(sr)))
    return str(back.PatientName), back


@pytest.mark.parametrize(("charset", "name", "expected"), CHARSETS,
                         ids=[str(c[0]) or "default" for c in CHARSETS])
def test_every_character_set_gives_a_report(charset: str | list[str], name: str,
                                            expected: str) -> None:
    header = received(charset, name)
    got, sr = _report_name(header)
    assert sr.SpecificCharacterSet == UTF8
    assert got == expected
    # the PDF page header shows the name (or its romanised group) without raising
    assert page_header(sanitised_header(header)).lines[0].startswith("Patient: ")


def test_iso_2022_ir_58_standard_bytes() -> None:
    got, sr = _report_name(received(["", "ISO 2022 IR 58"], IR58_NAME))
    assert sr.SpecificCharacterSet == UTF8
    assert got.rstrip("=") == "Zhang^XiaoDong=张^小东"  # no escape sequence left behind
    figures.record("character sets", "Specific Character Sets giving a UTF-8 report",
                   len(CHARSETS) + 1)


def _run(*cmd: str | Path) -> str:
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=60,
                         encoding="utf-8", errors="replace", check=False)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_pdf_shows_every_script(tmp_path: Path) -> None:
    """The six names are drawn in the PDF (text layer and fonts), kanji included."""
    pdftotext, pdffonts = require_tool("pdftotext"), require_tool("pdffonts")
    pdftoppm = require_tool("pdftoppm")
    assert "Noto Sans Mono CJK JP" in font_families(mono=True), \
        "Noto Sans CJK missing: run scripts/install-system-deps.sh (fonts-noto-cjk)"
    keep = os.environ.get("SRSERVICE_KEEP_PAGES")
    shown = {}
    for label, charset, name in SCRIPTS:
        out = produce_outputs(with_header(received(charset, name)), analysis("score2"))
        assert out.sr.SpecificCharacterSet == UTF8 and out.pdf.SpecificCharacterSet == UTF8
        assert str(out.sr.PatientName) == name
        pdf = tmp_path / f"{label}.pdf"
        pdf.write_bytes(out.pdf.EncapsulatedDocument[:out.pdf.EncapsulatedDocumentLength])
        text = _run(pdftotext, "-l", "1", pdf, "-")
        for group in name.split("="):
            for part in group.split("^"):
                assert part in text, f"{label}: {part!r} not drawn in the PDF"
        fonts = _run(pdffonts, pdf)
        if label in ("japanese", "korean", "chinese"):
            assert "NotoSansMonoCJK" in fonts, fonts
        _run(pdftoppm, "-png", "-r", "150", "-f", "1", "-l", "1", "-x", "0", "-y", "0",
             "-W", "1240", "-H", "260", pdf, tmp_path / label)
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            for png in tmp_path.glob(f"{label}*.png"):
                shutil.copy(png, Path(keep) / png.name)
        shown[label] = page_header(sanitised_header(received(charset, name))).lines[0]
    for label, line in shown.items():
        figures.record("character sets", f"PDF header, {label}", line.split("   ID:")[0])


def test_romanised_name_without_a_cjk_font(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a font for the ideographs the page shows the alphabetic group alone."""
    from srservice.reporting import pdf

    monkeypatch.setattr(pdf, "_covered", lambda mono=False: frozenset(range(0x250)))
    assert pdf.display_name("Yamada^Tarou=山田^太郎=やまだ^たろう") == "Yamada Tarou"
    assert pdf.display_name("王^小东") == "? ??"
