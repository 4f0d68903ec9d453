"""The table of figures the reliability suite prints (and optionally writes as JSON lines).

Tests call :func:`record`; the suite's ``conftest.py`` prints the table at the end of the run
and ``benchmarks/reliability_report.py`` reads the JSON lines written to
``$RELIABILITY_FIGURES_FILE`` (when set) to print it again for docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Figure:
    """One measured figure."""

    area: str
    name: str
    value: float | int | str
    unit: str = ""


_FIGURES: list[Figure] = []
_LOCK = threading.Lock()


def record(area: str, name: str, value: float | int | str, unit: str = "") -> None:
    """Remember one figure (and append it to ``$RELIABILITY_FIGURES_FILE``)."""
    if isinstance(value, float):
        value = round(value, 3)
    fig = Figure(area, name, value, unit)
    with _LOCK:
        _FIGURES.append(fig)
        target = os.environ.get("RELIABILITY_FIGURES_FILE")
        if target:
            with open(target, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(asdict(fig)) + "\n")


def recorded() -> list[Figure]:
    """Figures recorded so far in this process."""
    with _LOCK:
        return list(_FIGURES)


def table(figures: list[Figure]) -> str:
    """Render figures as a fixed-width table (area | figure | value unit)."""
    if not figures:
        return "(no reliability figures recorded)"
    rows = [(f.area, f.name, f"{f.value} {f.unit}".strip()) for f in figures]
    w0 = max(len("area"), *(len(r[0]) for r in rows))
    w1 = max(len("figure"), *(len(r[1]) for r in rows))
    lines = [f"{'area':<{w0}}  {'figure':<{w1}}  value", f"{'-' * w0}  {'-' * w1}  -----"]
    lines += [f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows]
    return "\n".join(lines)
