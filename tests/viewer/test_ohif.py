"""The reports in a real viewer: OHIF in headless Chromium, served by `srservice serve` itself.

One module-wide world, started once: Orthanc with the DICOMweb plugin as the PACS, the whole
service (`srservice serve` with embedded workers, DCMTK storescu as the sender) delivering its
SR, PDF and presentation state to Orthanc and serving the OHIF viewer (npm ``@ohif/app``,
``SRSERVICE_VIEWER_PORT``) pointed at Orthanc's DICOMweb, and one Debian Chromium driven by
Playwright. Two pullbacks: the demo phantom (one calcified segment, score 4) and a pullback
without calcium. Every test opens a fresh page and asserts from what the page shows; the
screenshots are kept in ``test-artifacts/viewer/``.

OHIF 3.13.2 draws an SR's contours on the image with each measurement group's first five values
(its SR viewport), and lists the groups in its measurement panel once the user accepts to track
the SR's measurements ("hydration"); our groups are loaded as ArrowAnnotate annotations whose
text is the group's Comment sentence (srservice.reporting.sr). The tests read the values where
OHIF shows them. OHIF 3.13.2 has no renderer for presentation states: the presentation state is
listed in the study and opening it must not break the page.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
import pytest

from srservice.config import load_settings
from srservice.errors import ConfigError
from srservice.reporting.presentation import SERIES_DESCRIPTION as PR_DESCRIPTION
from srservice.reporting.sr import COMMENT
from tests.support.browser import ARTIFACTS, PageLog, headless_chromium, ohif_dist
from tests.support.environment import free_port, poll
from tests.support.orthanc import OrthancServer
from tests.support.service import Service, phantom_file, storescu

pytestmark = pytest.mark.timeout(400)

SR_DESCRIPTION = "IVUS calcium score (automated, unverified)"
PDF_DESCRIPTION = "IVUS calcium score report (automated, unverified)"
PR_CLASS = "1.2.840.10008.5.1.4.1.1.11.1"
HYDRATE_PROMPT = "Do you want to continue tracking measurements for this study?"
# OHIF's first-visit tour would cover the page; frames without storage (the PDF viewer's) skip it.
NO_TOUR = ("if (window.localStorage) "
           "localStorage.setItem('shownTours', JSON.stringify(['basicViewerTour']));")


@dataclass
class Study:
    """A pullback in the PACS with the service's reports."""

    study_uid: str
    frames: int
    sr: pydicom.Dataset
    summary: dict[str, Any]

    @property
    def summary_frame(self) -> int:
        """The frame the SR's first (whole-pullback) group is drawn on."""
        measurements = next(i for i in self.sr.ContentSequence
                            if i.ConceptNameCodeSequence[0].CodeValue == "126010")
        group = measurements.ContentSequence[0]
        for num in group.ContentSequence:
            for sc in num.get("ContentSequence", []):
                if sc.ValueType == "SCOORD":
                    return int(sc.ContentSequence[0].ReferencedSOPSequence[0]
                               .ReferencedFrameNumber)
        raise AssertionError("the summary group has no SCOORD")


@dataclass
class World:
    orthanc: OrthancServer
    viewer_url: str
    browser: Any
    scored: Study
    plain: Study


def _no_lesion_file(directory: Path) -> tuple[Path, str]:
    from srservice.phantom.suite import small_case
    from srservice.phantom.writer import write_pullback

    uid = f"2.25.{uuid.uuid4().int}"
    return write_pullback(small_case("none", frames=16, rows=160), directory / "plain.dcm",
                          sop_instance_uid=uid), uid


def _study(orthanc: OrthancServer, service: Service, path: Path, uid: str) -> Study:
    src = pydicom.dcmread(path, stop_before_pixels=True)
    assert storescu(path, service.port).returncode == 0
    job = service.wait_job(uid, ("delivered", "failed", "dead"), timeout=150)
    assert job.state == "delivered", (job.reason, service.logs())

    def reports() -> list[dict[str, Any]] | None:
        found = [i for i in orthanc.instances()
                 if i.get("StudyInstanceUID") == src.StudyInstanceUID]
        modalities = sorted(str(i.get("Modality")) for i in found)
        return found if modalities == ["DOC", "IVUS", "PR", "SR"] else None

    found = poll(reports, 60, "pullback, SR, PDF and presentation state in Orthanc", 0.5)
    sr_id = next(i["ID"] for i in found if i.get("Modality") == "SR")
    sr = pydicom.dcmread(BytesIO(orthanc.get_bytes(f"/instances/{sr_id}/file")))
    assert job.summary is not None
    return Study(str(src.StudyInstanceUID), int(src.NumberOfFrames), sr, job.summary)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("viewer")
    dist = ohif_dist()
    orthanc = OrthancServer(tmp / "orthanc", dicomweb=True).start()
    viewer_port = free_port()
    service = Service(tmp, destinations=orthanc.destination, viewer_port=str(viewer_port),
                      viewer_dicomweb_url=orthanc.dicomweb_url, viewer_dist=str(dist))
    try:
        service.start()
        scored_path, scored_uid, _ = phantom_file(tmp)
        plain_path, plain_uid = _no_lesion_file(tmp)
        for path in (scored_path, plain_path):  # the PACS holds the pullbacks
            orthanc.upload(path.read_bytes())
        scored = _study(orthanc, service, scored_path, scored_uid)
        plain = _study(orthanc, service, plain_path, plain_uid)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with headless_chromium() as browser:
            yield World(orthanc, f"http://127.0.0.1:{viewer_port}", browser, scored, plain)
    finally:
        service.stop()
        orthanc.stop()


def _until(page: Any, predicate: Any, timeout: float, what: str) -> Any:
    """Poll ``predicate`` while Playwright delivers the page's events (never time.sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        page.wait_for_timeout(200)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _open(world: World, study: Study) -> tuple[Any, PageLog]:
    page = world.browser.new_page(viewport={"width": 1600, "height": 1000})
    page.add_init_script(NO_TOUR)
    log = PageLog()
    log.attach(page)
    page.goto(f"{world.viewer_url}/viewer?StudyInstanceUIDs={study.study_uid}")
    page.get_by_text(SR_DESCRIPTION, exact=True).first.wait_for(timeout=60_000)
    # Let the pullback's stack finish loading first: switching the viewport while OHIF still
    # loads frames makes it report cancelled loads as errors.
    _until(page, lambda: "I:" in _frame_indicator(page), 60, "the pullback in the viewport")
    page.wait_for_load_state("networkidle", timeout=60_000)
    return page, log


def _labels(page: Any) -> list[str]:
    """The text OHIF draws over the image (SVG), one entry per line."""
    return [" ".join(t.split()) for t in page.evaluate(
        "() => [...document.querySelectorAll('[data-cy=viewport-pane] svg text')]"
        ".map(t => t.textContent)")]


def _contours(page: Any) -> list[int]:
    """Number of points of every polyline OHIF draws over the image."""
    return list(page.evaluate(
        "() => [...document.querySelectorAll('[data-cy=viewport-pane] svg polyline')]"
        ".map(p => p.getAttribute('points').trim().split(/\\s+/).length)"))


def _frame_indicator(page: Any) -> str:
    return " ".join(page.locator("[data-cy=viewport-overlay-bottom-right]").inner_text()
                    .split())


def _open_sr(page: Any, expected_label: str) -> list[str]:
    page.get_by_text(SR_DESCRIPTION, exact=True).first.dblclick()
    _until(page, lambda: any(expected_label in x for x in _labels(page)), 60,
           f"OHIF to draw {expected_label!r}")
    page.wait_for_timeout(1500)  # the remaining groups are drawn in the same pass
    return _labels(page)


def _comments(sr: pydicom.Dataset) -> list[str]:
    """The Comment sentence of every measurement group of ``sr``, in order."""
    measurements = next(i for i in sr.ContentSequence
                        if i.ConceptNameCodeSequence[0].CodeValue == "126010")
    return [str(i.TextValue) for g in measurements.ContentSequence for i in g.ContentSequence
            if i.ConceptNameCodeSequence[0].CodeValue == COMMENT.value]


def _track(page: Any, expected: str) -> str:
    """Accept OHIF's offer to track the SR's measurements; return the measurement panel's text.

    The panel lists what OHIF loaded from the SR: one row per measurement group.
    """
    page.get_by_text(HYDRATE_PROMPT).wait_for(timeout=30_000)
    page.get_by_role("button", name="Yes", exact=True).click()
    panel = page.locator("[data-cy=trackedMeasurements-panel]")
    clicked = [-10.0]

    def listed() -> str | None:
        if not panel.is_visible():
            # the button toggles the panel: click again only if a click did not open it
            if time.monotonic() - clicked[0] > 5:
                page.locator("[data-cy=trackedMeasurements-btn]").click()
                clicked[0] = time.monotonic()
            return None
        text = str(panel.inner_text())
        return text if expected in text else None

    _until(page, listed, 60, f"the measurement panel to list {expected!r}")
    page.wait_for_timeout(1000)  # every row of the same hydration
    return str(panel.inner_text())


def test_scored_study_sr_in_ohif(world: World) -> None:
    study = world.scored
    lesion = study.summary["lesions"][0]
    score = study.summary["ivus_calcium_score"]
    assert score == 4  # the demo phantom
    page, log = _open(world, study)
    try:
        labels = _open_sr(page, f"IVUS calcium score: {score:.2f} {{points}}")
        page.screenshot(path=str(ARTIFACTS / "scored-sr.png"))
        text = " | ".join(labels)
        sentences = _comments(study.sr)
        # the segment group: its sentence (score and every component) is its first label
        components = ", ".join(f"{name} 1" for name in (
            "long superficial calcium", "circumferential calcium", "calcified nodule",
            "small vessel"))
        segment = (f"Calcified segment 1 (frames {lesion['start_frame']}-{lesion['end_frame']}):"
                   f" IVUS calcium score {score}; components: {components}")
        assert sentences[1].startswith(segment), sentences
        assert segment in text, labels
        assert f"IVUS calcium score: {score:.2f} {{points}}" in text, labels
        # the arc and EEM values, from the contour groups on the same frame
        assert "Arc of Calcium:" in text and " deg" in text, labels
        assert "EEM Cross-Sectional Area:" in text and "EEM Diameter:" in text, labels
        assert "Vessel lumen cross-sectional area:" in text, labels
        # drawn on the maximum calcium frame, with contours (many-point polylines)
        frame = lesion["max_calcium_frame"]
        assert study.summary_frame == frame
        assert f"({frame}/{study.frames})" in _frame_indicator(page)
        contours = [n for n in _contours(page) if n >= 20]
        assert len(contours) >= 4, _contours(page)  # lumen, EEM, arc, score contour
        # the measurement panel: one row per group, each with its sentence
        panel = _track(page, segment)
        page.screenshot(path=str(ARTIFACTS / "scored-sr-panel.png"))
        assert f"({len(sentences)})" in panel, panel
        for sentence in sentences:
            assert sentence in panel, (sentence, panel)
        values = study.summary["frames"][frame - 1]
        assert sentences[0].startswith(f"Whole pullback: IVUS calcium score {score} ")
        assert (f"Segment 1, frame {frame}, EEM contour: EEM area "
                f"{values['eem_area_mm2']:.2f} mm², mean EEM diameter "
                f"{values['eem_mean_diameter_mm']:.2f} mm") in panel, panel
        assert (f"Segment 1, frame {frame}, lumen contour: lumen area "
                f"{values['lumen_area_mm2']:.2f} mm²") in panel, panel
        assert (f"maximum superficial calcium arc "
                f"{lesion['max_superficial_calcium_arc_deg']:.0f}°") in panel, panel
        assert f"Segment 1, frame {frame}, calcium arc 1: arc of calcium (any depth) " in panel
        # the tracked annotations are on the maximum calcium frame
        assert f"({frame}/{study.frames})" in _frame_indicator(page)
        assert f"F: {frame}" in panel
        assert log.errors == [], log.errors
    finally:
        page.close()


def test_no_lesion_study_sr_in_ohif(world: World) -> None:
    study = world.plain
    assert study.summary["lesions"] == [] and study.summary["ivus_calcium_score"] == 0
    page, log = _open(world, study)
    try:
        assessable = sum(1 for f in study.summary["frames"] if f.get("assessable", True))
        labels = _open_sr(page, f"Number of assessable frames: {assessable:.2f} {{frames}}")
        page.screenshot(path=str(ARTIFACTS / "no-lesion-sr.png"))
        text = " | ".join(labels)
        # OHIF prints a value 0 as an empty number ("IVUS calcium score: {points}"); the
        # group's sentence, its first label, says 0
        assert "IVUS calcium score: " in text, labels
        assert "Whole pullback: IVUS calcium score 0 (no calcified segment)" in text, labels
        assert f"({study.summary_frame}/{study.frames})" in _frame_indicator(page)
        assert [n for n in _contours(page) if n >= 20], _contours(page)
        panel = _track(page, "Whole pullback: IVUS calcium score 0 (no calcified segment)")
        page.screenshot(path=str(ARTIFACTS / "no-lesion-sr-panel.png"))
        assert "(1)" in panel, panel
        assert log.errors == [], log.errors
    finally:
        page.close()


def test_pdf_in_ohif(world: World) -> None:
    page, log = _open(world, world.scored)
    pdf_types: list[str] = []
    page.on("response", lambda r: pdf_types.append(r.url) if r.ok and (
        r.headers.get("content-type") or "").startswith("application/pdf") else None)
    try:
        page.get_by_text(PDF_DESCRIPTION, exact=True).first.dblclick()
        _until(page, lambda: pdf_types, 60, "the viewer to show the PDF")
        page.wait_for_timeout(3000)
        page.screenshot(path=str(ARTIFACTS / "scored-pdf.png"))
        # the document OHIF hands to the browser's PDF viewer, read back inside the page
        url, size, head, tail = page.evaluate("""async () => {
            const el = document.querySelector('[data-cy=viewport-pane] object,'
                + '[data-cy=viewport-pane] iframe, [data-cy=viewport-pane] embed');
            const url = el.data || el.src;
            const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
            const text = b => String.fromCharCode(...b);
            return [url, bytes.length, text(bytes.slice(0, 5)), text(bytes.slice(-16))];
        }""")
        assert head == "%PDF-" and "%%EOF" in tail, (url, head, tail)
        pdf = next(i for i in world.orthanc.instances() if i.get("Modality") == "DOC"
                   and i.get("StudyInstanceUID") == world.scored.study_uid)
        doc = pydicom.dcmread(BytesIO(world.orthanc.get_bytes(f"/instances/{pdf['ID']}/file")))
        assert size in {len(doc.EncapsulatedDocument), len(doc.EncapsulatedDocument) - 1}
        assert log.errors == [], log.errors
    finally:
        page.close()


def test_presentation_state_listed_in_ohif(world: World) -> None:
    page, log = _open(world, world.scored)
    try:
        thumb = page.get_by_text(PR_DESCRIPTION, exact=True).first
        thumb.wait_for(timeout=30_000)
        thumb.dblclick()
        # OHIF 3.13.2 has no SOP class handler for presentation states: it says so and keeps
        # the pullback in the viewport (docs/viewing.md)
        page.get_by_text("The selected display sets could not be added to the viewport."
                         ).wait_for(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "scored-pr.png"))
        assert "I:" in _frame_indicator(page)
        assert log.errors == [], log.errors
        # what OHIF fetched is our presentation state, on the maximum calcium frame
        prs = [i for i in world.orthanc.instances() if i.get("SOPClassUID") == PR_CLASS
               and i.get("StudyInstanceUID") == world.scored.study_uid]
        pr = pydicom.dcmread(BytesIO(world.orthanc.get_bytes(f"/instances/{prs[0]['ID']}/file")))
        frames = {int(r.ReferencedFrameNumber) for a in pr.GraphicAnnotationSequence
                  for r in a.ReferencedImageSequence}
        assert frames == {world.scored.summary["lesions"][0]["max_calcium_frame"]}
    finally:
        page.close()


def test_viewer_setting_needs_a_dicomweb_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="viewer_dicomweb_url"):
        load_settings(data_dir=tmp_path, viewer_port=8080)
    with pytest.raises(ConfigError, match="not an http"):
        load_settings(data_dir=tmp_path, viewer_port=8080, viewer_dicomweb_url="pacs:8042")
