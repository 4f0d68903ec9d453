"""Retrieve a series from the source PACS so it flows through the normal pipeline.

C-MOVE (the default, PS3.4 C.4.2): the PACS sends the series to our own AE title
(``SRSERVICE_AE_TITLE``), i.e. to the listener of the running ``srservice serve``, exactly as
if it had been routed to us; the PACS must know our AE title's host and port.

C-GET (a source marked ``+get``, PS3.4 C.4.3): the instances come back on the backfill's own
association; each is written to the spool (:meth:`srservice.listener.spool.Spool.add`, the
listener's checks and durable write) and recorded by the listener's own callback
(:func:`srservice.jobs.intake.make_on_stored`), so it becomes a job like any received
instance. The C-STORE sub-operation is answered only after that, with the listener's statuses
(:func:`srservice.errors.dimse_status_for`). Each instance is held in memory once (pynetdicom
decodes it); C-GET suits pullbacks of ordinary size.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from srservice.config import Settings, Source
from srservice.delivery import query
from srservice.errors import dimse_status_for, reason_for
from srservice.jobs.store import JobStore
from srservice.listener.spool import Spool, StoredInstance

LOGGER = logging.getLogger(__name__)


class Retriever:
    """Retrieves series from one source (C-MOVE to us, or C-GET into the spool)."""

    def __init__(self, settings: Settings, source: Source, store: JobStore,
                 on_stored: Callable[[StoredInstance], None] | None = None) -> None:
        self.settings, self.source, self.store = settings, source, store
        self._on_stored = on_stored
        self._spool: Spool | None = None

    def retrieve(self, study_uid: str, series_uid: str) -> query.RetrieveResult:
        """Retrieve one series.

        Raises
        ------
        RetrieveError
            Refused, failed, timed out, or nothing stored.
        """
        keys = query.identifier("SERIES", StudyInstanceUID=study_uid,
                                SeriesInstanceUID=series_uid)
        if not self.source.use_get:
            return query.move(self.source, self.settings, keys, self.settings.ae_title)
        if self._spool is None:
            self._spool = Spool(self.settings.spool_dir, self.settings.min_free_disk_mb)
            for directory in (self._spool.root, self._spool.tmp_dir):
                directory.mkdir(parents=True, exist_ok=True)
            if self._on_stored is None:
                from srservice.jobs.dispatch import Dispatcher
                from srservice.jobs.intake import make_on_stored

                self._on_stored = make_on_stored(self.settings, self.store,
                                                 Dispatcher(self.settings))
        return query.get(self.source, self.settings, keys, self._store_one)

    def _store_one(self, event: Any) -> int:
        """C-STORE sub-operation of a C-GET: spool it durably, record it, then answer."""
        assert self._spool is not None and self._on_stored is not None
        incoming = self.settings.data_dir / "backfill" / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkstemp(dir=incoming, suffix=".dcm")[1])
        try:
            tmp.write_bytes(event.encoded_dataset(include_meta=True))
            stored = self._spool.add(
                tmp, sop_class_uid=str(event.request.AffectedSOPClassUID),
                sop_instance_uid=str(event.request.AffectedSOPInstanceUID),
                transfer_syntax_uid=str(event.context.transfer_syntax),
                calling_ae=self.source.ae_title, called_ae=self.settings.ae_title,
                peer_host=self.source.host)
            self._on_stored(stored)
        except Exception as exc:  # the sub-operation's status; the PACS reports it as failed
            status = dimse_status_for(exc)
            LOGGER.warning("C-GET sub-operation from %s refused with 0x%04X: %s", self.source,
                           status, reason_for(exc))
            return status
        finally:
            tmp.unlink(missing_ok=True)
        return 0x0000
