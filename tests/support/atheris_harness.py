"""Coverage-guided fuzzing (atheris / libFuzzer) of the DICOM reader and the loader.

Run as ``python -m tests.support.atheris_harness [libFuzzer flags] CORPUS_DIR SEED_DIR``
(``tests/reliability/test_atheris.py`` for a bounded run, ``benchmarks/fuzz_atheris.py`` for
a long one). Each input is a whole Part 10 file; it goes through

1. :func:`srservice.dicomheader.check_file_header` (the streaming header scan),
2. :func:`srservice.listener.checks.check_received` (what the listener runs before Success),
3. :func:`srservice.dicomio.load_pullback` (what the worker runs, frame headers and decoding).

An :class:`~srservice.errors.SrServiceError` is the expected answer to bad input. Anything
else raised, a hang longer than ``-timeout`` or memory above ``-rss_limit_mb`` is a finding:
libFuzzer stops and writes the input to ``-artifact_prefix``. srservice and pydicom are
instrumented for coverage.

``python -m tests.support.atheris_harness --make-seeds DIR`` writes the seed corpus (small
phantom pullbacks in every transfer syntax the listener takes) committed in
``tests/data/fuzz-seeds``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

#: Where one input is written (tmpfs when available: thousands of writes per second).
_SCRATCH = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())

SEED_TRANSFER_SYNTAXES = ("explicit", "implicit", "jpeg_baseline", "jpeg_lossless", "jpegls",
                          "j2k", "rle")


def make_seeds(directory: Path) -> list[Path]:
    """Write the seed corpus: a 2-frame 64 x 64 phantom in each transfer syntax."""
    from tests.support.reliability import phantom_part10

    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for ts in SEED_TRANSFER_SYNTAXES:
        path = directory / f"phantom-2x64-{ts}.dcm"
        path.write_bytes(phantom_part10(2, 64, ts))
        out.append(path)
    return out


def main() -> None:
    """Fuzz until libFuzzer's limits (``-max_total_time``, ``-runs``) or a finding."""
    import logging
    import warnings

    import atheris

    warnings.simplefilter("ignore")  # pydicom warns on every odd value: noise, and slow
    logging.disable(logging.CRITICAL)
    with atheris.instrument_imports(include=["srservice", "pydicom"]):
        from srservice.dicomheader import ReadLimits, check_file_header, part10_dataset_start
        from srservice.dicomio import load_pullback
        from srservice.errors import SrServiceError
        from srservice.listener.checks import check_received

    limits = ReadLimits(max_header_bytes=1 << 20, max_header_elements=20_000,
                        decode_memory_budget=256 << 20)
    fd, name = tempfile.mkstemp(dir=_SCRATCH, prefix="srservice-fuzz-", suffix=".dcm")
    os.close(fd)
    scratch = Path(name)

    def one_input(data: bytes) -> None:
        scratch.write_bytes(data)
        try:
            with scratch.open("rb") as fh:
                check_file_header(fh, limits)
                fh.seek(0)
                _, transfer_syntax = part10_dataset_start(fh)
            check_received(scratch, sop_class_uid="1.2.840.10008.5.1.4.1.1.3.1",
                           sop_instance_uid="1.2.3", transfer_syntax_uid=transfer_syntax,
                           limits=limits)
        except SrServiceError:
            pass
        with contextlib.suppress(SrServiceError):
            load_pullback(scratch, limits=limits)

    try:
        atheris.Setup(sys.argv, one_input)
        atheris.Fuzz()
    finally:
        scratch.unlink(missing_ok=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--make-seeds":
        for seed in make_seeds(Path(sys.argv[2])):
            print(seed)
    else:
        main()
