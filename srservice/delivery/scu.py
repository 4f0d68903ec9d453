"""DICOM SCU: C-ECHO and C-STORE of the reports to one destination (pynetdicom).

Verification (PS3.4 Annex A) and Storage (PS3.4 Annex B) as Service Class User, optionally
over DICOM TLS (PS3.15 Annex B.1, context from :func:`srservice.tlsconfig.client_context`).
Each dataset's C-STORE status is checked on its own: Success (0x0000) and the Warning
statuses 0xB000, 0xB006, 0xB007 (PS3.4 Table B.2-1) count as stored; anything else, an
association that is rejected or aborted, or no response raises
:class:`srservice.errors.DeliveryError` (retried with backoff, :mod:`srservice.delivery.attempt`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE

from srservice import sopclasses
from srservice.config import Destination, Settings
from srservice.errors import ConfigError, DeliveryError

LOGGER = logging.getLogger(__name__)

#: C-STORE statuses meaning "stored" (PS3.4 Table B.2-1: Success and the Warning statuses).
STORED_STATUSES = frozenset({0x0000, 0xB000, 0xB006, 0xB007})


def parse_destination(text: str) -> Destination:
    """Parse ``AE@host:port[+tls]``; raise :class:`ConfigError` with the reason."""
    try:
        return Destination.parse(text)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def make_ae(settings: Settings) -> AE:
    """Return an AE with our AE title and the configured ACSE/DIMSE/network time-outs."""
    ae = AE(ae_title=settings.ae_title)
    ae.acse_timeout = settings.acse_timeout
    ae.dimse_timeout = settings.dimse_timeout
    ae.network_timeout = settings.network_timeout
    return ae


def associate(ae: AE, dest: Destination, settings: Settings,
              error: type[DeliveryError] = DeliveryError, **kwargs: Any) -> Any:
    """Associate with ``dest`` (over TLS when it says ``+tls``).

    ``kwargs`` go to :meth:`pynetdicom.ae.ApplicationEntity.associate` (``ext_neg``,
    ``evt_handlers``).

    Raises
    ------
    DeliveryError
        (or ``error``) the connection failed or the association was rejected or aborted.
    """
    tls_args = None
    if dest.tls:
        from srservice.tlsconfig import client_context

        tls_args = (client_context(settings), dest.host)
    try:
        assoc = ae.associate(dest.host, dest.port, ae_title=dest.ae_title, tls_args=tls_args,
                             **kwargs)
    except (OSError, ValueError) as exc:
        raise error(f"{dest}: cannot connect: {exc}") from exc
    if not assoc.is_established:
        what = "rejected" if assoc.is_rejected else "aborted" if assoc.is_aborted else "failed"
        raise error(f"{dest}: association {what}")
    return assoc


def c_echo(dest: Destination, settings: Settings) -> int:
    """Send a C-ECHO to ``dest`` and return its status (0x0000 = Success).

    Raises
    ------
    DeliveryError
        The association could not be established or no response came back.
    """
    ae = make_ae(settings)
    ae.add_requested_context(sopclasses.VERIFICATION)
    assoc = associate(ae, dest, settings)
    try:
        status = assoc.send_c_echo()
    finally:
        assoc.release()
    if not status or "Status" not in status:
        raise DeliveryError(f"{dest}: no C-ECHO response")
    return int(status.Status)


def c_store(dest: Destination, datasets: Sequence[Dataset], settings: Settings) -> None:
    """C-STORE every dataset to ``dest`` in one association and check each status.

    Raises
    ------
    DeliveryError
        Connection or association failure, missing response, or a failure status (the
        message names the SOP Instance UID's dataset index and the status, never PHI).
    """
    ae = make_ae(settings)
    for ds in datasets:
        syntaxes = [str(ds.file_meta.TransferSyntaxUID)] if "file_meta" in ds.__dict__ and \
            "TransferSyntaxUID" in ds.file_meta else []
        for ts in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
            if ts not in syntaxes:
                syntaxes.append(ts)
        ae.add_requested_context(str(ds.SOPClassUID), syntaxes)
    assoc = associate(ae, dest, settings)
    try:
        for index, ds in enumerate(datasets):
            try:
                status = assoc.send_c_store(ds)
            except (ValueError, RuntimeError) as exc:
                raise DeliveryError(f"{dest}: dataset {index} not sent: {exc}") from exc
            if not status or "Status" not in status:
                raise DeliveryError(f"{dest}: no C-STORE response for dataset {index} "
                                    "(association aborted or timed out)")
            code = int(status.Status)
            if code not in STORED_STATUSES:
                raise DeliveryError(f"{dest}: C-STORE of dataset {index} failed with status "
                                    f"0x{code:04X}")
            LOGGER.info("stored %s on %s (status 0x%04X)", ds.SOPInstanceUID, dest, code)
    finally:
        if assoc.is_established:
            assoc.release()
