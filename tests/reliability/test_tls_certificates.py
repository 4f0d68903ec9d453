"""DICOM TLS client certificates: why a refusal happened, who was let in, and AE binding
(promise P9 of docs/reliability.md).

A site CA (``openssl ca``) issues valid, expired, not-yet-valid and revoked client
certificates and a CRL; another CA signs a "wrong CA" certificate. Each bad certificate must
fail the handshake with its own reason in the audit trail (OpenSSL's verification result),
nothing is stored, and a valid certificate's subject and issuer are audited. With
``tls_ae_bindings`` a calling AE title is accepted only with the certificate it is bound to.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

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


def client(pki: dict[str, Path], cert: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki["ca"]))
    ctx.check_hostname = False
    ctx.load_cert_chain(str(pki[cert]), str(pki[f"{cert}_key"]))
    return ctx


def audit(running: RunningScp) -> list[dict[str, object]]:
    path = running.settings.data_dir / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def tls_scp(scp: Callable[..., RunningScp], pki: dict[str, Path], **extra: object) -> RunningScp:
    return scp(tls_certificate=pki["server"], tls_private_key=pki["server_key"],
               tls_ca_certificates=pki["ca"], tls_crl=pki["crl"], acse_timeout=5.0, **extra)


REFUSALS = [
    ("expired", "certificate has expired"),
    ("future", "certificate is not yet valid"),
    ("wrongca", "unable to get local issuer certificate"),
    ("revoked", "certificate revoked"),
]


def test_bad_client_certificates_refused_with_their_reason(
        scp: Callable[..., RunningScp], tmp_path: Path, site_pki: dict[str, Path]) -> None:
    running = tls_scp(scp, site_pki)
    for cert, _ in REFUSALS:
        sender = Sender(running.port, CONTEXTS, tmp_path / cert, timeout=5.0,
                        calling_ae="CONSOLE1", tls_args=(client(site_pki, cert), "127.0.0.1"))
        assert not sender.established, f"{cert} certificate was let in"
        sender.release()
    # Positive control: a valid certificate of the same CA stores.
    good = Sender(running.port, CONTEXTS, tmp_path / "good", timeout=5.0,
                  calling_ae="CONSOLE1", tls_args=(client(site_pki, "console1"), "127.0.0.1"))
    assert good.established and good.send(with_new_uids(phantom_part10())) == 0
    good.release()
    assert len(spool_finals(running.spool)) == 1
    records = audit(running)
    failures = [str(r["reason"]) for r in records if r["event"] == "association-rejected"
                and str(r.get("reason", "")).startswith("TLS handshake failed")]
    assert len(failures) == len(REFUSALS), failures
    for (cert, text), reason in zip(REFUSALS, failures, strict=True):
        assert text in reason, f"{cert}: {reason}"
        figures.record("tls", f"client certificate: {cert}", reason.removeprefix(
            "TLS handshake failed: client certificate refused: "))
    established = [r for r in records if r["event"] == "tls-established"]
    assert len(established) == 1
    assert established[0]["subject"] == "CN=console1"
    assert established[0]["issuer"] == "CN=hardening-ca"
    assert "console1.example.org" in str(established[0]["identities"])
    figures.record("tls", "client certificate: valid", f"stored; audited subject "
                   f"{established[0]['subject']}, issuer {established[0]['issuer']}")


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
