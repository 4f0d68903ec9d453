"""Cost of keeping the client certificate for the audit trail (``AuditedSSLSocket``).

The listener's TLS context carries OpenSSL's message callback (``srservice.tlsconfig``), which
CPython calls for every TLS record, application data included, not only for the handshake.
This receives ``--mib`` MiB over loopback TLS (mutual authentication, site PKI of
``tests/support/pki.py``) with the listener's own context and with the same context without
the hook, and prints the receiving thread's CPU time (``time.thread_time``) and wall time,
best of ``--repeat``.

Usage: ``nice .venv/bin/python benchmarks/tls_audit_hook.py [--mib 400] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from srservice.tlsconfig import AuditedSSLSocket, server_context
from tests.support.listener import settings_for
from tests.support.pki import issue_site_pki


def receive(ctx: ssl.SSLContext, pki: dict[str, Path], mib: int) -> tuple[float, float, bool]:
    """Receive ``mib`` MiB on a server socket of ``ctx``; return (thread CPU s, wall s, kept)."""
    listening = socket.create_server(("127.0.0.1", 0))
    chunk = b"x" * (1 << 20)

    def send() -> None:
        client = ssl.create_default_context(cafile=str(pki["ca"]))
        client.check_hostname = False
        client.load_cert_chain(str(pki["console1"]), str(pki["console1_key"]))
        with client.wrap_socket(socket.create_connection(listening.getsockname())) as out:
            for _ in range(mib):
                out.sendall(chunk)
            out.recv(1)  # wait for the receiver (unread tickets would reset the connection)

    sender = threading.Thread(target=send)
    sender.start()
    raw, _ = listening.accept()
    with ctx.wrap_socket(raw, server_side=True) as conn:
        cpu, wall, got = time.thread_time(), time.perf_counter(), 0
        while got < mib << 20:
            data = conn.recv(1 << 16)
            if not data:
                raise RuntimeError(f"sender closed after {got} bytes")
            got += len(data)
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        conn.sendall(b"k")
        kept = isinstance(conn, AuditedSSLSocket) and conn.presented_certificate is not None
        sender.join()
    listening.close()
    return cpu, wall, kept


def main() -> None:
    """Print receive CPU and wall time with and without the certificate hook."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    openssl = shutil.which("openssl")
    if openssl is None:
        raise SystemExit("the openssl CLI is needed for the test PKI")
    with tempfile.TemporaryDirectory() as tmp:
        pki = issue_site_pki(openssl, Path(tmp) / "pki")
        settings = settings_for(Path(tmp), tls_certificate=pki["server"],
                                tls_private_key=pki["server_key"],
                                tls_ca_certificates=pki["ca"])
        for hooked in (False, True):
            ctx = server_context(settings)
            assert ctx is not None
            if not hooked:
                ctx.sslsocket_class = ssl.SSLSocket
                ctx._msg_callback = None  # type: ignore[attr-defined]
            runs = [receive(ctx, pki, args.mib) for _ in range(args.repeat)]
            cpu = min(r[0] for r in runs)
            wall = min(r[1] for r in runs)
            print(f"{'with' if hooked else 'without'} hook: {args.mib} MiB received, "
                  f"thread CPU {cpu:.3f} s ({cpu / args.mib * 1000:.2f} ms/MiB), "
                  f"wall {wall:.3f} s, certificate kept: {all(r[2] for r in runs)}")


if __name__ == "__main__":
    main()
