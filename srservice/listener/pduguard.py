"""Bounded PDU reads for the listener: a size cap and a deadline per PDU (PS3.8 Section 9.3).

pynetdicom's DUL reads a PDU by taking the 4-byte PDU Length from the 6-byte header and then
receiving that many bytes into memory, with a socket timeout that restarts with every byte.
A peer could therefore (a) announce a PDU of up to 4 GiB and make the listener buffer it
(finding R3 in ``docs/reliability.md``), or (b) keep an association slot forever by sending
one byte of a PDU every few seconds (finding R4). For the application entities registered
with :func:`guard_ae` this module replaces that read:

- **Size**: a P-DATA-TF PDU longer than the Maximum Length we announced (PS3.8 Annex D.1,
  ``max_pdu``; 6 bytes of slack for peers that count the PDU header) and any other PDU longer
  than :data:`MAX_CONTROL_PDU` is refused from its header, before any of its body is read.
- **Time**: a PDU must arrive completely within ``acse_timeout`` (while awaiting the
  A-ASSOCIATE-RQ) or ``network_timeout`` (afterwards), plus one second per
  :data:`MIN_PDU_RATE` bytes of its announced length, counted from its first byte; silence
  longer than ``network_timeout`` inside a PDU also ends it.

- **Association time limit**: an association (counted from its first byte) that is still
  sending PDUs after ``association_time_limit`` seconds is aborted at its next PDU (or inside
  the PDU it is sending), so a peer that trickles valid PDUs forever cannot keep a slot.

Either way the listener sends an A-ABORT (source: service provider, PS3.8 Table 9-26), closes
the connection and writes an ``association-aborted`` audit record. Other application entities
in the process keep pynetdicom's behaviour.

The replaced method and the DUL members used here are pynetdicom internals: pynetdicom is
pinned to the tested minor version and ``tests/listener/test_pynetdicom_internals.py`` checks
their shape.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

from pynetdicom import AE
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ

from srservice.errors import PduRefusedError
from srservice.listener.audit import AuditLog

LOGGER = logging.getLogger(__name__)

#: Largest A-ASSOCIATE / A-RELEASE / A-ABORT PDU accepted (bytes). A request proposing
#: 128 presentation contexts with 16 transfer syntaxes each is about 60 KiB.
MAX_CONTROL_PDU = 1024 * 1024
#: Slowest rate (bytes/s) allowed inside one PDU on top of the timeout.
MIN_PDU_RATE = 1024 * 1024
#: PDU types of PS3.8 Table 9-11 (A-ASSOCIATE-RQ 0x01 ... A-ABORT 0x07).
_PDU_TYPES = frozenset(range(0x01, 0x08))
_P_DATA_TF = 0x04
#: A-ABORT reason "invalid-PDU-parameter value" and "reason-not-specified" (PS3.8 Table 9-26).
_ABORT_INVALID_PARAMETER = 0x06
_ABORT_NOT_SPECIFIED = 0x00


@dataclass(frozen=True)
class PduLimits:
    """Limits for one application entity's associations.

    Attributes
    ----------
    max_pdata : int or None
        Largest accepted P-DATA-TF PDU length (the announced Maximum Length); None: no cap.
    acse_timeout, network_timeout : float
        Seconds for a PDU before / after the A-ASSOCIATE-RQ (see the module docstring).
    audit : AuditLog
        Where refusals are recorded.
    association_time_limit : float or None
        Seconds an association may last, from its first byte (None: no limit).
    """

    max_pdata: int | None
    acse_timeout: float
    network_timeout: float
    audit: AuditLog
    association_time_limit: float | None = None

    def max_length(self, pdu_type: int) -> int | None:
        """Largest PDU Length accepted for ``pdu_type`` (None: unlimited)."""
        if pdu_type != _P_DATA_TF:
            return MAX_CONTROL_PDU
        return None if self.max_pdata is None else self.max_pdata + 6


_LIMITS: weakref.WeakKeyDictionary[AE, PduLimits] = weakref.WeakKeyDictionary()
#: Monotonic time of each association's first PDU byte (for ``association_time_limit``).
_STARTED: weakref.WeakKeyDictionary[DULServiceProvider, float] = weakref.WeakKeyDictionary()
_ORIGINAL_READ: Any = DULServiceProvider.__dict__["_read_pdu_data"]
_LOCK = threading.Lock()


def guard_ae(ae: AE, limits: PduLimits) -> None:
    """Apply ``limits`` to every association of ``ae`` (installs the hook once)."""
    with _LOCK:
        _LIMITS[ae] = limits
        if DULServiceProvider.__dict__["_read_pdu_data"] is _ORIGINAL_READ:
            setattr(DULServiceProvider, "_read_pdu_data", _read_pdu_data)  # noqa: B010


def _read_pdu_data(dul: DULServiceProvider) -> None:
    """Stand-in for ``DULServiceProvider._read_pdu_data`` (same events, bounded)."""
    limits = _LIMITS.get(dul.assoc.ae)
    if limits is None:
        _ORIGINAL_READ(dul)
        return
    assoc_socket = dul.socket
    raw = assoc_socket.socket if assoc_socket is not None else None
    if assoc_socket is None or raw is None:
        dul.event_queue.put("Evt17")  # Evt17: transport connection closed
        return
    # Sta2 awaits the A-ASSOCIATE-RQ; Sta1 too while the connection event is still queued.
    awaiting_rq = dul.state_machine.current_state in ("Sta1", "Sta2")
    timeout = limits.acse_timeout if awaiting_rq else limits.network_timeout
    start = time.monotonic()
    with _LOCK:
        first = _STARTED.setdefault(dul, start)
    hard = (None if limits.association_time_limit is None
            else first + limits.association_time_limit)
    try:
        if hard is not None and start >= hard:
            raise PduRefusedError(_over_time(limits), _ABORT_NOT_SPECIFIED)
        header = _recv_exact(raw, 6, start + timeout, hard, limits)
        if len(header) < 6:
            dul.event_queue.put("Evt17")
            return
        pdu_type, _, length = struct.unpack(">BBL", header)
        if pdu_type not in _PDU_TYPES:
            dul.event_queue.put("Evt19")  # Evt19: unrecognised PDU -> A-ABORT by the FSM
            return
        cap = limits.max_length(pdu_type)
        if cap is not None and length > cap:
            raise PduRefusedError(f"PDU type 0x{pdu_type:02X} announces {length} bytes, "
                                   f"more than the {cap} accepted", _ABORT_INVALID_PARAMETER)
        body = _recv_exact(raw, length, start + timeout + length / MIN_PDU_RATE, hard, limits)
    except PduRefusedError as exc:
        _abort(dul, limits, str(exc), exc.diagnostic)
        return
    except OSError as exc:  # reset by the peer, TLS errors
        LOGGER.info("connection lost while reading a PDU: %s", exc)
        dul.event_queue.put("Evt17")
        return
    if len(body) != length:
        dul.event_queue.put("Evt17")  # peer closed inside the PDU
        return
    try:
        pdu, event = dul._decode_pdu(bytearray(header) + body)
    except Exception:  # as pynetdicom: any decoding failure is an invalid PDU (Evt19)
        LOGGER.exception("unable to decode the received PDU")
        dul.event_queue.put("Evt19")
        return
    dul.event_queue.put(event)
    dul._recv_pdu.put(pdu)


def _over_time(limits: PduLimits) -> str:
    return (f"association time limit reached ({limits.association_time_limit:g} s, "
            "association_time_limit)")


def _recv_exact(raw: socket.socket, count: int, deadline: float, hard: float | None = None,
                limits: PduLimits | None = None) -> bytearray:
    """Receive ``count`` bytes by ``deadline`` (monotonic); fewer only if the peer closed.

    ``hard`` is the association's time limit (monotonic), reported as such when it comes
    first.
    """
    data = bytearray()
    idle = raw.gettimeout()
    if hard is not None and hard < deadline:
        deadline = hard
    else:
        hard = None
    try:
        while len(data) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if hard is not None and limits is not None:
                    raise PduRefusedError(_over_time(limits), _ABORT_NOT_SPECIFIED)
                raise PduRefusedError(f"PDU not complete within its deadline ({len(data)} "
                                       f"of {count} bytes)", _ABORT_NOT_SPECIFIED)
            raw.settimeout(remaining if idle is None else min(remaining, idle))
            try:
                chunk = raw.recv(min(count - len(data), 1 << 16))
            except TimeoutError as exc:
                if hard is not None and limits is not None and time.monotonic() >= hard:
                    raise PduRefusedError(_over_time(limits), _ABORT_NOT_SPECIFIED) from exc
                what = ("not complete within its deadline" if time.monotonic() >= deadline
                        else "silent for the network timeout")
                raise PduRefusedError(f"PDU {what} ({len(data)} of {count} bytes)",
                                       _ABORT_NOT_SPECIFIED) from exc
            if not chunk:
                break
            data += chunk
    finally:
        with contextlib.suppress(OSError):  # already closed
            raw.settimeout(idle)
    return data


def _abort(dul: DULServiceProvider, limits: PduLimits, reason: str, diagnostic: int) -> None:
    """Send an A-ABORT (service provider), close the connection, audit it."""
    assoc_socket = dul.socket
    raw = assoc_socket.socket if assoc_socket is not None else None
    host = ""
    if raw is not None:
        try:
            host = str(raw.getpeername()[0])
            pdu = A_ABORT_RQ()
            pdu.source = 0x02
            pdu.reason_diagnostic = diagnostic
            raw.settimeout(1.0)
            raw.sendall(pdu.encode())
        except OSError:
            pass  # the peer may already be gone; closing is what matters
    LOGGER.warning("aborting association from %s: %s", host or "?", reason)
    limits.audit.event("association-aborted", peer_host=host, reason=reason,
                       source=0x02, diagnostic=diagnostic)
    if assoc_socket is not None:
        assoc_socket.close()  # queues Evt17: the state machine ends the association
    else:
        dul.event_queue.put("Evt17")
