"""Write phantom pullbacks as DICOM Ultrasound Multi-frame Images (Modality IVUS).

The dataset follows the Ultrasound Multi-frame Image IOD (PS3.3 A.7): Patient, General Study,
General Series, General Equipment, General Image, Image Pixel, Cine (C.7.6.5), Multi-frame
(C.7.6.6), US Region Calibration (C.8.5.5: Sequence of Ultrasound Regions with Physical Delta
X/Y in cm, units code 3, and Reference Pixel X0/Y0 = catheter centre), US Image (C.8.5.6 with
the IVUS attributes: IVUS Acquisition, IVUS Pullback Rate in mm/s, IVUS Gated Rate in mm/beat,
IVUS Pullback Start/Stop Frame Number) and SOP Common. Patient and study are obviously fake
("PHANTOM^IVUS"), and Image Comments say it is synthetic (Synthetic Data (0008,001C) is
not known to the dicom3tools release used in CI). Encapsulated transfer syntaxes follow
PS3.5 A.4 (one fragment per frame, basic offset table).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import imagecodecs
import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
    UltrasoundMultiFrameImageStorage,
    generate_uid,
)

from srservice.phantom.case import PhantomCase

if TYPE_CHECKING:
    from srservice.phantom.realistic_suite import RealisticCase

#: Short names accepted for ``transfer_syntax``.
TRANSFER_SYNTAXES: dict[str, UID] = {
    "explicit": ExplicitVRLittleEndian,
    "implicit": ImplicitVRLittleEndian,
    "jpeg_baseline": JPEGBaseline8Bit,
    "jpeg_lossless": JPEGLosslessSV1,
    "jpegls": JPEGLSLossless,
    "j2k": JPEG2000Lossless,
    "rle": RLELossless,
}
_NATIVE = {ExplicitVRLittleEndian, ImplicitVRLittleEndian}


def _resolve_ts(ts: str) -> UID:
    if ts in TRANSFER_SYNTAXES:
        return TRANSFER_SYNTAXES[ts]
    for uid in TRANSFER_SYNTAXES.values():
        if ts == str(uid):
            return uid
    raise ValueError(f"transfer_syntax must be one of {sorted(TRANSFER_SYNTAXES)}, not {ts!r}")


def _pixels(
    case: PhantomCase, photometric: str, bits: int
) -> tuple[npt.NDArray[np.uint8] | npt.NDArray[np.uint16], int]:
    """Return (pixel array, samples per pixel) for the requested representation."""
    if photometric in {"RGB", "YBR_FULL_422"}:
        arr = case.frames if case.is_rgb else np.repeat(case.frames[..., None], 3, axis=3)
        spp = 3
    elif photometric in {"MONOCHROME2", "MONOCHROME1"}:
        arr = case.grey_frames()
        if photometric == "MONOCHROME1":
            arr = (255 - arr).astype(np.uint8)
        spp = 1
    else:
        raise ValueError(f"photometric must be MONOCHROME1/2, RGB or YBR_FULL_422: {photometric!r}")
    if bits == 16:
        if spp != 1:
            raise ValueError("16-bit export is greyscale only")
        return (arr.astype(np.uint16) * 16 + 8).astype(np.uint16), spp  # 12 bits stored
    if bits != 8:
        raise ValueError("bits must be 8 or 16")
    return np.ascontiguousarray(arr), spp


def build_dataset(
    case: PhantomCase,
    *,
    transfer_syntax: str = "explicit",
    photometric: str | None = None,
    bits: int = 8,
    gated: bool | None = None,
    spacing_source: str = "regions",
    rate_source: str = "frame_time",
    patient_id: str = "PHANTOM0001",
    patient_name: str = "PHANTOM^IVUS",
    study_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
) -> Dataset:
    """Return the DICOM dataset (with file meta) for ``case``; no file IO.

    Parameters
    ----------
    transfer_syntax : str
        Short name (see :data:`TRANSFER_SYNTAXES`) or UID.
    photometric : str or None
        ``MONOCHROME2`` (default for grey), ``MONOCHROME1`` (inverted; not allowed by the US
        Image Module, PS3.3 C.8.5.6.1.2, written for loader tests), ``RGB`` (default for
        colour) or ``YBR_FULL_422`` (JPEG Baseline colour; default there).
    bits : int
        8, or 16 (12 bits stored, greyscale).
    gated : bool or None
        Write a GATED_PULLBACK (default: ``case.spec.gated``).
    spacing_source : str
        ``regions`` (Sequence of Ultrasound Regions), ``pixel_spacing`` (Pixel Spacing) or ``none``.
    rate_source : str
        ``frame_time``, ``frame_time_vector``, ``cine_rate`` or ``none`` (no timing and no
        pullback rate).
    """
    ts = _resolve_ts(transfer_syntax)
    if photometric is None:
        if case.is_rgb:
            photometric = "YBR_FULL_422" if ts == JPEGBaseline8Bit else "RGB"
        else:
            photometric = "MONOCHROME2"
    if photometric == "YBR_FULL_422" and ts != JPEGBaseline8Bit:
        raise ValueError("YBR_FULL_422 is written only with JPEG Baseline")
    if photometric == "RGB" and ts == JPEGBaseline8Bit:
        raise ValueError("colour JPEG Baseline is written as YBR_FULL_422, not RGB")
    if bits == 16 and ts in {JPEGBaseline8Bit, JPEGLosslessSV1}:
        raise ValueError("16-bit export supports native, RLE, JPEG-LS and JPEG 2000 only")
    arr, spp = _pixels(case, photometric, bits)
    spec = case.spec
    is_gated = spec.gated if gated is None else gated
    n, rows, cols = arr.shape[0], arr.shape[1], arr.shape[2]
    sop_uid = UID(sop_instance_uid) if sop_instance_uid else generate_uid()

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundMultiFrameImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = UID(ts)
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = UltrasoundMultiFrameImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = "20240101"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = ds.AcquisitionTime = "120000"
    ds.AccessionNumber = ""
    ds.Modality = "IVUS"
    ds.Manufacturer = "srservice phantom"
    ds.ManufacturerModelName = "IVUS phantom"
    ds.SoftwareVersions = "1"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "IVUS phantom"
    ds.SeriesDescription = f"phantom {spec.name}"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.ImageComments = "SYNTHETIC IVUS PHANTOM - NOT A PATIENT"
    ds.Laterality = ""
    # Synchronization module (C.7.4.2): dciodvfy requires it for US multi-frame images.
    ds.SynchronizationFrameOfReferenceUID = generate_uid()
    ds.SynchronizationTrigger = "NO TRIGGER"
    ds.AcquisitionTimeSynchronized = "N"
    ds.AcquisitionDateTime = "20240101120000"
    ds.StudyInstanceUID = study_instance_uid or generate_uid()
    ds.SeriesInstanceUID = series_instance_uid or generate_uid()
    ds.StudyID = "PHANTOM"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.PatientOrientation = ""
    ds.BurnedInAnnotation = "NO" if spec.overlays == "none" else "YES"
    ds.TransducerFrequency = int(spec.frequency_mhz * 1000)  # kHz (UL), Table C.8-17
    # Image Pixel / US Image.
    ds.SamplesPerPixel = spp
    ds.PhotometricInterpretation = photometric
    if spp == 3:
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated = bits
    ds.BitsStored = 8 if bits == 8 else 12
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = n
    ds.LossyImageCompression = "00"
    # Timing (Cine module) and IVUS pullback attributes (PS3.3 C.8.5.6.1.19-21).
    ft = spec.frame_time_ms
    if rate_source == "frame_time":
        ds.FrameTime = f"{ft:.4f}"
        ds.FrameIncrementPointer = Tag("FrameTime")
        ds.CineRate = round(1000.0 / ft)
    elif rate_source == "frame_time_vector":
        ds.FrameTimeVector = [0.0] + [round(ft, 4)] * (n - 1)
        ds.FrameIncrementPointer = Tag("FrameTimeVector")
    elif rate_source == "cine_rate":
        ds.CineRate = round(1000.0 / ft)
        ds.FrameIncrementPointer = Tag("FrameTime")
    elif rate_source != "none":
        raise ValueError("rate_source must be frame_time, frame_time_vector, cine_rate or none")
    else:
        ds.FrameIncrementPointer = Tag("FrameTime")
    if rate_source != "none":
        ds.IVUSAcquisition = "GATED_PULLBACK" if is_gated else "MOTOR_PULLBACK"
        if is_gated:
            ds.IVUSGatedRate = f"{case.frame_spacing_mm:.6g}"  # mm per beat
        else:
            ds.IVUSPullbackRate = f"{spec.pullback_rate_mm_s:.6g}"
        ds.IVUSPullbackStartFrameNumber = 1
        ds.IVUSPullbackStopFrameNumber = n
    # Spatial calibration.
    cx, cy = case.catheter_center
    if spacing_source == "regions":
        reg = Dataset()
        reg.RegionSpatialFormat = 1  # 2D (tissue), C.8.5.5.1.1
        reg.RegionDataType = 1  # tissue, C.8.5.5.1.2
        reg.RegionFlags = 0
        reg.RegionLocationMinX0 = 0
        reg.RegionLocationMinY0 = 0
        reg.RegionLocationMaxX1 = cols - 1
        reg.RegionLocationMaxY1 = rows - 1
        reg.ReferencePixelX0 = round(cx)
        reg.ReferencePixelY0 = round(cy)
        reg.PhysicalUnitsXDirection = 3  # cm, C.8.5.5.1.15
        reg.PhysicalUnitsYDirection = 3
        reg.ReferencePixelPhysicalValueX = 0.0
        reg.ReferencePixelPhysicalValueY = 0.0
        reg.PhysicalDeltaX = case.pixel_spacing_mm / 10.0
        reg.PhysicalDeltaY = case.pixel_spacing_mm / 10.0
        reg.TransducerFrequency = int(spec.frequency_mhz * 1000)
        ds.SequenceOfUltrasoundRegions = Sequence([reg])
    elif spacing_source == "pixel_spacing":
        ds.PixelSpacing = [f"{case.pixel_spacing_mm:.6g}"] * 2
    elif spacing_source != "none":
        raise ValueError("spacing_source must be regions, pixel_spacing or none")
    _set_pixel_data(ds, arr, ts, photometric)
    return ds


def _set_pixel_data(
    ds: Dataset, arr: npt.NDArray[np.uint8] | npt.NDArray[np.uint16], ts: UID, photometric: str
) -> None:
    if ts in _NATIVE:
        ds.PixelData = arr.tobytes()
        ds["PixelData"].VR = "OW" if arr.dtype == np.uint16 else "OB"
        return
    if ts in {JPEGLSLossless, JPEG2000Lossless, RLELossless}:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.compress(ts, arr, generate_instance_uid=False)
        return
    frames: list[bytes] = []
    for f in arr:
        if ts == JPEGBaseline8Bit:
            if photometric == "YBR_FULL_422":
                b = imagecodecs.jpeg8_encode(
                    f, level=92, colorspace="RGB", outcolorspace="YCbCr", subsampling="422"
                )
            else:
                b = imagecodecs.jpeg8_encode(f, level=92)
        else:  # JPEG Lossless, Non-Hierarchical, First-Order Prediction (SV1)
            if f.ndim == 3:
                b = imagecodecs.jpeg8_encode(
                    f, lossless=True, predictor=1, colorspace="RGB", outcolorspace="RGB"
                )
            else:
                b = imagecodecs.jpeg8_encode(f, lossless=True, predictor=1)
        frames.append(bytes(b))
    ds.PixelData = encapsulate(frames, has_bot=True)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    if ts == JPEGBaseline8Bit:
        raw = arr.nbytes
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionRatio = f"{raw / max(1, sum(len(b) for b in frames)):.2f}"
        ds.LossyImageCompressionMethod = "ISO_10918_1"


def write_pullback(case: PhantomCase, path: str | os.PathLike[str], **kwargs: object) -> Path:
    """Write ``case`` to ``path`` atomically (temp file, fsync, ``os.replace``).

    Keyword arguments are those of :func:`build_dataset`. Returns the final path.
    """
    ds = build_dataset(case, **kwargs)  # type: ignore[arg-type]
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".dcm", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            ds.save_as(fh, enforce_file_format=True)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(dest.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return dest


def write_realistic_case(rc: RealisticCase, out_dir: str | os.PathLike[str]
                         ) -> tuple[Path, Path, dict[str, Any]]:
    """Write a realistic case as ``NAME.dcm`` plus ``NAME.truth.json`` into ``out_dir``.

    JPEG Baseline for the cases that ask for it (as consoles export), explicit little endian
    otherwise. Both files are written atomically. Returns (DICOM path, truth path, truth).
    """
    from srservice.phantom.realistic_suite import truth_document

    out = Path(out_dir)
    ts = "jpeg_baseline" if rc.spec.jpeg else "explicit"
    dcm = write_pullback(rc.case, out / f"{rc.name}.dcm", transfer_syntax=ts)
    doc = truth_document(rc, dcm.name, str(TRANSFER_SYNTAXES[ts]))
    truth = out / f"{rc.name}.truth.json"
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=out)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=1, allow_nan=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, truth)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dcm, truth, doc
