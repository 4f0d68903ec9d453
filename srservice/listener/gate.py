"""Admission of TCP connections that have not yet sent an A-ASSOCIATE-RQ.

A connection holds a thread (and, in pynetdicom, counts against the association limit) from
the moment it is accepted. Connections that never associate are therefore counted apart from
associations and limited per source address and in total (:class:`ConnectionGate`); over a
limit the connection is closed at once, before a thread is started. A connection stops being
*unassociated* when its A-ASSOCIATE-RQ has been received (PS3.8 Section 9.3.2), i.e. in
``EVT_REQUESTED``; the association limit (``max_associations``) counts only those.

The deadline for the A-ASSOCIATE-RQ (``unassociated_timeout``, from the TCP connection, TLS
handshake included) is enforced by :mod:`srservice.listener.pduguard` and the TLS handshake
in :class:`srservice.listener.scp.SrServer`; the gate only forgets entries whose association
thread has ended, so a path that ends a connection without telling the gate cannot leak a
slot.

Every connection is audited: ``connection-opened`` / ``connection-refused`` /
``connection-closed`` with the peer address and port.
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from srservice.listener.audit import AuditLog

#: Seconds an entry may stay without an association thread (between accept and the start of
#: the thread, or during the TLS handshake) on top of the handshake timeout.
_GRACE_S = 5.0

Key = tuple[str, int]


@dataclass
class _Entry:
    opened: float
    assoc: weakref.ReferenceType[Any] | None = None
    associated: bool = False
    closed: bool = field(default=False)


class ConnectionGate:
    """Count and limit connections per state; thread safe.

    Parameters
    ----------
    audit : AuditLog
        Where ``connection-*`` events go.
    max_unassociated : int
        Connections without an A-ASSOCIATE-RQ yet, in total.
    max_unassociated_per_host : int
        The same, per source address.
    max_associations : int
        Associations (A-ASSOCIATE-RQ received, not yet ended); checked by
        :meth:`admit_association`.
    handshake_timeout : float
        Seconds a connection may stay before its association thread exists (TLS handshake).
    """

    def __init__(self, audit: AuditLog, *, max_unassociated: int,
                 max_unassociated_per_host: int, max_associations: int,
                 handshake_timeout: float) -> None:
        self.audit = audit
        self.max_unassociated = max_unassociated
        self.max_unassociated_per_host = max_unassociated_per_host
        self.max_associations = max_associations
        self.handshake_timeout = handshake_timeout
        self._entries: dict[Key, _Entry] = {}
        self._lock = threading.Lock()

    # --- bookkeeping -----------------------------------------------------------------------
    def _alive(self, entry: _Entry, now: float) -> bool:
        if entry.closed:
            return False
        if entry.assoc is None:
            return now - entry.opened < self.handshake_timeout + _GRACE_S
        assoc = entry.assoc()
        # A thread not started yet (attached in EVT_CONN_OPEN, just before start()) is alive.
        return assoc is not None and (assoc.ident is None or bool(assoc.is_alive()))

    def _prune(self, now: float) -> list[tuple[Key, _Entry]]:
        gone = [(k, e) for k, e in self._entries.items() if not self._alive(e, now)]
        for key, _ in gone:
            del self._entries[key]
        return gone

    def _audit_closed(self, key: Key, entry: _Entry, now: float) -> None:
        self.audit.event("connection-closed", peer_host=key[0], peer_port=key[1],
                         associated=entry.associated, seconds=round(now - entry.opened, 3))

    def counts(self, host: str | None = None) -> tuple[int, int]:
        """Return (unassociated connections [from ``host``], associations) now."""
        now = time.monotonic()
        with self._lock:
            gone = self._prune(now)
            pending = [k for k, e in self._entries.items() if not e.associated
                       and (host is None or k[0] == host)]
            associated = sum(1 for e in self._entries.values() if e.associated)
        for key, entry in gone:
            self._audit_closed(key, entry, now)
        return len(pending), associated

    # --- the connection's life ----------------------------------------------------------------
    def admit_connection(self, key: Key) -> bool:
        """Count a newly accepted connection; False (and audited) when over a limit."""
        now = time.monotonic()
        reason = ""
        with self._lock:
            gone = self._prune(now)
            pending = [k for k, e in self._entries.items() if not e.associated]
            from_host = sum(1 for k in pending if k[0] == key[0])
            if len(pending) >= self.max_unassociated:
                reason = (f"{len(pending)} connections without A-ASSOCIATE-RQ "
                          f"(max_unassociated_connections {self.max_unassociated})")
            elif from_host >= self.max_unassociated_per_host:
                reason = (f"{from_host} connections without A-ASSOCIATE-RQ from this address "
                          f"(max_unassociated_per_host {self.max_unassociated_per_host})")
            else:
                self._entries[key] = _Entry(opened=now)
        for old_key, entry in gone:
            self._audit_closed(old_key, entry, now)
        if reason:
            self.audit.event("connection-refused", peer_host=key[0], peer_port=key[1],
                             reason=reason)
            return False
        self.audit.event("connection-opened", peer_host=key[0], peer_port=key[1])
        return True

    def attach(self, key: Key, assoc: Any) -> None:
        """Remember the association thread serving ``key`` (``EVT_CONN_OPEN``)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.assoc = weakref.ref(assoc)

    def admit_association(self, key: Key) -> bool:
        """Move ``key`` to the associations (A-ASSOCIATE-RQ received).

        Returns False when ``max_associations`` are already open (PS3.8 Table 9-21
        2-3-2 "local-limit-exceeded"); the connection then stays unassociated until it closes.
        """
        now = time.monotonic()
        with self._lock:
            gone = self._prune(now)
            associated = sum(1 for e in self._entries.values() if e.associated)
            entry = self._entries.get(key)
            admitted = associated < self.max_associations
            if admitted:
                if entry is None:  # opened before the gate existed: count it anyway
                    entry = self._entries[key] = _Entry(opened=now)
                entry.associated = True
        for old_key, old in gone:
            self._audit_closed(old_key, old, now)
        return admitted

    def closed(self, key: Key) -> None:
        """Forget a connection that ended (``EVT_CONN_CLOSE`` or a failed TLS handshake)."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                entry.closed = True
        if entry is not None:
            self._audit_closed(key, entry, now)
