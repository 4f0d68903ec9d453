"""Helpers for the listener tests: synthetic IVUS-like datasets, settings, a recording callback.

Datasets are built here with pydicom so the tests do not depend on the phantom module.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from srservice.config import Settings, load_settings
from srservice.store import StoredInstance

US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def make_dataset(*, frames: int = 3, rows: int = 32, cols: int = 32,
                 sop_class_uid: str = US_MULTIFRAME, sop_instance_uid: str | None = None,
                 seed: int = 0, pixel_bytes: bytes | None = None) -> Dataset:
    """Return a small multi-frame 8-bit greyscale dataset with file meta (explicit VR LE)."""
    rng = np.random.default_rng(seed)
    ds = Dataset()
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid or generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "SECRET^PATIENT"
    ds.PatientID = "PID-SECRET-42"
    ds.Modality = "IVUS" if sop_class_uid == US_MULTIFRAME else "CT"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if frames > 1 or sop_class_uid == US_MULTIFRAME:
        ds.NumberOfFrames = frames
    if pixel_bytes is None:
        pixel_bytes = rng.integers(0, 255, size=frames * rows * cols, dtype=np.uint8).tobytes()
    ds.PixelData = pixel_bytes
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(ds.SOPInstanceUID)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


def write_dataset(ds: Dataset, path: Path) -> Path:
    """Write ``ds`` as a Part 10 file."""
    ds.save_as(path, enforce_file_format=True)
    return path


def dataset_bytes(path: Path) -> bytes:
    """Return the data set bytes of a Part 10 file (everything after group 0002)."""
    data = path.read_bytes()
    assert data[128:132] == b"DICM"
    group_length = int.from_bytes(data[140:144], "little")
    return data[144 + group_length:]


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    """Listener settings on 127.0.0.1, any free port, a private data dir, small timeouts."""
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data", "host": "127.0.0.1", "port": 0,
        "min_free_disk_mb": 1, "acse_timeout": 10.0, "dimse_timeout": 30.0,
        "network_timeout": 30.0,
    }
    values.update(overrides)
    return load_settings(**values)


class Recorder:
    """on_stored callback recording calls; optionally raising a given exception."""

    def __init__(self, raise_exc: BaseException | None = None) -> None:
        self.calls: list[StoredInstance] = []
        self.raise_exc = raise_exc
        self._lock = threading.Lock()

    def __call__(self, instance: StoredInstance) -> None:
        with self._lock:
            self.calls.append(instance)
        if self.raise_exc is not None:
            raise self.raise_exc


def spool_files(settings: Settings) -> list[Path]:
    """Every final .dcm file in the spool (not tmp/incoming)."""
    root = settings.spool_dir
    return sorted(p for p in root.glob("*/*.dcm") if p.parent.name not in {"tmp", "incoming"})


def leftovers(settings: Settings) -> list[Path]:
    """Files in the spool's tmp and incoming directories."""
    out: list[Path] = []
    for name in ("tmp", "incoming"):
        d = settings.spool_dir / name
        if d.is_dir():
            out.extend(d.iterdir())
    return out


def rss_peak_kb(pid: int) -> int:
    """Peak resident set size (VmHWM) of a process in kB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until true or the deadline passes."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


