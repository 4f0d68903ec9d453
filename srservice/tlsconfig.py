"""TLS contexts for DICOM over TLS (PS3.15 Annex B.9, BCP 195 Secure Transport Connection Profile).

TLS 1.2 is the minimum version (BCP 195 / RFC 9325); Python's default cipher selection for
``PROTOCOL_TLS_SERVER`` / ``PROTOCOL_TLS_CLIENT`` is used. When ``tls_ca_certificates`` is set
the listener requires and verifies a client certificate (mutual authentication, PS3.15 B.9).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from srservice.config import Settings
from srservice.errors import ConfigError


def _load_chain(ctx: ssl.SSLContext, certificate: Path, private_key: Path) -> None:
    try:
        ctx.load_cert_chain(certfile=str(certificate), keyfile=str(private_key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"SRSERVICE_TLS_CERTIFICATE/SRSERVICE_TLS_PRIVATE_KEY: cannot load "
                          f"{certificate} / {private_key}: {exc}") from exc


def _load_ca(ctx: ssl.SSLContext, ca: Path) -> None:
    try:
        ctx.load_verify_locations(cafile=str(ca))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"SRSERVICE_TLS_CA_CERTIFICATES: cannot load {ca}: {exc}") from exc


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """Return the listener's TLS context, or None when TLS is off (no certificate set).

    Parameters
    ----------
    settings : Settings
        Uses ``tls_certificate``, ``tls_private_key`` and ``tls_ca_certificates``.

    Returns
    -------
    ssl.SSLContext or None
        Server-side context; ``verify_mode`` is ``CERT_REQUIRED`` when a CA bundle is set.

    Raises
    ------
    ConfigError
        A file cannot be read or is not PEM (the message names the setting).
    """
    if settings.tls_certificate is None or settings.tls_private_key is None:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(ctx, settings.tls_certificate, settings.tls_private_key)
    if settings.tls_ca_certificates is not None:
        _load_ca(ctx, settings.tls_ca_certificates)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(settings: Settings, *, verify: bool = True) -> ssl.SSLContext:
    """Return a TLS client context for delivering to a ``+tls`` destination.

    Parameters
    ----------
    settings : Settings
        ``tls_ca_certificates`` (trusted CAs for the peer; system store when unset) and the
        ``tls_certificate``/``tls_private_key`` pair, presented as client certificate.
    verify : bool
        Verify the peer's certificate chain (host names are not checked: DICOM peers are
        configured by address, and PS3.15 B.9 leaves identity checks to the site).

    Returns
    -------
    ssl.SSLContext
        Client-side context, TLS 1.2 minimum.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    if verify:
        ctx.verify_mode = ssl.CERT_REQUIRED
        if settings.tls_ca_certificates is not None:
            _load_ca(ctx, settings.tls_ca_certificates)
        else:
            ctx.load_default_certs()
    else:
        ctx.verify_mode = ssl.CERT_NONE
    if settings.tls_certificate is not None and settings.tls_private_key is not None:
        _load_chain(ctx, settings.tls_certificate, settings.tls_private_key)
    return ctx
