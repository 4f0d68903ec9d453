"""The built-in web viewer: OHIF served beside a same-origin proxy to the PACS's DICOMweb.

For sites without a DICOMweb viewer, ``srservice serve`` can serve the OHIF viewer (the npm
package ``@ohif/app``, installed by ``scripts/install-viewer.sh``; its ``dist/`` folder is a
built single-page application) on ``SRSERVICE_VIEWER_PORT``:

- ``/dicom-web/...`` is forwarded to ``SRSERVICE_VIEWER_DICOMWEB_URL`` (QIDO-RS, WADO-RS,
  PS3.18 Chapter 10), so the browser talks to one origin and the PACS needs no CORS set-up;
  absolute URLs of the PACS in DICOM JSON answers (BulkDataURI, PS3.18 F.2.6) are rewritten to
  the viewer's origin.
- ``/app-config.js`` is generated: one DICOMweb data source at ``<origin>/dicom-web``.
- every other path is a file of ``dist/``; unknown paths (the viewer's routes such as
  ``/viewer?StudyInstanceUIDs=...``) answer ``index.html``.

The server is read-only: only GET and HEAD are forwarded. It has no authentication; bind it to
a trusted network (``SRSERVICE_VIEWER_HOST``, default ``127.0.0.1``).
"""

from __future__ import annotations

import http.client
import json
import logging
import mimetypes
import threading
import urllib.parse
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from srservice.errors import ConfigError

log = logging.getLogger(__name__)

#: Path prefix of the DICOMweb proxy on the viewer's origin.
DICOMWEB_PREFIX = "/dicom-web"
#: Request headers passed on to the PACS (everything else is dropped).
_FORWARDED_REQUEST_HEADERS = ("accept", "accept-encoding", "range", "if-none-match",
                              "if-modified-since", "authorization")
#: Response headers passed back to the browser.
_FORWARDED_RESPONSE_HEADERS = ("content-type", "etag", "last-modified", "cache-control",
                               "content-range", "accept-ranges", "content-encoding")
_CHUNK = 1 << 16

_APP_CONFIG = """window.config = {
  routerBasename: '/',
  extensions: [],
  modes: [],
  customizationService: {},
  showStudyList: true,
  maxNumberOfWebWorkers: 2,
  showWarningMessageForCrossOrigin: false,
  showCPUFallbackMessage: false,
  showLoadingIndicator: true,
  strictZSpacingForVolumeViewport: true,
  investigationalUseDialog: { option: 'never' },
  defaultDataSourceName: 'dicomweb',
  dataSources: [
    {
      namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
      sourceName: 'dicomweb',
      configuration: {
        friendlyName: %(name)s,
        name: 'pacs',
        wadoUriRoot: window.location.origin + '%(prefix)s',
        qidoRoot: window.location.origin + '%(prefix)s',
        wadoRoot: window.location.origin + '%(prefix)s',
        qidoSupportsIncludeField: false,
        imageRendering: 'wadors',
        thumbnailRendering: 'wadors',
        enableStudyLazyLoad: true,
        supportsFuzzyMatching: false,
        supportsWildcard: true,
        omitQuotationForMultipartRequest: true,
        bulkDataURI: { enabled: true, relativeResolution: 'studies' },
      },
    },
  ],
};
"""


def app_config(name: str = "PACS") -> str:
    """Return the ``app-config.js`` of the built-in viewer (one DICOMweb data source)."""
    return _APP_CONFIG % {"name": json.dumps(name), "prefix": DICOMWEB_PREFIX}


@dataclass(frozen=True)
class ViewerConfig:
    """What the viewer server needs.

    Attributes
    ----------
    dist : pathlib.Path
        The ``dist/`` folder of ``@ohif/app``.
    dicomweb_url : str
        Base URL of the PACS's DICOMweb service (``http://host:port/dicom-web``).
    name : str
        Name of the data source shown by the viewer.
    """

    dist: Path
    dicomweb_url: str
    name: str = "PACS"


class _Handler(BaseHTTPRequestHandler):
    server: ViewerServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        log.debug("viewer: " + format, *args)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def _dispatch(self, *, head: bool) -> None:
        path = urllib.parse.urlsplit(self.path).path
        try:
            if path == DICOMWEB_PREFIX or path.startswith(DICOMWEB_PREFIX + "/"):
                self._proxy(head=head)
            elif path == "/app-config.js":
                self._send(HTTPStatus.OK, app_config(self.server.config.name).encode(),
                           "application/javascript", head=head)
            else:
                self._static(path, head=head)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, *, head: bool,
              cache: str = "no-cache") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _static(self, path: str, *, head: bool) -> None:
        root = self.server.config.dist.resolve()
        rel = urllib.parse.unquote(path).lstrip("/")
        target = (root / rel).resolve() if rel else root / "index.html"
        if not target.is_relative_to(root):
            self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain", head=head)
            return
        if not target.is_file():
            # A route of the single-page application: the application handles it.
            target = root / "index.html"
        ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if target.suffix == ".wasm":
            ctype = "application/wasm"
        body = target.read_bytes()
        self._send(HTTPStatus.OK, body, ctype, head=head,
                   cache="no-cache" if target.name == "index.html" else "max-age=3600")

    def _proxy(self, *, head: bool) -> None:
        upstream = urllib.parse.urlsplit(self.server.config.dicomweb_url.rstrip("/"))
        rest = self.path[len(DICOMWEB_PREFIX):]
        target = upstream.path + rest
        conn_cls = (http.client.HTTPSConnection if upstream.scheme == "https"
                    else http.client.HTTPConnection)
        conn = conn_cls(upstream.netloc, timeout=120)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() in _FORWARDED_REQUEST_HEADERS}
        headers["Accept-Encoding"] = "identity"
        try:
            conn.request("HEAD" if head else "GET", target, headers=headers)
            resp = conn.getresponse()
        except OSError as exc:
            log.warning("viewer: DICOMweb server unreachable: %s", exc)
            self._send(HTTPStatus.BAD_GATEWAY, b"DICOMweb server unreachable", "text/plain",
                       head=head)
            return
        try:
            ctype = resp.getheader("Content-Type", "") or ""
            if "json" in ctype and not head:
                # Absolute URLs of the PACS (BulkDataURI) point the browser at our origin.
                body = resp.read()
                public = f"http://{self.headers.get('Host', '')}{DICOMWEB_PREFIX}"
                base = self.server.config.dicomweb_url.rstrip("/")
                body = body.replace(base.encode(), public.encode())
                self.send_response(resp.status)
                self._copy_headers(resp, skip_length=True)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(resp.status)
            self._copy_headers(resp, skip_length=False)
            length = resp.getheader("Content-Length")
            if length is None and not head:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if head:
                return
            while chunk := resp.read(_CHUNK):
                if length is None:
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                else:
                    self.wfile.write(chunk)
            if length is None:
                self.wfile.write(b"0\r\n\r\n")
        finally:
            conn.close()

    def _copy_headers(self, resp: http.client.HTTPResponse, *, skip_length: bool) -> None:
        for key, value in resp.getheaders():
            if key.lower() in _FORWARDED_RESPONSE_HEADERS:
                self.send_header(key, value)
        if not skip_length and resp.getheader("Content-Length") is not None:
            self.send_header("Content-Length", str(resp.getheader("Content-Length")))


class ViewerServer(ThreadingHTTPServer):
    """The viewer's HTTP server (see the module docstring); ``serve_in_thread`` to run it."""

    daemon_threads = True

    def __init__(self, config: ViewerConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        if not (config.dist / "index.html").is_file():
            raise ConfigError(f"no built OHIF viewer in {config.dist} (run "
                              "scripts/install-viewer.sh or set SRSERVICE_VIEWER_DIST)")
        self.config = config
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        """Base URL the server answers on."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def serve_in_thread(self) -> threading.Thread:
        """Serve until :meth:`shutdown` in a daemon thread; return the thread."""
        thread = threading.Thread(target=self.serve_forever, name="viewer", daemon=True)
        thread.start()
        return thread
