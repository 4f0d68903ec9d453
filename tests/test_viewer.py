"""The built-in viewer's HTTP server: static files, routes, the DICOMweb proxy, bad input."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from srservice.errors import ConfigError
from srservice.viewer import ViewerConfig, ViewerServer
from tests.support.environment import free_port


class _Pacs(BaseHTTPRequestHandler):
    """A DICOMweb stand-in that answers what it was asked, with absolute BulkDataURIs."""

    seen: ClassVar[list[tuple[str, str | None]]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        _Pacs.seen.append((self.path, self.headers.get("Accept")))
        host = f"http://127.0.0.1:{self.server.server_address[1]}/dicom-web"
        if self.path.endswith("/metadata"):
            body = json.dumps([{"7FE00010": {"vr": "OB", "BulkDataURI":
                                             f"{host}/studies/1/bulk/7FE00010"}}]).encode()
            ctype = "application/dicom+json"
        else:
            body, ctype = b"\x00" * 200_000, "application/octet-stream"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    d = tmp_path / "dist"
    d.mkdir()
    (d / "index.html").write_text("<html>OHIF</html>")
    (d / "app.js").write_text("console.log(1)")
    (tmp_path / "secret.txt").write_text("secret")
    return d


@pytest.fixture
def pacs() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pacs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/dicom-web"
    server.shutdown()


def _get(url: str, accept: str | None = None) -> tuple[int, str, bytes]:
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def test_static_routes_config_and_traversal(dist: Path, pacs: str) -> None:
    viewer = ViewerServer(ViewerConfig(dist, pacs))
    viewer.serve_in_thread()
    try:
        assert _get(viewer.url + "/app.js")[2] == b"console.log(1)"
        status, _, body = _get(viewer.url + "/viewer?StudyInstanceUIDs=1.2.3")
        assert status == 200 and b"OHIF" in body  # a route of the application
        status, ctype, body = _get(viewer.url + "/app-config.js")
        assert status == 200 and "javascript" in ctype
        assert b"window.location.origin + '/dicom-web'" in body
        for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt"):
            status, _, body = _get(viewer.url + path)
            assert b"secret" not in body, path
    finally:
        viewer.shutdown()


def test_proxy_forwards_and_rewrites_pacs_urls(dist: Path, pacs: str) -> None:
    viewer = ViewerServer(ViewerConfig(dist, pacs))
    viewer.serve_in_thread()
    _Pacs.seen.clear()
    try:
        status, ctype, body = _get(viewer.url + "/dicom-web/studies/1/metadata",
                                   accept="application/dicom+json")
        assert status == 200 and ctype == "application/dicom+json"
        uri = json.loads(body)[0]["7FE00010"]["BulkDataURI"]
        assert uri == f"{viewer.url}/dicom-web/studies/1/bulk/7FE00010"  # same origin
        status, _, body = _get(viewer.url + "/dicom-web/studies/1/bulk/7FE00010",
                               accept="application/octet-stream")
        assert status == 200 and len(body) == 200_000
        assert _Pacs.seen == [("/dicom-web/studies/1/metadata", "application/dicom+json"),
                              ("/dicom-web/studies/1/bulk/7FE00010",
                               "application/octet-stream")]
    finally:
        viewer.shutdown()


def test_pacs_down_is_a_bad_gateway(dist: Path) -> None:
    viewer = ViewerServer(ViewerConfig(dist, f"http://127.0.0.1:{free_port()}/dicom-web"))
    viewer.serve_in_thread()
    try:
        status, _, body = _get(viewer.url + "/dicom-web/studies")
        assert status == 502 and b"unreachable" in body
    finally:
        viewer.shutdown()


def test_no_built_viewer_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"install-viewer\.sh"):
        ViewerServer(ViewerConfig(tmp_path / "missing", "http://127.0.0.1:1/dicom-web"))
