"""The pure packages (analysis, scoring) import no DICOM, network, queue or database library.

architecture.md: ``analysis`` and ``scoring`` import nothing from the project but their own
types, and never pydicom, pynetdicom, celery or sqlalchemy. Checked in a fresh interpreter so
that other tests' imports cannot hide a violation.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("pydicom", "pynetdicom", "celery", "sqlalchemy", "kombu")


def _analysis_modules() -> list[str]:
    import srservice.analysis as pkg

    return ["srservice.analysis"] + [
        f"srservice.analysis.{m.name}" for m in pkgutil.iter_modules(pkg.__path__)]


def _check(modules: list[str]) -> dict[str, list[str]]:
    code = (
        "import importlib, json, sys\n"
        f"mods = {modules!r}\n"
        f"forbidden = {FORBIDDEN!r}\n"
        "out = {}\n"
        "for m in mods:\n"
        "    importlib.import_module(m)\n"
        "out['loaded'] = sorted(k for k in sys.modules if k.split('.')[0] in forbidden)\n"
        "print(json.dumps(out))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    result: dict[str, list[str]] = json.loads(res.stdout.strip().splitlines()[-1])
    return result


def test_analysis_modules_are_listed() -> None:
    mods = _analysis_modules()
    assert "srservice.analysis.pipeline" in mods
    assert "srservice.analysis.types" in mods


def test_analysis_imports_no_dicom_network_queue_or_database() -> None:
    assert _check(_analysis_modules())["loaded"] == []


def test_scoring_imports_no_dicom_network_queue_or_database() -> None:
    assert _check(["srservice.scoring"])["loaded"] == []


def test_checker_detects_a_violation() -> None:
    # The subprocess check itself must be able to fail.
    assert _check(["pydicom"])["loaded"] != []
