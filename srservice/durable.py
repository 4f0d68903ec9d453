"""Durable file writes: what is on disk after a crash is the old file or the new one, whole.

The POSIX recipe, used by the spool (:mod:`srservice.listener.spool`), the job outputs
(:mod:`srservice.reporting.outputs`) and the outbox (:mod:`srservice.delivery.outbox`):
write a temporary file in the target directory, ``fsync`` it, give it its final name in one
step (``rename``/``link``), then ``fsync`` the directory so the new name itself survives a
power loss (``fsync(2)``: "calling fsync() on a file does not necessarily ensure that the
entry in the directory containing the file has also reached disk").
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO


def fsync_dir(path: Path) -> None:
    """``fsync`` a directory so that a name created, renamed or removed in it is durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(fh: BinaryIO) -> None:
    """Flush Python's buffer of ``fh`` and ``fsync`` its data to the device."""
    fh.flush()
    os.fsync(fh.fileno())


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file, fsync, ``os.replace``, dir fsync.

    Parameters
    ----------
    path : pathlib.Path
        Final name (its directory is created when missing); an existing file is replaced.
    data : bytes
        The whole content.

    Raises
    ------
    OSError
        The directory or the file cannot be written (nothing partial is left behind).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fsync_file(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


#: File mode creation mask of the service processes: what they create (spool instances, the
#: job store, audit.log, outputs, the outbox) is 0640 for files and 0750 for directories,
#: never readable by other local users, since it holds patient data.
PRIVATE_UMASK = 0o027


def restrict_new_files() -> int:
    """Set :data:`PRIVATE_UMASK` for this process and its children; return the previous mask.

    Called first by ``srservice serve`` and ``srservice worker`` (``umask(2)``).
    """
    return os.umask(PRIVATE_UMASK)
