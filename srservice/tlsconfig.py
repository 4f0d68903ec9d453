"""TLS contexts for DICOM over TLS (PS3.15 Annex B.9, BCP 195 Secure Transport Connection Profile).

TLS 1.2 is the minimum version (BCP 195 / RFC 9325); Python's default cipher selection for
``PROTOCOL_TLS_SERVER`` / ``PROTOCOL_TLS_CLIENT`` is used. When ``tls_ca_certificates`` is set
the listener requires and verifies a client certificate (mutual authentication, PS3.15 B.9);
with ``tls_crl`` the client certificate is also checked against the CA's certificate
revocation list (RFC 5280 Section 5; leaf certificates, ``VERIFY_CRL_CHECK_LEAF``).

:func:`describe_tls_error` and :func:`certificate_identity` give the audit trail the reason a
handshake failed (OpenSSL's verification result, e.g. "certificate has expired") and who a
certificate names. :func:`refused_identity` does the same for a certificate the handshake
*refused* (see :class:`AuditedSSLSocket` for how it is kept).
"""

from __future__ import annotations

import hashlib
import ssl
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID

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
    if ctx.verify_mode == ssl.CERT_REQUIRED:
        ctx.sslsocket_class = AuditedSSLSocket
        # CPython's message hook (ssl.SSLContext._msg_callback, Lib/ssl.py); not in typeshed.
        setattr(ctx, "_msg_callback", _keep_client_certificate)  # noqa: B010
    return ctx


# --- the certificate of a refused handshake ------------------------------------------------
class AuditedSSLSocket(ssl.SSLSocket):
    """Server-side TLS socket that keeps the client certificate it was shown.

    Why this way: Python's ``ssl`` has no verification callback and OpenSSL frees a client
    chain that failed verification, so after ``CERTIFICATE_VERIFY_FAILED`` neither
    ``getpeercert()`` nor ``get_unverified_chain()`` has the certificate. OpenSSL's message
    callback (``SSL_CTX_set_msg_callback``, exposed by CPython as
    ``SSLContext._msg_callback``) is called with every handshake message as received and
    decrypted, *before* it is processed: the client's Certificate message (RFC 5246 Section
    7.4.2, RFC 8446 Section 4.4.2; plaintext to us in TLS 1.2 and 1.3 alike) is copied here.
    The hook only observes: it cannot change the verification, which stays OpenSSL's with the
    same context (versions, ciphers, CA, CRL flags), so nothing is accepted that was refused
    before. The other way, pyOpenSSL's ``Context.set_verify`` callback, would replace the
    listener's ``ssl.SSLSocket`` (which pynetdicom reads and the AE binding checks) with a
    different connection object. The certificate itself is parsed by ``cryptography``
    (pyca), not by hand; only the TLS framing (length prefixes) is read here.

    Attributes
    ----------
    presented_certificate : bytes or None
        DER of the first (leaf) certificate of the last client Certificate message, ``None``
        when the client sent none (or not yet).
    """

    presented_certificate: bytes | None = None


#: TLS content type handshake(22) and handshake type certificate(11), RFC 8446 Section 5.1 / 4.
_HANDSHAKE, _CERTIFICATE = 22, 11


def _u24(data: bytes, at: int) -> int:
    if at + 3 > len(data):
        raise ValueError("truncated length")
    return int.from_bytes(data[at:at + 3], "big")


def leaf_certificate(message: bytes, *, tls13: bool) -> bytes | None:
    """DER of the first certificate of a TLS Certificate handshake message.

    Parameters
    ----------
    message : bytes
        The whole handshake message: type (11), 24-bit length, body. The body is a 24-bit
        length-prefixed list of 24-bit length-prefixed certificates (RFC 5246 Section 7.4.2);
        in TLS 1.3 it starts with an 8-bit length-prefixed request context and each entry is
        followed by 16-bit length-prefixed extensions (RFC 8446 Section 4.4.2).
    tls13 : bool
        The message is TLS 1.3's.

    Returns
    -------
    bytes or None
        The leaf certificate's DER, ``None`` for an empty list or a malformed message.
    """
    try:
        if len(message) < 4 or message[0] != _CERTIFICATE:
            return None
        at = 4
        if tls13:
            at += 1 + message[at]
        end = at + 3 + _u24(message, at)
        at += 3
        if end > len(message) or at == end:
            return None
        size = _u24(message, at)
        at += 3
        if size == 0 or at + size > end:
            return None
        return bytes(message[at:at + size])
    except (ValueError, IndexError):
        return None


def _keep_client_certificate(conn: object, direction: str, version: object,
                             content_type: object, msg_type: object, data: bytes) -> None:
    """Message callback: copy the leaf of a received Certificate message onto the socket.

    Never raises: CPython would re-raise an exception from the callback out of the handshake
    (breaking a connection that would have been accepted).
    """
    try:
        if (direction == "read" and content_type == _HANDSHAKE and msg_type == _CERTIFICATE
                and isinstance(conn, AuditedSSLSocket)):
            conn.presented_certificate = leaf_certificate(
                data, tls13=version == ssl.TLSVersion.TLSv1_3)
    except Exception:  # an observer must not break the handshake
        return


#: Attribute types with the short names ``getpeercert()`` results are written with here.
_SHORT = {NameOID.COMMON_NAME: "CN", NameOID.ORGANIZATION_NAME: "O",
          NameOID.ORGANIZATIONAL_UNIT_NAME: "OU", NameOID.COUNTRY_NAME: "C",
          NameOID.LOCALITY_NAME: "L", NameOID.STATE_OR_PROVINCE_NAME: "ST",
          NameOID.EMAIL_ADDRESS: "emailAddress"}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
#: Longest text kept from a refused certificate (its content is chosen by whoever made it).
_MAX_FIELD = 256


def _clean(text: str) -> str:
    kept = "".join(ch if ch.isprintable() else "?" for ch in text)
    return kept if len(kept) <= _MAX_FIELD else kept[:_MAX_FIELD - 3] + "..."


def _name_text(name: x509.Name) -> str:
    parts = []
    for rdn in name.rdns:
        for attr in rdn:
            key = _SHORT.get(attr.oid, attr.oid.dotted_string)
            value = attr.value if isinstance(attr.value, str) else attr.value.hex()
            parts.append(f"{key}={value}")
    return _clean(",".join(parts))


def _openssl_time(moment: datetime) -> str:
    """Date as ``getpeercert()`` writes it (``ASN1_TIME_print``): ``Jan  2 00:00:00 2020 GMT``."""
    return (f"{_MONTHS[moment.month - 1]} {moment.day:2d} "
            f"{moment:%H:%M:%S} {moment.year} GMT")


def refused_identity(sock: object) -> dict[str, str]:
    """Who the client certificate of a failed handshake names, for the audit trail.

    Parameters
    ----------
    sock : object
        The listener's socket (an :class:`AuditedSSLSocket` when client certificates are
        required; anything else gives an empty result).

    Returns
    -------
    dict
        ``subject``, ``issuer`` (``CN=...,O=...`` in certificate order, as for an accepted
        certificate), ``serial`` (upper-case hex), ``not_before``, ``not_after``,
        ``identities`` (subject CN, subjectAltName DNS and e-mail) and ``sha256`` (of the
        DER); ``{"certificate": "none presented"}`` when the client sent no certificate,
        ``{"certificate": "unparseable", "sha256": ...}`` when it is not X.509. Text from the
        certificate is stripped of control characters and capped at 256 characters.
    """
    if not isinstance(sock, AuditedSSLSocket):
        return {}
    return presented_identity(sock.presented_certificate)


def presented_identity(der: bytes | None) -> dict[str, str]:
    """Return the audit fields of :func:`refused_identity` for a DER certificate (or None)."""
    if der is None:
        return {"certificate": "none presented"}
    digest = hashlib.sha256(der).hexdigest()
    try:
        cert = x509.load_der_x509_certificate(der)
        subject, issuer = _name_text(cert.subject), _name_text(cert.issuer)
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        try:
            san = cert.extensions.get_extension_for_oid(
                ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
            if isinstance(san, x509.SubjectAlternativeName):
                names += san.get_values_for_type(x509.DNSName)
                names += san.get_values_for_type(x509.RFC822Name)
        except x509.ExtensionNotFound:
            pass
        serial = cert.serial_number
        hexed = f"{abs(serial):X}"
        serial_text = ("-" if serial < 0 else "") + ("0" * (len(hexed) % 2)) + hexed
        return {"subject": subject, "issuer": issuer, "serial": _clean(serial_text),
                "not_before": _openssl_time(cert.not_valid_before_utc),
                "not_after": _openssl_time(cert.not_valid_after_utc),
                "identities": _clean(",".join(names)), "sha256": digest}
    except ValueError:
        return {"certificate": "unparseable", "sha256": digest}


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
