"""TLS contexts for DICOM over TLS (PS3.15 Annex B.9, BCP 195 Secure Transport Connection Profile).

TLS 1.2 is the minimum version (BCP 195 / RFC 9325); Python's default cipher selection for
``PROTOCOL_TLS_SERVER`` / ``PROTOCOL_TLS_CLIENT`` is used. When ``tls_ca_certificates`` is set
the listener requires and verifies a client certificate (mutual authentication, PS3.15 B.9);
with ``tls_crl`` the client certificate is also checked against the CA's certificate
revocation list (RFC 5280 Section 5; leaf certificates, ``VERIFY_CRL_CHECK_LEAF``).

:func:`describe_tls_error` and :func:`certificate_identity` give the audit trail the reason a
handshake failed (OpenSSL's verification result, e.g. "certificate has expired") and who a
certificate names. Python's ``ssl`` module has no verification callback and OpenSSL discards
a chain that failed verification, so the subject of a *refused* certificate cannot be
recorded; the subject of every accepted one is.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

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
    if settings.tls_crl is not None:
        try:
            ctx.load_verify_locations(cafile=str(settings.tls_crl))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"SRSERVICE_TLS_CRL: cannot load {settings.tls_crl}: {exc}") from exc
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return ctx


def describe_tls_error(exc: BaseException) -> str:
    """One line saying why a TLS handshake failed, for the audit trail.

    Certificate verification failures carry OpenSSL's result text and code (``X509_V_ERR_*``,
    e.g. ``certificate has expired (10)``, ``certificate is not yet valid (9)``, ``unable to
    get local issuer certificate (20)``, ``certificate revoked (23)``); other TLS errors their
    OpenSSL reason (e.g. ``TLSV1_ALERT_PROTOCOL_VERSION``); time-outs and resets their class.
    """
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"client certificate refused: {exc.verify_message} "
                f"(X509 verify code {exc.verify_code})")
    if isinstance(exc, ssl.SSLError):
        reason = getattr(exc, "reason", None) or str(exc).splitlines()[0]
        return f"{type(exc).__name__}: {reason}"
    return type(exc).__name__


def _rdn_text(rdns: Any) -> str:
    parts = []
    for rdn in rdns or ():
        for key, value in rdn:
            short = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
                     "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST",
                     "emailAddress": "emailAddress"}.get(key, key)
            parts.append(f"{short}={value}")
    return ",".join(parts)


def certificate_identity(peercert: Any) -> dict[str, str]:
    """Subject, issuer, serial number and names of a verified peer certificate.

    Parameters
    ----------
    peercert : dict or None
        ``SSLSocket.getpeercert()`` (empty or None when no certificate was presented).

    Returns
    -------
    dict
        ``subject`` / ``issuer`` as ``CN=...,O=...``, ``serial`` (hex), ``not_after`` and
        ``identities``: the subject CN plus subjectAltName DNS and e-mail entries, comma separated
        (what ``tls_ae_bindings`` compares with). Empty when there is no certificate.
    """
    if not peercert:
        return {}
    names = [value for rdn in peercert.get("subject", ()) for key, value in rdn
             if key == "commonName"]
    names += [value for kind, value in peercert.get("subjectAltName", ())
              if kind in ("DNS", "email")]
    return {"subject": _rdn_text(peercert.get("subject")),
            "issuer": _rdn_text(peercert.get("issuer")),
            "serial": str(peercert.get("serialNumber", "")),
            "not_after": str(peercert.get("notAfter", "")),
            "identities": ",".join(names)}


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
