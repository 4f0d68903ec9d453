"""The DICOM listener: Verification and Storage SCP (pynetdicom) writing to the durable spool.

Behaviour (details and status table in ``docs/conformance.md``):

- Association checks in ``EVT_REQUESTED`` (PS3.8 Section 7.1.1.9 / Table 9-21 reasons): called
  AE title (1-1-7 "called-AE-title-not-recognized"), calling AE allow-list with optional host
  (1-1-3 "calling-AE-title-not-recognized"); pynetdicom enforces ``max_associations``
  (2-3-2 "local-limit-exceeded").
- Storage: every storage SOP class is negotiated (pynetdicom's unrestricted storage
  service, which accepts the first transfer syntax proposed, so data is stored as received);
  :data:`srservice.sopclasses.ALWAYS_STORED` are always stored; the others follow
  ``non_ivus_policy``.
- The data set is received chunk by chunk to ``<spool>/incoming`` (bounded memory,
  :mod:`srservice.listener.receive`), checked (:mod:`srservice.listener.checks`), written as a
  Part 10 file and published atomically by :class:`srservice.listener.spool.Spool`, then
  ``on_stored`` runs, and only then is Success answered. No exception leaves the handler:
  each failure maps to its own status through :func:`srservice.errors.dimse_status_for`.
- Optional DICOM TLS (PS3.15 B.9); the TLS handshake runs in the connection's thread with the
  ACSE timeout so a silent client cannot block the accept loop. A refused handshake is audited
  with OpenSSL's reason and the subject, issuer and serial of the certificate the client
  presented (:func:`srservice.tlsconfig.refused_identity`).
- Every PDU is read with a size cap and a deadline (:mod:`srservice.listener.pduguard`): an
  oversized PDU or a peer dribbling a PDU is aborted before it can hold memory or a slot.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydicom import uid as tsuid
from pynetdicom import AE, evt
from pynetdicom.events import Event
from pynetdicom.transport import ThreadedAssociationServer

from srservice import sopclasses
from srservice.config import Settings
from srservice.dicomheader import ReadLimits
from srservice.errors import (
    OutOfResourcesError,
    SrServiceError,
    UnsupportedObjectError,
    dimse_status_for,
    reason_for,
)
from srservice.listener.audit import AuditLog
from srservice.listener.gate import ConnectionGate
from srservice.listener.pduguard import PduLimits, guard_ae
from srservice.listener.receive import partial_file, receive_into, received_file
from srservice.listener.spool import Spool, StoredInstance
from srservice.tlsconfig import (
    certificate_identity,
    describe_tls_error,
    refused_identity,
    server_context,
)

LOGGER = logging.getLogger(__name__)

OnStored = Callable[[StoredInstance], None]

#: Transfer syntaxes listed for the always-stored classes (PS3.5 Section 10 and Annex A).
#: With the unrestricted storage service pynetdicom accepts whichever one the sender proposes
#: first.
TRANSFER_SYNTAXES: tuple[str, ...] = (
    tsuid.ExplicitVRLittleEndian, tsuid.ImplicitVRLittleEndian,
    tsuid.DeflatedExplicitVRLittleEndian, tsuid.ExplicitVRBigEndian,
    tsuid.JPEGBaseline8Bit, tsuid.JPEGExtended12Bit, tsuid.JPEGLossless, tsuid.JPEGLosslessSV1,
    tsuid.JPEGLSLossless, tsuid.JPEGLSNearLossless, tsuid.JPEG2000Lossless, tsuid.JPEG2000,
    tsuid.RLELossless, tsuid.HTJ2KLossless, tsuid.HTJ2KLosslessRPCL, tsuid.HTJ2K,
)

# A-ASSOCIATE-RJ (result, source, reason), PS3.8 Table 9-21.
_RJ_CALLING_AE = (0x01, 0x01, 0x03)
_RJ_CALLED_AE = (0x01, 0x01, 0x07)
_RJ_LOCAL_LIMIT = (0x02, 0x03, 0x02)

# --- server with the TLS handshake off the accept loop -------------------------------------
class SrServer(ThreadedAssociationServer):
    """Association server: connection admission, TLS handshake in the connection's thread."""

    #: Listen backlog (socketserver's default is 5: a burst of connections would have their
    #: SYNs dropped and wait for TCP retransmission, legitimate senders included).
    request_queue_size = 256
    handshake_timeout: float = 30.0
    audit: AuditLog | None = None
    owns_audit: bool = False
    gate: ConnectionGate | None = None

    def shutdown(self) -> None:
        """Stop accepting, wait for the associations to end, close the audit file we opened."""
        super().shutdown()
        if self.audit is not None:
            self.audit.event("listener-stopped", port=int(self.server_address[1]))
            if self.owns_audit:
                self.audit.close()

    def get_request(self) -> tuple[Any, tuple[str, int]]:
        """Accept a connection; wrap it for TLS without handshaking yet."""
        assert self.socket is not None
        client, address = self.socket.accept()
        client.settimeout(self.ae.network_timeout)  # a peer silent mid-PDU is dropped
        if self.ssl_context is not None:
            client = self.ssl_context.wrap_socket(client, server_side=True,
                                                  do_handshake_on_connect=False)
        return client, address

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Admit the connection unless too many have not associated yet (closed at once)."""
        if self.gate is None:
            return True
        return self.gate.admit_connection(_key(client_address))

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Finish the TLS handshake (bounded by ``unassociated_timeout``), then serve."""
        if isinstance(request, ssl.SSLSocket):
            try:
                request.settimeout(self.handshake_timeout)
                request.do_handshake()
                request.settimeout(self.ae.network_timeout)
            except OSError as exc:  # ssl.SSLError and socket.timeout are OSErrors
                if self.audit is not None:
                    self.audit.event("association-rejected", peer_host=str(client_address[0]),
                                     peer_port=int(client_address[1]),
                                     reason=f"TLS handshake failed: {describe_tls_error(exc)}",
                                     **refused_identity(request))
                self.shutdown_request(request)
                if self.gate is not None:
                    self.gate.closed(_key(client_address))
                return
            if self.audit is not None:
                identity = certificate_identity(request.getpeercert())
                self.audit.event("tls-established", peer_host=str(client_address[0]),
                                 peer_port=int(client_address[1]), version=request.version(),
                                 cipher=(request.cipher() or ("",))[0], **identity)
        super().process_request_thread(request, client_address)


def _key(address: Any) -> tuple[str, int]:
    return str(address[0]), int(address[1])


# --- handlers --------------------------------------------------------------------------------
def _peer(event: Event) -> tuple[str, str, str]:
    """Return (calling AE, called AE, peer host) of an event's association."""
    assoc = event.assoc
    rq = assoc.requestor
    # The A-ASSOCIATE-RQ primitive holds both titles from EVT_REQUESTED on (the requestor's
    # ae_title attribute is only filled in during negotiation).
    prim = rq.primitive
    calling = str(prim.calling_ae_title) if prim is not None else rq.ae_title
    called = str(prim.called_ae_title) if prim is not None else ""
    try:
        host = rq.address
    except ValueError:
        host = ""
    return calling.strip(), called.strip(), host


def _assoc_key(assoc: Any) -> tuple[str, int]:
    """(peer address, peer port) of an acceptor association: the gate's key."""
    info = assoc.requestor.address_info
    return str(info.address), int(info.port)


def _shown_uid(value: object) -> str:
    text = str(value) if value is not None else ""
    return text if len(text) <= 80 else text[:77] + "..."


class Listener:
    """Event handlers of one listener; bound through ``evt_handlers``."""

    def __init__(self, settings: Settings, on_stored: OnStored, spool: Spool,
                 audit: AuditLog, gate: ConnectionGate | None = None) -> None:
        self.settings = settings
        self.on_stored = on_stored
        self.spool = spool
        self.audit = audit
        self.gate = gate

    def handlers(self) -> list[Any]:
        """Return the ``evt_handlers`` list for :meth:`pynetdicom.AE.start_server`."""
        return [
            (evt.EVT_CONN_OPEN, self.on_conn_open),
            (evt.EVT_REQUESTED, self.on_requested),
            (evt.EVT_ACCEPTED, self.on_accepted),
            (evt.EVT_REJECTED, self.on_rejected),
            (evt.EVT_RELEASED, self.on_released),
            (evt.EVT_ABORTED, self.on_aborted),
            (evt.EVT_CONN_CLOSE, self.on_conn_close),
            (evt.EVT_C_ECHO, self.on_echo),
            (evt.EVT_C_STORE, self.on_store),
        ]

    def _reject(self, event: Event, rsd: tuple[int, int, int], reason: str) -> None:
        calling, called, host = _peer(event)
        self.audit.event("association-rejected", calling_ae=calling, called_ae=called,
                         peer_host=host, reason=reason,
                         result=rsd[0], source=rsd[1], diagnostic=rsd[2])
        event.assoc.acse.send_reject(*rsd)
        # As pynetdicom's own rejection path: wait for the DUL to send the A-ASSOCIATE-RJ and
        # reach Sta1 before the association thread closes the socket.
        event.assoc.kill()

    def on_conn_open(self, event: Event) -> None:
        """Set the A-ASSOCIATE-RQ deadline; tell the gate which thread serves the connection.

        The acceptor's ARTIM timer (PS3.8 Section 9.1.5, started on the transport connection
        indication) runs for the association's ``acse_timeout``: an acceptor waits for no
        other ACSE reply, so lowering it to ``unassociated_timeout`` bounds only the wait for
        the A-ASSOCIATE-RQ (and for the peer closing after a release or abort).
        """
        event.assoc.acse_timeout = min(self.settings.acse_timeout,
                                       self.settings.unassociated_timeout)
        if self.gate is not None:
            self.gate.attach(_assoc_key(event.assoc), event.assoc)

    def on_requested(self, event: Event) -> None:
        """Check called AE, calling AE allow-list, TLS binding and the association limit.

        PS3.8 7.1.1.9 / Table 9-21; the limit (2-3-2) counts only connections that sent an
        A-ASSOCIATE-RQ.
        """
        calling, called, host = _peer(event)
        self.audit.event("association-requested", calling_ae=calling, called_ae=called,
                         peer_host=host)
        if self.settings.require_called_ae and called != self.settings.ae_title:
            self._reject(event, _RJ_CALLED_AE, "called AE title not recognised")
            return
        peers = self.settings.allowed_calling_aes
        if peers and not any(p.allows(calling, host) for p in peers):
            self._reject(event, _RJ_CALLING_AE, "calling AE title/host not in allow-list")
            return
        bindings = self.settings.tls_ae_bindings
        tls_socket = getattr(event.assoc.dul.socket, "socket", None)
        if bindings and isinstance(tls_socket, ssl.SSLSocket):
            identity = certificate_identity(tls_socket.getpeercert())
            names = str(identity.get("identities", "")).split(",")
            if not any(b.allows(calling, names) for b in bindings):
                self._reject(event, _RJ_CALLING_AE,
                             f"calling AE title not bound to the client certificate "
                             f"(subject {identity.get('subject', '')!s})")
                return
        if self.gate is not None and not self.gate.admit_association(_assoc_key(event.assoc)):
            self._reject(event, _RJ_LOCAL_LIMIT, "maximum associations reached")

    def on_rejected(self, event: Event) -> None:
        """Audit rejections made by pynetdicom itself (e.g. association limit)."""
        calling, called, host = _peer(event)
        prim = event.assoc.acceptor.primitive
        result = getattr(prim, "result", None)
        source = getattr(prim, "result_source", None)
        diagnostic = getattr(prim, "diagnostic", None)
        reason = ("maximum associations reached"
                  if (result, source, diagnostic) == (2, 3, 2) else "rejected by pynetdicom")
        self.audit.event("association-rejected", calling_ae=calling, called_ae=called,
                         peer_host=host, reason=reason, result=result, source=source,
                         diagnostic=diagnostic)

    def on_accepted(self, event: Event) -> None:
        """Audit an accepted association."""
        calling, called, host = _peer(event)
        self.audit.event("association-accepted", calling_ae=calling, called_ae=called,
                         peer_host=host, contexts=len(event.assoc.accepted_contexts),
                         tls=isinstance(getattr(event.assoc.dul.socket, "socket", None),
                                        ssl.SSLSocket))

    def on_released(self, event: Event) -> None:
        """Audit a released association."""
        calling, _, host = _peer(event)
        self.audit.event("association-released", calling_ae=calling, peer_host=host)

    def on_aborted(self, event: Event) -> None:
        """Audit an aborted association."""
        calling, _, host = _peer(event)
        self.audit.event("association-aborted", calling_ae=calling, peer_host=host)

    def on_conn_close(self, event: Event) -> None:
        """Delete a data set file left half-received by a dropped connection; audit the close."""
        if self.gate is not None:
            self.gate.closed(_assoc_key(event.assoc))
        partial = partial_file(event.assoc)
        if partial is not None:
            LOGGER.info("connection closed mid-transfer; discarding partial data set")
            partial.discard()

    def on_echo(self, event: Event) -> int:
        """C-ECHO: Success (PS3.7 9.3.5)."""
        return 0x0000

    def on_store(self, event: Event) -> int:
        """C-STORE: store durably, call ``on_stored``, return the status; never raises."""
        calling, called, host = _peer(event)
        req: Any = event.request
        sop_class = str(req.AffectedSOPClassUID or "")
        sop_instance = str(req.AffectedSOPInstanceUID or "")
        fields: dict[str, str | int | None] = {
            "calling_ae": calling, "peer_host": host,
            "sop_class_uid": _shown_uid(sop_class), "sop_instance_uid": _shown_uid(sop_instance),
            "transfer_syntax_uid": str(event.context.transfer_syntax),
        }
        try:
            instance = self._store(event, sop_class, sop_instance, calling, called, host)
        except Exception as exc:  # every failure becomes a DIMSE status, never 0xC001
            status = dimse_status_for(exc)
            if not isinstance(exc, SrServiceError | OSError):
                LOGGER.exception("unexpected error while storing")
            self.audit.event("instance-refused", **fields, status=f"0x{status:04X}",
                             reason=reason_for(exc))
            return status
        if instance is None:
            self.audit.event("instance-discarded", **fields, status="0x0000",
                             reason="non_ivus_policy=discard")
            return 0x0000
        fields.update(study_instance_uid=instance.study_instance_uid,
                      series_instance_uid=instance.series_instance_uid, size=instance.size,
                      sha256=instance.sha256, path=instance.path.name)
        try:
            self.on_stored(instance)
        except Exception as exc:  # the file stays; the sender retries, storing is idempotent
            status = dimse_status_for(exc)
            if not isinstance(exc, SrServiceError):
                LOGGER.exception("on_stored failed")
            self.audit.event("instance-stored", **fields, status=f"0x{status:04X}",
                             reason=f"recording failed: {reason_for(exc)}")
            return status
        self.audit.event("instance-stored", **fields, status="0x0000")
        return 0x0000

    def _store(self, event: Event, sop_class: str, sop_instance: str, calling: str,
               called: str, host: str) -> StoredInstance | None:
        if sop_class not in sopclasses.ALWAYS_STORED:
            policy = self.settings.non_ivus_policy
            if policy == "reject":
                raise UnsupportedObjectError(f"SOP Class {_shown_uid(sop_class)} is not "
                                             "accepted (non_ivus_policy=reject)")
            if policy == "discard":
                return None
        received = received_file(event.request)
        if received is not None and received.error is not None:
            raise OutOfResourcesError(f"receiving failed: {received.error.strerror}")
        return self.spool.add(
            event.dataset_path, sop_class_uid=sop_class, sop_instance_uid=sop_instance,
            transfer_syntax_uid=str(event.context.transfer_syntax), calling_ae=calling,
            called_ae=called, peer_host=host,
        )


def build_ae(settings: Settings) -> AE:
    """Return the configured (not yet listening) application entity.

    Parameters
    ----------
    settings : Settings
        ``ae_title``, ``max_associations``, ``acse_timeout``, ``dimse_timeout``,
        ``network_timeout`` and ``max_pdu`` are applied.
    """
    ae = AE(ae_title=settings.ae_title)
    ae.maximum_associations = settings.max_associations
    ae.acse_timeout = settings.acse_timeout
    ae.dimse_timeout = settings.dimse_timeout
    ae.network_timeout = settings.network_timeout
    ae.maximum_pdu_size = settings.max_pdu
    ae.require_called_aet = False  # checked in Listener.on_requested, with an audit record
    ae.add_supported_context(sopclasses.VERIFICATION)
    for sop_class in sorted(sopclasses.ALWAYS_STORED):
        ae.add_supported_context(sop_class, list(TRANSFER_SYNTAXES))
    return ae


def start_scp(settings: Settings, on_stored: OnStored, *,
              audit: AuditLog | None = None) -> SrServer:
    """Start the listener in background threads and return the server.

    Parameters
    ----------
    settings : Settings
        Listener settings (``host``, ``port`` (0 picks a free port), AE title, policies,
        limits, timeouts, TLS, ``spool_dir``, ``min_free_disk_mb``).
    on_stored : callable
        Called with each :class:`~srservice.listener.spool.StoredInstance` after it is
        durable and
        before the response; an exception becomes the C-STORE status
        (:func:`srservice.errors.dimse_status_for`).
    audit : AuditLog, optional
        Audit trail; default ``AuditLog.for_settings(settings)`` (``<data_dir>/audit.log``).

    Returns
    -------
    SrServer
        A :class:`pynetdicom.transport.ThreadedAssociationServer`;
        ``server.server_address`` holds the bound address and port; stop with
        ``server.shutdown()``.

    Notes
    -----
    Sets pynetdicom's process-wide chunked-receive options
    (:func:`srservice.listener.receive.receive_into`) and hooks the DUL's PDU read
    (:func:`srservice.listener.pduguard.guard_ae`, only for this AE).
    """
    spool = Spool(settings.spool_dir, settings.min_free_disk_mb,
                  ReadLimits.from_settings(settings))
    spool.prepare()
    owns_audit = audit is None
    audit = audit if audit is not None else AuditLog.for_settings(settings)
    ssl_context = server_context(settings)
    ae = build_ae(settings)
    receive_into(ae, spool)
    guard_ae(ae, PduLimits(max_pdata=settings.max_pdu or None,
                           acse_timeout=min(settings.acse_timeout,
                                            settings.unassociated_timeout),
                           network_timeout=settings.network_timeout,
                           association_time_limit=settings.association_time_limit,
                           audit=audit))
    handshake_timeout = min(settings.acse_timeout, settings.unassociated_timeout)
    gate = ConnectionGate(audit, max_unassociated=settings.max_unassociated_connections,
                          max_unassociated_per_host=settings.max_unassociated_per_host,
                          max_associations=settings.max_associations,
                          handshake_timeout=handshake_timeout)
    # pynetdicom counts every acceptor thread, associated or not, against its own limit;
    # the gate counts the two kinds apart, so pynetdicom's check must only catch what slips
    # between them (connections closing while new ones arrive).
    ae.maximum_associations = (settings.max_associations
                               + settings.max_unassociated_connections + 16)
    listener = Listener(settings, on_stored, spool, audit, gate)
    server = ae.make_server((settings.host, settings.port), ssl_context=ssl_context,
                            evt_handlers=listener.handlers(), server_class=SrServer)
    assert isinstance(server, SrServer)
    server.handshake_timeout = handshake_timeout
    server.audit = audit
    server.gate = gate
    server.owns_audit = owns_audit
    # As AE.start_server(block=False) does, with our server class.
    stamp = datetime.now().strftime("%Y%m%d%H%M%S")
    threading.Thread(target=server.serve_forever, name=f"SrServiceSCP@{stamp}",
                     daemon=True).start()
    ae._servers.append(server)  # as start_server does, so AE.shutdown() stops it too
    address = server.server_address
    audit.event("listener-started", called_ae=settings.ae_title, host=str(address[0]),
                port=int(address[1]), tls=ssl_context is not None,
                non_ivus_policy=settings.non_ivus_policy)
    return server


def main() -> int:
    """Run a bare listener (no job store): ``python -m srservice.listener.scp``.

    For tests and diagnostics: settings come from ``SRSERVICE_*`` variables, stored
    instances are only logged, and ``LISTENING <port>`` is printed once the port is bound.
    ``srservice serve`` is the real entry point (it records instances and starts jobs).
    """
    import signal
    import sys

    from srservice.config import load_settings

    settings = load_settings()
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def log_stored(instance: StoredInstance) -> None:
        LOGGER.info("stored %s (%d bytes)", instance.path.name, instance.size)

    server = start_scp(settings, log_stored)
    print(f"LISTENING {server.server_address[1]}", flush=True)
    sys.stdout.flush()
    stop.wait()
    server.shutdown()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
