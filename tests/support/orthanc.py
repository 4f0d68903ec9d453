"""A real Orthanc (Debian package) as the test PACS, on free ports with a generated config.

``OrthancServer(tmp_path).start()`` writes a JSON configuration (DICOM AE ``ORTHANC``, free
DICOM and HTTP ports, storage in ``tmp_path``, HTTP only on localhost without authentication,
called-AE check off), starts ``Orthanc`` and waits for ``/system`` with a deadline. ``stop()`` /
``start()`` take it down and bring it back on the same ports and storage (PACS-down tests).
Its REST API is read with urllib: ``/studies``, ``/instances/{id}/simplified-tags``,
``/instances/{id}/file``. ``OrthancServer(tmp_path, dicomweb=True)`` also loads the DICOMweb
plugin (Debian ``orthanc-dicomweb``) at ``/dicom-web/`` (:attr:`OrthancServer.dicomweb_url`).
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.environment import free_port, missing, require_tool

#: Where Debian's orthanc-dicomweb installs the plugin.
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def find_orthanc() -> str:
    """Return the Orthanc executable (``/usr/sbin/Orthanc`` is not on a user's PATH)."""
    if Path("/usr/sbin/Orthanc").exists():
        return "/usr/sbin/Orthanc"
    return require_tool("Orthanc")


class OrthancServer:
    """One Orthanc process for a test (see the module docstring)."""

    aet = "ORTHANC"

    def __init__(self, root: Path, *, dicomweb: bool = False, **extra: Any) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.dicom_port = free_port()
        self.http_port = free_port()
        self.config_path = root / "orthanc.json"
        self.proc: subprocess.Popen[bytes] | None = None
        config = {
            "Name": "srservice-test",
            "StorageDirectory": str(root / "storage"),
            "IndexDirectory": str(root / "storage"),
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            "HttpServerEnabled": True,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowEcho": True,
            "StorageCompression": False,
            "Plugins": [],
            "ConcurrentJobs": 1,
            "StableAge": 1,
            "DicomScpTimeout": 30,
        }
        if dicomweb:
            if not DICOMWEB_PLUGIN.exists():
                missing(f"Orthanc DICOMweb plugin {DICOMWEB_PLUGIN} (Debian orthanc-dicomweb; "
                        "install with scripts/install-system-deps.sh)")
            config["Plugins"] = [str(DICOMWEB_PLUGIN)]
            config["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/",
                                  "EnableWado": True, "StudiesMetadata": "Full",
                                  "SeriesMetadata": "Full"}
        config.update(extra)  # e.g. DicomModalities for C-MOVE destinations
        self.config_path.write_text(json.dumps(config, indent=2))

    @property
    def url(self) -> str:
        """Base URL of the REST API."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        """Base URL of the DICOMweb service (with ``dicomweb=True``)."""
        return f"{self.url}/dicom-web"

    @property
    def destination(self) -> str:
        """``AE@host:port`` for ``SRSERVICE_DESTINATIONS``."""
        return f"{self.aet}@127.0.0.1:{self.dicom_port}"

    def start(self, timeout: float = 30.0) -> OrthancServer:
        """Start Orthanc and wait until ``/system`` answers."""
        exe = find_orthanc()
        log = (self.root / "orthanc.log").open("ab")
        self.proc = subprocess.Popen([exe, str(self.config_path)], stdout=log, stderr=log,
                                     cwd=self.root)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.proc.returncode}; see "
                                   f"{self.root / 'orthanc.log'}")
            try:
                self.get("/system")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.2)
        self.stop()
        raise TimeoutError("Orthanc did not answer /system in time")

    def stop(self) -> None:
        """Stop Orthanc (SIGTERM, then SIGKILL)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def get(self, path: str) -> Any:
        """GET a REST resource as JSON."""
        with urllib.request.urlopen(self.url + path, timeout=10) as resp:
            return json.loads(resp.read())

    def get_bytes(self, path: str) -> bytes:
        """GET a REST resource as bytes (e.g. ``/instances/{id}/file``)."""
        with urllib.request.urlopen(self.url + path, timeout=30) as resp:
            data: bytes = resp.read()
            return data

    def upload(self, data: bytes) -> str:
        """POST a DICOM file to ``/instances``; return Orthanc's instance id."""
        request = urllib.request.Request(self.url + "/instances", data=data, method="POST",
                                         headers={"Content-Type": "application/dicom"})
        with urllib.request.urlopen(request, timeout=30) as resp:
            return str(json.loads(resp.read())["ID"])

    def instances(self) -> list[dict[str, Any]]:
        """Every stored instance with its simplified tags (plus ``ID``)."""
        out = []
        for iid in self.get("/instances"):
            tags = dict(self.get(f"/instances/{iid}/simplified-tags"))
            tags["ID"] = iid
            out.append(tags)
        return out

    def wait_for(self, predicate: Any, timeout: float, what: str) -> list[dict[str, Any]]:
        """Poll :meth:`instances` until ``predicate(instances)`` is true; return them."""
        deadline = time.monotonic() + timeout
        found: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            try:
                found = self.instances()
            except (urllib.error.URLError, OSError):
                found = []
            if predicate(found):
                return found
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}; Orthanc has "
                             f"{[(i.get('Modality'), i.get('SOPInstanceUID')) for i in found]}")
