"""Delivery to the local outbox: a job's output files as one directory, published atomically.

Used when no destination is configured (the pseudo-destination :data:`srservice.config.OUTBOX`).
An entry is ``<outbox>/job-<id>/`` holding the files named as in
:mod:`srservice.reporting.outputs`; it is assembled in a temporary directory (each file
fsynced, then the directory) and renamed into place (:mod:`srservice.durable`), so a
consumer of the outbox never sees a half-written report.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from srservice.durable import fsync_dir, fsync_file
from srservice.errors import DeliveryError


def copy_to_outbox(outbox: Path, job_id: int, files: list[Path]) -> Path:
    """Copy a job's output files into ``outbox/job-<id>/`` as one atomic directory rename.

    Idempotent: when the entry exists already, nothing is written and its path is returned.
    """
    outbox.mkdir(parents=True, exist_ok=True)
    final = outbox / f"job-{job_id}"
    if final.exists():
        return final
    tmp = Path(tempfile.mkdtemp(dir=outbox, prefix=f".job-{job_id}.", suffix=".tmp"))
    try:
        for src in files:
            with src.open("rb") as fin, (tmp / src.name).open("wb") as fout:
                shutil.copyfileobj(fin, fout)
                fsync_file(fout)
        fsync_dir(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # a concurrent attempt won the rename
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(outbox)
    return final


def deliver_to_outbox(outbox: Path, job_id: int, files: list[Path]) -> Path:
    """Publish a job's outputs in the outbox; raise with the outcome the failure calls for.

    Raises
    ------
    FileNotFoundError
        An output is missing (permanent: the delivery fails at once).
    DeliveryError
        The outbox cannot be written (disk full, permissions): retried until the deadline.
    """
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"output {f.name} of job {job_id} is missing")
    try:
        return copy_to_outbox(outbox, job_id, files)
    except OSError as exc:
        raise DeliveryError(f"outbox: {exc}") from exc
