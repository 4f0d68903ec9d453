"""Structured audit log of the DICOM listener: who connected, from where, what was stored.

One JSON object per line, written to the ``srservice.audit`` logger and, optionally, appended
to ``<data_dir>/audit.log``. The fields follow the spirit of the DICOM audit trail (PS3.15
Annex A.5: "Association" / "DICOM Instances Transferred" events: who, from where, which
UIDs, outcome) without the RFC 3881 XML. Only technical identifiers are recorded (AE titles,
addresses, UIDs, sizes, hashes, statuses); patient names and IDs are never logged: callers
pass explicit keyword fields and :meth:`AuditLog.event` refuses keys that name patient data.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from srservice.config import Settings

#: The logger every audit record goes to (INFO level).
LOGGER = logging.getLogger("srservice.audit")

#: Field names that could carry protected health information; refused by :meth:`AuditLog.event`.
_FORBIDDEN = ("patient", "name", "birth", "accession", "otherpatient")

AuditValue = str | int | float | bool | None


class AuditLog:
    """Append-only JSON-lines audit trail, thread safe.

    Parameters
    ----------
    path : pathlib.Path or None
        File to append to (parent created); ``None`` logs to the logger only.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fh: TextIO | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = path.open("a", encoding="utf-8")

    @classmethod
    def for_settings(cls, settings: Settings) -> AuditLog:
        """Return the audit log of a deployment: ``<data_dir>/audit.log``."""
        return cls(settings.data_dir / "audit.log")

    def event(self, event: str, **fields: AuditValue) -> dict[str, AuditValue]:
        """Record one audit event and return the record written.

        Parameters
        ----------
        event : str
            Event name, e.g. ``association-rejected`` or ``instance-stored``.
        **fields
            Scalar fields (AE titles, addresses, UIDs, sizes, statuses).

        Returns
        -------
        dict
            The record as written (``time`` in UTC ISO 8601 and ``event`` first).

        Raises
        ------
        ValueError
            When a field name looks like patient data (a programming error, never input).
        """
        for key in fields:
            if any(word in key.lower() for word in _FORBIDDEN) and not key.endswith("_ae"):
                raise ValueError(f"audit field {key!r} may carry patient data")
        record: dict[str, AuditValue] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "event": event,
            **fields,
        }
        line = json.dumps(record, ensure_ascii=True, separators=(",", ":"))
        LOGGER.info(line)
        if self._fh is not None:
            with self._lock:
                self._fh.write(line + "\n")
                self._fh.flush()
        return record

    def close(self) -> None:
        """Close the file (further events go to the logger only)."""
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
