"""Run the reliability suite and print its table of figures.

Usage (from the repository root)::

    .venv/bin/python benchmarks/reliability_report.py             # the CI-sized run
    SRSERVICE_LONG_RUN=1 .venv/bin/python benchmarks/reliability_report.py   # the longer run
    .venv/bin/python benchmarks/reliability_report.py --markdown -- -k "load or fault"

Everything after ``--`` is passed to pytest. The figures are the ones the tests record with
:func:`tests.support.figures.record` (counts, throughput, RSS, time to drop a slowloris
sender, lost/duplicated per fault); ``--markdown`` prints them as the table used in
docs/reliability.md. The exit code is pytest's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load(path: Path) -> list[dict[str, object]]:
    """Read the JSON-lines figures written by the suite."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def markdown(rows: list[dict[str, object]]) -> str:
    """The figures as a Markdown table."""
    out = ["| area | figure | value |", "|---|---|---|"]
    for r in rows:
        value = f"{r['value']} {r['unit']}".strip()
        out.append(f"| {r['area']} | {r['name']} | {value} |")
    return "\n".join(out)


def text(rows: list[dict[str, object]]) -> str:
    """The figures as a fixed-width table."""
    sys.path.insert(0, str(ROOT))
    from tests.support.figures import Figure, table

    figs = [Figure(str(r["area"]), str(r["name"]), r["value"], str(r["unit"]))  # type: ignore[arg-type]
            for r in rows]
    return table(figs)


def main(argv: list[str] | None = None) -> int:
    """Run pytest on tests/reliability and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        target = Path(d) / "figures.jsonl"
        env = {**os.environ, "RELIABILITY_FIGURES_FILE": str(target)}
        cmd = [sys.executable, "-m", "pytest", "tests/reliability", "-q", "-rfEx",
               "-p", "no:cacheprovider", *args.pytest_args]
        code = subprocess.call(cmd, cwd=ROOT, env=env)
        rows = load(target)
    print()
    print("srservice reliability figures"
          + (" (SRSERVICE_LONG_RUN=1)" if os.environ.get("SRSERVICE_LONG_RUN") else ""))
    print(markdown(rows) if args.markdown else text(rows))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
