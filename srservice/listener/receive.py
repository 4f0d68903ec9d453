"""Chunked receive of C-STORE data sets into the spool's ``incoming`` directory.

pynetdicom writes a data set it receives to a temporary file when
``_config.STORE_RECV_CHUNKED_DATASET`` is set, so memory stays bounded whatever the
instance's size; the file comes from ``tempfile.NamedTemporaryFile`` as imported by
:mod:`pynetdicom.dimse_messages`. That name is replaced here (once, for the whole process) by
a factory that, for an application entity registered with :func:`receive_into`, returns a
:class:`ReceiveFile` in the spool's own filesystem, so the spool can publish it without a copy
across filesystems; other application entities get pynetdicom's file. :func:`received_file`
and :func:`partial_file` read which file a request or an interrupted association used.

This module, :mod:`srservice.listener.pduguard` and :func:`srservice.listener.scp.start_scp`
are the only places that use pynetdicom internals; ``tests/listener/test_pynetdicom_internals.py``
fails loudly when one of them changes shape, and ``pyproject.toml`` pins pynetdicom to the
tested minor version.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Any

from pynetdicom import AE, _config, dimse_messages
from pynetdicom.dul import DULServiceProvider

from srservice.listener.spool import Spool

LOGGER = logging.getLogger(__name__)

_SPOOLS: weakref.WeakKeyDictionary[AE, Spool] = weakref.WeakKeyDictionary()
_ORIGINAL_TEMPFILE: Any = getattr(dimse_messages, "NamedTemporaryFile")  # noqa: B009
_HOOK_LOCK = threading.Lock()


class ReceiveFile:
    """File object pynetdicom writes a C-STORE data set into (``STORE_RECV_CHUNKED_DATASET``).

    Lives in ``<spool>/incoming``. A write error (disk full) is remembered instead of raised,
    the partial file is truncated to free the space, and the store handler answers 0xA700;
    pynetdicom would otherwise abort the association without a status.
    """

    def __init__(self, directory: Path) -> None:
        fd, name = tempfile.mkstemp(dir=directory, suffix=".dcm")
        self._fd: int | None = fd
        self.name = name
        self.file = self  # pynetdicom calls ``.file.flush()``
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        """Append ``data`` (all of it) unless an earlier write failed."""
        if self._fd is not None and self.error is None:
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(self._fd, view):]
            except OSError as exc:
                self.error = exc
                try:
                    os.ftruncate(self._fd, 0)  # give the space back at once
                except OSError:
                    LOGGER.warning("cannot truncate partial receive file %s", self.name)
        return len(data)

    def flush(self) -> None:
        """Nothing to flush: writes are unbuffered."""

    def close(self) -> None:
        """Close the descriptor (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def discard(self) -> None:
        """Close and delete the file (an association ended mid-transfer)."""
        self.close()
        Path(self.name).unlink(missing_ok=True)


def _receive_file_factory(*args: Any, **kwargs: Any) -> Any:
    """Stand-in for ``NamedTemporaryFile`` in :mod:`pynetdicom.dimse_messages`.

    pynetdicom decodes P-DATA in the association's DUL thread; for our AEs the file goes to
    the spool's ``incoming`` directory, for any other AE the original behaviour is kept.
    """
    thread = threading.current_thread()
    assoc = thread.assoc if isinstance(thread, DULServiceProvider) else None
    spool = _SPOOLS.get(assoc.ae) if assoc is not None else None
    if spool is None:
        return _ORIGINAL_TEMPFILE(*args, **kwargs)
    return ReceiveFile(spool.incoming_dir)


def receive_into(ae: AE, spool: Spool) -> None:
    """Write the data sets ``ae`` receives into ``spool.incoming_dir``, chunk by chunk.

    Sets pynetdicom's process-wide ``STORE_RECV_CHUNKED_DATASET`` and
    ``UNRESTRICTED_STORAGE_SERVICE`` options (there is no per-AE switch) and installs the
    ``NamedTemporaryFile`` stand-in once; other AEs of the process keep pynetdicom's files.
    """
    with _HOOK_LOCK:
        _SPOOLS[ae] = spool
        _config.STORE_RECV_CHUNKED_DATASET = True
        _config.UNRESTRICTED_STORAGE_SERVICE = True
        setattr(dimse_messages, "NamedTemporaryFile", _receive_file_factory)  # noqa: B010


def received_file(request: Any) -> ReceiveFile | None:
    """Return the file a C-STORE request's data set was received into (None: not ours)."""
    received = getattr(request, "_dataset_file", None)
    return received if isinstance(received, ReceiveFile) else None


def partial_file(assoc: Any) -> ReceiveFile | None:
    """Return the file of a data set an association was still receiving (or None)."""
    message = getattr(assoc.dimse, "message", None)
    partial = getattr(message, "_data_set_file", None)
    return partial if isinstance(partial, ReceiveFile) else None


