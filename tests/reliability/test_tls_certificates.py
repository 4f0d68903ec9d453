"""DICOM TLS client certificates: why a refusal happened, who was let in, and AE binding
(promise P9 of docs/reliability.md).

A site CA (``openssl ca``) issues valid, expired, not-yet-valid and revoked client
certificates and a CRL; another CA signs a "wrong CA" certificate. Each bad certificate must
fail the handshake with its own reason in the audit trail (OpenSSL's verification result)
and the subject, issuer and serial number of the refused certificate, in TLS 1.2 and 1.3;
nothing is stored, and a valid certificate's subject and issuer are audited. With
``tls_ae_bindings`` a calling AE title is accepted only with the certificate it is bound to.
"""

from __future__ import annotations

import hashlib
import json
import ssl
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from srservice.tlsconfig import leaf_certificate, presented_identity
from tests.support import figures
from tests.support.datasets import US_MULTIFRAME
from tests.support.environment import require_tool
from tests.support.listener import RunningScp
from tests.support.pki import issue_site_pki
from tests.support.reliability import (
    EXPLICIT_LE,
    Sender,
    phantom_part10,
    spool_finals,
    with_new_uids,
)

pytestmark = pytest.mark.timeout(120)

CONTEXTS = [(US_MULTIFRAME, EXPLICIT_LE)]


@pytest.fixture(scope="module")
def site_pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return issue_site_pki(require_tool("openssl"), tmp_path_factory.mktemp("site-pki"))


def client(pki: dict[str, Path], cert: str | None,
           version: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki["ca"]))
    ctx.check_hostname = False
    ctx.maximum_version = version
    if cert is not None:
        ctx.load_cert_chain(str(pki[cert]), str(pki[f"{cert}_key"]))
    return ctx


def openssl_says(pki: dict[str, Path], cert: str, *fields: str) -> dict[str, str]:
    """What ``openssl x509`` prints for a certificate (the reference for the audit fields)."""
    out = subprocess.run([require_tool("openssl"), "x509", "-noout", "-nameopt", "sep_comma_plus",
                          *(f"-{f}" for f in fields), "-in", str(pki[cert])],
                         check=True, capture_output=True, text=True, timeout=30).stdout
    return dict(line.split("=", 1) for line in out.splitlines())


def audit(running: RunningScp) -> list[dict[str, object]]:
    path = running.settings.data_dir / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def tls_scp(scp: Callable[..., RunningScp], pki: dict[str, Path], **extra: object) -> RunningScp:
    return scp(tls_certificate=pki["server"], tls_private_key=pki["server_key"],
               tls_ca_certificates=pki["ca"], tls_crl=pki["crl"], acse_timeout=5.0, **extra)


REFUSALS = [
    ("expired", "certificate has expired", "CN=expired", "CN=hardening-ca"),
    ("future", "certificate is not yet valid", "CN=future", "CN=hardening-ca"),
    ("wrongca", "unable to get local issuer certificate", "CN=wrongca,O=Hardening test",
     "CN=hardening-otherca"),
    ("revoked", "certificate revoked", "CN=revoked", "CN=hardening-ca"),
]

VERSIONS = [pytest.param(ssl.TLSVersion.TLSv1_2, id="tls1.2"),
            pytest.param(ssl.TLSVersion.TLSv1_3, id="tls1.3")]


@pytest.mark.parametrize("version", VERSIONS)
def test_bad_client_certificates_refused_with_their_reason(
        scp: Callable[..., RunningScp], tmp_path: Path, site_pki: dict[str, Path],
        version: ssl.TLSVersion) -> None:
    running = tls_scp(scp, site_pki)
    for cert, *_ in REFUSALS:
        sender = Sender(running.port, CONTEXTS, tmp_path / cert, timeout=5.0,
                        calling_ae="CONSOLE1",
                        tls_args=(client(site_pki, cert, version), "127.0.0.1"))
        assert not sender.established, f"{cert} certificate was let in"
        sender.release()
    # Positive control: a valid certificate of the same CA stores.
    good = Sender(running.port, CONTEXTS, tmp_path / "good", timeout=5.0,
                  calling_ae="CONSOLE1",
                  tls_args=(client(site_pki, "console1", version), "127.0.0.1"))
    assert good.established and good.send(with_new_uids(phantom_part10())) == 0
    good.release()
    assert len(spool_finals(running.spool)) == 1
    records = audit(running)
    failures = [r for r in records if r["event"] == "association-rejected"
                and str(r.get("reason", "")).startswith("TLS handshake failed")]
    assert len(failures) == len(REFUSALS), failures
    for cert, text, subject, issuer in REFUSALS:
        # Matched by subject: each connection's thread writes its own record, so records of
        # back-to-back connections may land in either order.
        mine = [r for r in failures if r.get("subject") == subject]
        assert len(mine) == 1, (cert, failures)
        record = mine[0]
        reason = str(record["reason"])
        assert text in reason, f"{cert}: {reason}"
        # Who was refused: the certificate's own subject, issuer, serial and validity.
        reference = openssl_says(site_pki, cert, "subject", "issuer", "serial", "dates")
        assert record.get("subject") == subject == reference["subject"], (cert, record)
        assert record.get("issuer") == issuer == reference["issuer"], (cert, record)
        assert record.get("serial") == reference["serial"], (cert, record)
        assert record.get("not_before") == reference["notBefore"], (cert, record)
        assert record.get("not_after") == reference["notAfter"], (cert, record)
        assert f"{cert}.example.org" in str(record.get("identities")), (cert, record)
        why = reason.removeprefix("TLS handshake failed: client certificate refused: ")
        figures.record("tls", f"client certificate: {cert} ({version.name})",
                       f"{why}; subject {record['subject']}, issuer {record['issuer']}, "
                       f"serial {record['serial']}")
    established = [r for r in records if r["event"] == "tls-established"]
    assert len(established) == 1
    assert established[0]["subject"] == "CN=console1"
    assert established[0]["issuer"] == "CN=hardening-ca"
    assert established[0]["serial"] == openssl_says(site_pki, "console1", "serial")["serial"]
    assert "console1.example.org" in str(established[0]["identities"])
    figures.record("tls", f"client certificate: valid ({version.name})",
                   f"stored; audited subject {established[0]['subject']}, "
                   f"issuer {established[0]['issuer']}")


def test_no_client_certificate_audited_as_such(scp: Callable[..., RunningScp], tmp_path: Path,
                                               site_pki: dict[str, Path]) -> None:
    running = tls_scp(scp, site_pki)
    sender = Sender(running.port, CONTEXTS, tmp_path / "none", timeout=5.0,
                    calling_ae="CONSOLE1",
                    tls_args=(client(site_pki, None, ssl.TLSVersion.TLSv1_2), "127.0.0.1"))
    assert not sender.established
    sender.release()
    failures = [r for r in audit(running) if r["event"] == "association-rejected"]
    assert len(failures) == 1, failures
    assert failures[0]["certificate"] == "none presented"
    assert "subject" not in failures[0]
    assert spool_finals(running.spool) == []


def test_calling_ae_bound_to_certificate(scp: Callable[..., RunningScp], tmp_path: Path,
                                         site_pki: dict[str, Path]) -> None:
    running = tls_scp(scp, site_pki,
                      tls_ae_bindings="CONSOLE1=console1.example.org,CONSOLE2=console2")
    cases = [("CONSOLE1", "console1", True), ("CONSOLE2", "console2", True),
             ("CONSOLE1", "console2", False), ("CONSOLE2", "console1", False),
             ("OTHER", "console1", False)]
    seen = []
    for calling, cert, allowed in cases:
        sender = Sender(running.port, CONTEXTS, tmp_path / f"{calling}-{cert}", timeout=5.0,
                        calling_ae=calling, tls_args=(client(site_pki, cert), "127.0.0.1"))
        seen.append((calling, cert, sender.established))
        if allowed:
            assert sender.established, (calling, cert)
            assert sender.send(with_new_uids(phantom_part10())) == 0
        else:
            assert not sender.established and sender.rejection() == (1, 1, 3), (calling, cert)
        sender.release()
    rejected = [r for r in audit(running) if r["event"] == "association-rejected"]
    assert len(rejected) == 3
    assert all("not bound to the client certificate" in str(r["reason"]) for r in rejected)
    assert [str(r["reason"]).endswith("(subject CN=console2)") for r in rejected] == [
        True, False, False]
    assert len(spool_finals(running.spool)) == 2
    figures.record("tls", "tls_ae_bindings CONSOLE1=console1.example.org,CONSOLE2=console2",
                   ", ".join(f"{c}+{k}: {'accepted' if ok else 'RJ 1-1-3'}"
                             for c, k, ok in seen))


def test_hostile_certificate_text_is_cleaned(scp: Callable[..., RunningScp], tmp_path: Path,
                                             site_pki: dict[str, Path]) -> None:
    """A self-signed certificate's subject is the sender's free text: kept printable, capped."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "evil\x1b[2J\r\nCN=console1"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "O" * 60),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "U" * 60),
        *(x509.NameAttribute(NameOID.LOCALITY_NAME, "L" * 60) for _ in range(4)),
    ])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256()))
    pem, key_pem = tmp_path / "evil.pem", tmp_path / "evil.key"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    running = tls_scp(scp, site_pki)
    ctx = client(site_pki, None)
    ctx.load_cert_chain(str(pem), str(key_pem))
    sender = Sender(running.port, CONTEXTS, tmp_path / "evil", timeout=5.0,
                    calling_ae="CONSOLE1", tls_args=(ctx, "127.0.0.1"))
    assert not sender.established
    sender.release()
    (record,) = [r for r in audit(running) if r["event"] == "association-rejected"]
    assert "(X509 verify code 18)" in str(record["reason"])  # self-signed certificate
    shown = str(record["subject"])
    assert shown.startswith("CN=evil?[2J??CN=console1,O=OOO") and shown.endswith("...")
    assert len(shown) == 256 and shown.isprintable()
    assert int(str(record["serial"]), 16) == cert.serial_number
    assert record["sha256"] == cert.fingerprint(hashes.SHA256()).hex()
    assert spool_finals(running.spool) == []


def _certificate_message(ders: list[bytes], *, tls13: bool) -> bytes:
    """A TLS Certificate handshake message (RFC 5246 7.4.2, RFC 8446 4.4.2) for the parser test."""
    entries = b"".join(len(d).to_bytes(3, "big") + d + (b"\x00\x00" if tls13 else b"")
                       for d in ders)
    body = (b"\x00" if tls13 else b"") + len(entries).to_bytes(3, "big") + entries
    return b"\x0b" + len(body).to_bytes(3, "big") + body


@pytest.mark.parametrize("tls13", [False, True])
def test_certificate_message_framing(tls13: bool) -> None:
    leaf, ca = b"\x30\x03\x02\x01\x01", b"\x30\x03\x02\x01\x02"
    message = _certificate_message([leaf, ca], tls13=tls13)
    assert leaf_certificate(message, tls13=tls13) == leaf
    assert leaf_certificate(_certificate_message([], tls13=tls13), tls13=tls13) is None
    for cut in range(len(message) - len(ca) - (2 if tls13 else 0)):
        assert leaf_certificate(message[:cut], tls13=tls13) in (None, leaf)
    assert leaf_certificate(b"\x0c" + message[1:], tls13=tls13) is None  # not a Certificate
    # Not X.509: audited as such, with the fingerprint, never an exception.
    assert presented_identity(leaf) == {"certificate": "unparseable",
                                        "sha256": hashlib.sha256(leaf).hexdigest()}
    assert presented_identity(None) == {"certificate": "none presented"}
