"""Child process of the fuzz test: run the analysis entry point over many files.

``python -m tests.support.analysis_runner FILE...`` (or ``--dir DIR``) prints, per file,
``START <name>`` before and ``END <name> <outcome> <seconds> <reason>`` after
:func:`srservice.dicomio.load_pullback` + :func:`srservice.analysis.pipeline.analyze_pullback`.
The parent enforces a per-file deadline on the lines (a missing END is a hang) and restarts
the runner after the offending file. Outcomes: ``ok``, ``error`` (an SrServiceError, with its
class and reason) or ``crash`` (anything else). The address space is limited so that an
absurd allocation shows up as a ``MemoryError`` crash instead of swapping the machine.
"""

from __future__ import annotations

import resource
import sys
import time
import warnings
from pathlib import Path


def main(argv: list[str]) -> int:
    """Analyse the files named in ``argv`` (or every ``*.dcm`` of ``--dir DIR``)."""
    limit = 3 * 1024**3
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    warnings.simplefilter("ignore")
    import logging

    logging.disable(logging.CRITICAL)
    from srservice.analysis.pipeline import analyze_pullback
    from srservice.dicomio import load_pullback
    from srservice.errors import SrServiceError

    if argv[:1] == ["--dir"]:
        skip = set(argv[2:])
        files = [p for p in sorted(Path(argv[1]).glob("*.dcm")) if p.name not in skip]
    else:
        files = [Path(a) for a in argv]
    print("READY", flush=True)
    for path in files:
        print(f"START {path.name}", flush=True)
        t0 = time.monotonic()
        try:
            loaded = load_pullback(path)
            analyze_pullback(loaded.pullback)
            outcome, reason = "ok", ""
        except SrServiceError as exc:
            outcome = "error"
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        except BaseException as exc:
            outcome, reason = "crash", f"{type(exc).__name__}: {exc}"
        dt = time.monotonic() - t0
        reason = " ".join(reason.split())[:300]
        print(f"END {path.name} {outcome} {dt:.3f} {reason}", flush=True)
    print("DONE", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
