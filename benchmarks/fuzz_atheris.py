"""Long coverage-guided fuzzing campaign of the DICOM reader and the loader (atheris).

Runs :mod:`tests.support.atheris_harness` (the same harness as
``tests/reliability/test_atheris.py``, which runs it for 12 s) for ``--seconds`` with
``--jobs`` parallel libFuzzer processes sharing a corpus directory, starting from the committed
seeds, and prints the figures (inputs, coverage, corpus size, findings). Findings (inputs
that raised something other than an ``SrServiceError``, hung for 10 s or used 2 GiB) are
saved under ``--out/artifacts``; rerun one with
``python -m tests.support.atheris_harness ARTIFACT``.

    .venv/bin/python benchmarks/fuzz_atheris.py --seconds 3600 --out /tmp/fuzz
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "tests" / "data" / "fuzz-seeds"


def main() -> int:
    """Run the campaign; return 1 when there are findings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3600)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("fuzz-atheris"))
    args = parser.parse_args()
    corpus, artifacts = args.out / "corpus", args.out / "artifacts"
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    procs = []
    for k in range(args.jobs):
        log = (args.out / f"fuzz-{k}.log").open("w")
        procs.append((log, subprocess.Popen(
            [sys.executable, "-m", "tests.support.atheris_harness",
             f"-max_total_time={args.seconds}", "-timeout=10", "-rss_limit_mb=2048",
             "-max_len=262144", f"-seed={k + 1}", f"-artifact_prefix={artifacts}/",
             str(corpus), str(SEEDS)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)))
    for log, proc in procs:
        proc.wait()
        log.close()
    elapsed = time.monotonic() - t0
    runs = cov = 0
    for k in range(args.jobs):
        text = (args.out / f"fuzz-{k}.log").read_text(errors="replace")
        done = re.findall(r"#(\d+)\s+(?:DONE|pulse|NEW|REDUCE)\s+cov: (\d+)", text)
        if done:
            runs += int(done[-1][0])
            cov = max(cov, int(done[-1][1]))
    findings = sorted(p.name for p in artifacts.iterdir())
    print(f"seconds: {elapsed:.0f}  jobs: {args.jobs}  inputs: {runs}  "
          f"rate: {runs / elapsed:.1f}/s  coverage: {cov} edges  "
          f"corpus: {len(list(corpus.iterdir()))}  findings: {len(findings)}")
    for name in findings:
        print(f"  {artifacts / name}")
    return 1 if findings else 0


if __name__ == "__main__":
    raise SystemExit(main())
