"""A real web viewer in a real browser: OHIF (npm ``@ohif/app``) in headless Debian Chromium.

The viewer is installed by ``scripts/install-viewer.sh`` into ``vendor/ohif/`` and served by
:mod:`srservice.viewer` in front of an Orthanc with the DICOMweb plugin. Chromium is driven by
Playwright (PyPI) through ``executable_path``: no Playwright browser is ever downloaded.
Screenshots are kept under :data:`ARTIFACTS` (``test-artifacts/viewer/`` unless
``SRSERVICE_TEST_ARTIFACTS`` says otherwise).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.environment import ROOT, missing

#: The built viewer scripts/install-viewer.sh installs.
OHIF_DIST = ROOT / "vendor" / "ohif" / "3.13.2" / "dist"
ARTIFACTS = Path(os.environ.get("SRSERVICE_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "viewer"


def chromium_path() -> str:
    """Debian's chromium (``/usr/bin/chromium``), failing in CI when absent."""
    path = shutil.which("chromium") or ("/usr/bin/chromium"
                                        if Path("/usr/bin/chromium").exists() else None)
    if path is None:
        missing("Debian chromium (install with scripts/install-system-deps.sh)")
    assert path is not None
    return path


def ohif_dist() -> Path:
    """The built OHIF viewer (scripts/install-viewer.sh, run by scripts/test.sh)."""
    if not (OHIF_DIST / "index.html").is_file():
        missing(f"OHIF viewer in {OHIF_DIST} (run scripts/install-viewer.sh)")
    return OHIF_DIST


@dataclass
class PageLog:
    """What a page said: console messages by type, uncaught errors, failed requests."""

    console: list[tuple[str, str]] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and HTTP errors of our origin."""
        return ([t for kind, t in self.console if kind == "error"] + self.page_errors
                + self.failed)

    def attach(self, page: Any) -> None:
        """Record ``page``'s console, uncaught errors and failed responses."""
        page.on("console", lambda m: self.console.append((m.type, m.text)))
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        page.on("response", lambda r: self.failed.append(f"HTTP {r.status} {r.url}")
                if r.status >= 400 else None)


@contextmanager
def headless_chromium() -> Iterator[Any]:
    """Yield a Playwright Chromium browser (Debian's chromium, headless)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright (pip install -e '.[test]')")
        raise
    exe = chromium_path()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=exe, headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                  "--use-gl=swiftshader", "--enable-unsafe-swiftshader"])
        try:
            yield browser
        finally:
            browser.close()
