"""A site PKI for the TLS hardening tests, made with the openssl CLI (``openssl ca``).

One CA with an index database (so certificates can be revoked and a CRL issued) and:

- ``server``: the listener's certificate (subjectAltName IP:127.0.0.1);
- ``console1``, ``console2``: valid client certificates (CN and subjectAltName DNS);
- ``expired``: valid 2020-01-01 to 2020-01-02;
- ``future``: valid from 2099-01-01;
- ``revoked``: valid, then revoked, listed in ``crl`` (PEM CRL of the CA);
- ``wrongca``: signed by another, untrusted CA.

Every key is EC P-256; each entry ``name`` has ``name`` (certificate) and ``name_key`` paths.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

_CA_CONFIG = """
[ ca ]
default_ca = site_ca
[ site_ca ]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}/newcerts
certificate = {dir}/ca.pem
private_key = {dir}/ca.key
serial = {dir}/serial
crlnumber = {dir}/crlnumber
default_md = sha256
default_days = 2
default_crl_days = 2
policy = any_cn
unique_subject = no
copy_extensions = copy
[ any_cn ]
commonName = supplied
"""

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=60)


def issue_site_pki(openssl: str, d: Path) -> dict[str, Path]:
    """Create the PKI of the module docstring in ``d``; return name -> path."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "newcerts").mkdir(exist_ok=True)
    (d / "index.txt").write_text("")
    (d / "serial").write_text("1000\n")
    (d / "crlnumber").write_text("1000\n")
    config = d / "ca.cnf"
    config.write_text(_CA_CONFIG.format(dir=d))
    out: dict[str, Path] = {"ca": d / "ca.pem", "ca_key": d / "ca.key"}
    for ca in ("ca", "otherca"):
        _run(openssl, "req", "-x509", *_EC, "-keyout", str(d / f"{ca}.key"), "-out",
             str(d / f"{ca}.pem"), "-days", "3", "-subj", f"/CN=hardening-{ca}")

    def request(name: str, san: str) -> Path:
        key, csr = d / f"{name}.key", d / f"{name}.csr"
        _run(openssl, "req", *_EC, "-keyout", str(key), "-out", str(csr),
             "-subj", f"/CN={name}/O=Hardening test", "-addext", f"subjectAltName={san}")
        out[f"{name}_key"] = key
        return csr

    def sign(name: str, san: str, *dates: str) -> None:
        csr = request(name, san)
        crt = d / f"{name}.pem"
        _run(openssl, "ca", "-batch", "-config", str(config), "-notext", "-in", str(csr),
             "-out", str(crt), *dates)
        out[name] = crt

    sign("server", "IP:127.0.0.1")
    for name in ("console1", "console2", "revoked"):
        sign(name, f"DNS:{name}.example.org")
    sign("expired", "DNS:expired.example.org", "-startdate", "20200101000000Z",
         "-enddate", "20200102000000Z")
    sign("future", "DNS:future.example.org", "-startdate", "20990101000000Z",
         "-enddate", "20991231000000Z")
    _run(openssl, "ca", "-batch", "-config", str(config), "-revoke", str(out["revoked"]))
    out["crl"] = d / "crl.pem"
    _run(openssl, "ca", "-batch", "-config", str(config), "-gencrl", "-out", str(out["crl"]))
    csr = request("wrongca", "DNS:wrongca.example.org")
    out["wrongca"] = d / "wrongca.pem"
    _run(openssl, "x509", "-req", "-in", str(csr), "-CA", str(d / "otherca.pem"), "-CAkey",
         str(d / "otherca.key"), "-CAcreateserial", "-out", str(out["wrongca"]), "-days", "2",
         "-copy_extensions", "copy")
    return out
