"""Coverage-guided fuzzing of the DICOM reader and the loader, bounded (promise P11 of
docs/reliability.md).

libFuzzer (atheris) mutates the committed seed corpus (``tests/data/fuzz-seeds``: a 2-frame
phantom in each transfer syntax the listener takes) for 12 seconds (about 30 s with the
instrumenting start-up) through the header scan, the listener's ``check_received`` and
``load_pullback``
(:mod:`tests.support.atheris_harness`). Any exception other than an ``SrServiceError``, a
10 s hang or 2 GiB of memory stops the run with the input saved; the test then fails and
shows it. ``benchmarks/fuzz_atheris.py`` runs the same harness for hours.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import figures
from tests.support.environment import ROOT, missing
from tests.support.listener import child_env

pytestmark = pytest.mark.timeout(120)

SEEDS = ROOT / "tests" / "data" / "fuzz-seeds"
SECONDS = 12


def test_atheris_reader_and_loader(tmp_path: Path) -> None:
    if importlib.util.find_spec("atheris") is None:  # a test extra (pyproject.toml)
        missing("atheris (pip install -e '.[test]')")
    corpus, artifacts = tmp_path / "corpus", tmp_path / "artifacts"
    corpus.mkdir()
    artifacts.mkdir()
    seeds = sorted(SEEDS.glob("*.dcm"))
    assert len(seeds) >= 7
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.atheris_harness", f"-max_total_time={SECONDS}",
         "-timeout=10", "-rss_limit_mb=2048", "-max_len=65536", "-seed=20261129",
         f"-artifact_prefix={artifacts}/", str(corpus), str(SEEDS)],
        cwd=ROOT, env=child_env(OMP_NUM_THREADS="1"), capture_output=True, text=True,
        timeout=SECONDS + 90, check=False)
    log = proc.stderr
    findings = sorted(p.name for p in artifacts.iterdir())
    detail = "\n".join(line for line in log.splitlines()
                       if not line.startswith(("#", "INFO:", "WARNING:")))[-3000:]
    assert proc.returncode == 0 and findings == [], f"finding {findings}:\n{detail}"
    inited = re.search(r"INITED cov: (\d+)", log)
    done = re.search(r"#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+) corp: (\d+)", log)
    assert inited and done, log[-2000:]
    runs, cov = int(done.group(1)), int(done.group(2))
    figures.record("fuzz/atheris", f"{SECONDS} s from {len(seeds)} seeds",
                   f"{runs} inputs, coverage {inited.group(1)} -> {cov} edges, "
                   f"corpus {done.group(4)}, findings 0")
    assert runs >= 100, f"only {runs} inputs in {SECONDS} s"
    assert cov > int(inited.group(1)), "no new coverage: the fuzzer is not exploring"
