"""Atomic writing of a job's outputs: ``data_dir/outputs/<job>/`` and the local outbox.

Every file is written to a temporary name in the same directory, ``fsync``-ed and renamed
over its final name (``os.replace``), then the directory is ``fsync``-ed: a crash leaves the
old complete file or the new complete file, never a partial one (COMMON.md rule). An outbox
entry is a whole directory renamed into place, so a consumer of the outbox never sees a
half-written report.

Output UIDs are not touched here: :func:`srservice.reporting.produce_outputs` derives them
(with the ``revision`` of a superseding job, see :mod:`srservice.reporting.uids`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

from pydicom import dcmwrite
from pydicom.dataset import Dataset

from srservice.durable import atomic_write, fsync_dir, fsync_file

SR_NAME = "sr.dcm"
PDF_NAME = "pdf.dcm"
SUMMARY_NAME = "summary.json"


@dataclass(frozen=True)
class WrittenOutputs:
    """Paths and UIDs of a job's written outputs."""

    directory: Path
    sr_path: Path
    pdf_path: Path
    summary_path: Path
    sr_sop_instance_uid: str
    pdf_sop_instance_uid: str


def dataset_bytes(ds: Dataset) -> bytes:
    """Encode a dataset with its File Meta Information as a DICOM Part 10 file (PS3.10 7.1)."""
    buf = BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def write_job_outputs(root: Path, job_id: int, sr: Dataset, pdf: Dataset,
                      summary: dict[str, Any]) -> WrittenOutputs:
    """Write SR, PDF and summary JSON of one job to ``root/<job_id>/`` atomically."""
    directory = root / str(job_id)
    directory.mkdir(parents=True, exist_ok=True)
    sr_path, pdf_path, summary_path = (directory / SR_NAME, directory / PDF_NAME,
                                       directory / SUMMARY_NAME)
    atomic_write(sr_path, dataset_bytes(sr))
    atomic_write(pdf_path, dataset_bytes(pdf))
    atomic_write(summary_path, json.dumps(summary, indent=2, default=str).encode())
    return WrittenOutputs(directory, sr_path, pdf_path, summary_path, str(sr.SOPInstanceUID),
                          str(pdf.SOPInstanceUID))


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
