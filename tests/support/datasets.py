"""Small hand-made DICOM datasets (pydicom only), so the tests do not depend on the phantom."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    UltrasoundMultiFrameImageStorage,
    generate_uid,
)

US_MULTIFRAME = UltrasoundMultiFrameImageStorage
CT_IMAGE = CTImageStorage
SECONDARY_CAPTURE = SecondaryCaptureImageStorage


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


def small_image(sop_class: str, modality: str, sop_uid: str | None = None) -> Dataset:
    """A tiny valid 8-bit image of ``sop_class`` (hand-made with pydicom)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid or generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientID, ds.PatientName = modality, "E2E", "E2E^Test"
    ds.Rows = ds.Columns = 16
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    if sop_class == US_MULTIFRAME:
        ds.NumberOfFrames = 2
        ds.FrameIncrementPointer = 0x00181063
        ds.FrameTime = 33.3
        ds.PixelData = np.zeros((2, 16, 16), np.uint8).tobytes()
    else:
        ds.PixelData = np.zeros((16, 16), np.uint8).tobytes()
    return ds
