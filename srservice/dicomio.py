"""The project's only DICOM pixel reader: IVUS pullback -> :class:`Pullback`.

:func:`load_pullback` reads one instance; :func:`load_series` assembles a series of
single-frame instances into one pullback.

Accepts the classes of :data:`srservice.sopclasses.ANALYSED` (Ultrasound Multi-frame Image
Storage, Ultrasound Image Storage with one frame, and their retired predecessors) in every
transfer syntax pydicom 3 can decode with the installed plugins (native, RLE, JPEG
Baseline/Lossless, JPEG-LS, JPEG 2000).

- Grey output: MONOCHROME1 is inverted; RGB / YBR are converted to RGB by pydicom and then to
  luma (ITU-R BT.601: 0.299 R + 0.587 G + 0.114 B); more than 8 bits stored are scaled to 8
  bits by Bits Stored (or by the actual range when the data use less than a quarter of it).
- Pixel spacing: Sequence of Ultrasound Regions (PS3.3 C.8.5.5), the 2D tissue region that
  contains the image centre, Physical Delta X/Y with Physical Units code 3 (cm) -> mm; fallback
  Pixel Spacing (0028,0030) or Imager Pixel Spacing (0018,1164). Catheter centre from the
  region's Reference Pixel X0/Y0 (relative to Region Location Min X0/Y0, C.8.5.5.1.8).
- Frame spacing: IVUS Pullback Rate (0018,3101, mm/s, PS3.3 C.8.5.6.1.20) x frame interval
  from Frame Time (0018,1063, ms), the Frame Time Vector (0018,1065, mean increment) or Cine
  Rate (0018,0040, frames/s). Gated pullbacks (IVUS Acquisition GATED_PULLBACK, C.8.5.6.1.19):
  one frame per beat, frame spacing = IVUS Gated Rate (0018,3102) in mm/beat (C.8.5.6.1.21).
- Bounded reading (:class:`srservice.dicomheader.ReadLimits`): the header before Pixel Data is
  size- and element-checked by streaming before pydicom parses it; every compressed frame's
  own header (JPEG SOF, JPEG-LS SOF55, JPEG 2000 SIZ, RLE segment table,
  :mod:`srservice.codestreams`) is read and compared with Rows/Columns/Samples per Pixel before
  any frame is decoded; frames are decoded one at a time, 16-bit frames twice (range, then
  result) when their 16-bit copy would not fit the per-job memory budget
  (``decode_memory_budget_mb``), and a pullback whose decoded pixels (8-bit result, one frame
  in flight) still need more is refused before decoding.
- Missing spacing is not an error: None plus a note, or the caller's site default plus a note.
- Everything else that cannot be used raises :class:`InvalidDicomError` with one clear line.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.errors import InvalidDicomError as PydicomInvalidDicomError
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.utils import iter_pixels
from pydicom.uid import UID

from srservice import sopclasses
from srservice.analysis.types import Pullback
from srservice.codestreams import check_frame
from srservice.dicomheader import ReadLimits, check_file_header
from srservice.errors import InvalidDicomError

#: Sanity limits against absurd headers.
MAX_FRAMES = 20000
MAX_DIMENSION = 4096
#: Plausible pixel and frame spacings (mm).
PIXEL_SPACING_RANGE = (0.001, 1.0)
FRAME_SPACING_RANGE = (0.001, 5.0)


@dataclass(frozen=True)
class LoadedPullback:
    """A decoded pullback plus the header (without Pixel Data) for the reports.

    For a pullback assembled from a series of single-frame instances (:func:`load_series`),
    ``header`` / ``sop_instance_uid`` are those of the first instance,
    ``frame_sop_instance_uids[i]`` is the SOP Instance UID of the instance
    holding frame ``i + 1`` and ``frame_headers[i]`` its header (without Pixel Data), so
    reports reference a frame's own instance (PS3.3 C.18.3: no Referenced Frame Number for a
    single-frame SOP class). Both are empty for a (multi-frame) single instance.
    """

    pullback: Pullback
    header: Dataset
    sop_instance_uid: str
    frame_sop_instance_uids: tuple[str, ...] = ()
    frame_headers: tuple[Dataset, ...] = ()


def _fail(msg: str) -> InvalidDicomError:
    return InvalidDicomError(" ".join(msg.split()))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def _parse_all(ds: Dataset) -> None:
    """Convert every element value now, recursing into sequences (Pixel Data excepted).

    pydicom converts raw values lazily on first access, so a bad VR or a value length that
    is not a multiple of the VR's size (PS3.5 6.2) would otherwise raise later, anywhere.
    """
    for tag in list(ds.keys()):  # keys only: iterating would convert Pixel Data
        if tag >> 16 != 0x7FE0:
            elem = ds[tag]
            if elem.VR == "SQ":
                for item in elem.value:
                    _parse_all(item)


def _read(source: str | os.PathLike[str] | Dataset,
          limits: ReadLimits) -> tuple[Dataset, Path | None]:
    if isinstance(source, Dataset):
        try:
            _parse_all(source)
            meta = getattr(source, "file_meta", None)
            if meta is not None:
                _parse_all(meta)
        except Exception as exc:  # bad VR / value length in a lazily converted element
            raise _fail(f"malformed DICOM data set: {_first_line(exc)}") from exc
        return source, None
    path = Path(source)
    if not path.is_file():
        raise _fail(f"not a file: {path.name}")
    try:
        with path.open("rb") as fh:
            check_file_header(fh, limits)
    except InvalidDicomError:
        raise
    except OSError as exc:
        raise _fail(f"cannot read {path.name}: {exc.strerror or exc}") from exc
    try:
        ds = pydicom.dcmread(path, defer_size=1024 * 1024)
        _parse_all(ds)
        _parse_all(ds.file_meta)
    except PydicomInvalidDicomError as exc:
        raise _fail(f"not a DICOM file ({_first_line(exc)})") from exc
    except Exception as exc:  # pydicom raises many types on truncated/garbled input
        raise _fail(f"cannot parse DICOM file (truncated or corrupt): {_first_line(exc)}") from exc
    return ds, path


def _int(ds: Dataset, keyword: str, default: int | None = None) -> int:
    value = ds.get(keyword, default)
    if value is None or value == "":
        if default is None:
            raise _fail(f"missing {keyword}")
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise _fail(f"{keyword} is not an integer: {value!r}") from exc


def _float(value: object) -> float | None:
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


def decode_memory_needed(frames: int, rows: int, cols: int, spp: int, bits: int, *,
                         keep_wide: bool = True) -> int:
    """Bytes of decoded pixels a pullback needs at the peak of :func:`load_pullback`.

    The 8-bit grey result (frames x rows x cols), the 16-bit copy kept for range scaling when
    Bits Allocated is 16 and Samples per Pixel 1 (unless ``keep_wide`` is False: the frames
    are then decoded twice, once for the range and once for the result), and one frame in
    flight: the decoder's output, its RGB conversion and a float64 grey frame.
    """
    pixels = frames * rows * cols
    result = pixels
    wide = 2 * pixels if bits == 16 and spp == 1 and keep_wide else 0
    in_flight = rows * cols * (2 * spp * (bits // 8) + 4 * spp + 8)
    return result + wide + in_flight


def _check_geometry(ds: Dataset, ts: UID, path: Path | None,
                    limits: ReadLimits) -> tuple[int, int, int, int, int, bool]:
    """Validate the pixel description; return (frames, rows, cols, samples, bits, keep_wide).

    ``keep_wide`` is False when 16-bit data fit the decode memory budget only if decoded
    twice instead of kept as a 16-bit copy.
    """
    if "PixelData" not in ds:
        raise _fail("no Pixel Data (7FE0,0010)")
    rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
    spp = _int(ds, "SamplesPerPixel", 1)
    bits = _int(ds, "BitsAllocated")
    frames = _int(ds, "NumberOfFrames", 1)
    if not (1 <= frames <= MAX_FRAMES):
        raise _fail(f"absurd Number of Frames {frames} (allowed 1-{MAX_FRAMES})")
    if not (1 <= rows <= MAX_DIMENSION and 1 <= cols <= MAX_DIMENSION):
        raise _fail(f"absurd image size {rows} x {cols} (max {MAX_DIMENSION})")
    if spp not in (1, 3) or bits not in (8, 16):
        raise _fail(
            f"unsupported Samples per Pixel {spp} / Bits Allocated {bits} (1 or 3 / 8 or 16)"
        )
    expected = rows * cols * spp * frames * bits // 8
    needed = decode_memory_needed(frames, rows, cols, spp, bits)
    keep_wide = needed <= limits.decode_memory_budget
    if not keep_wide:
        needed = decode_memory_needed(frames, rows, cols, spp, bits, keep_wide=False)
    if needed > limits.decode_memory_budget:
        raise _fail(f"decoding {frames} frames of {rows} x {cols} x {spp} needs "
                    f"{needed // 2**20} MiB, more than the per-job budget of "
                    f"{limits.decode_memory_budget // 2**20} MiB (decode_memory_budget_mb)")
    if not ts.is_compressed:
        elem = ds.get_item("PixelData", keep_deferred=True)
        length = int(getattr(elem, "length", 0) or 0) if elem is not None else 0
        if elem is not None and getattr(elem, "value", None) is not None:
            length = len(elem.value)
        if length not in (expected, expected + 1):
            raise _fail(
                f"Pixel Data length {length} does not match Rows x Columns x Frames x Samples x "
                f"bytes = {rows} x {cols} x {frames} x {spp} x {bits // 8} = {expected}"
            )
        tell = getattr(elem, "value_tell", None)
        if path is not None and tell is not None and tell + expected > path.stat().st_size:
            raise _fail("file is truncated inside Pixel Data")
    return frames, rows, cols, spp, bits, keep_wide


def _to_grey8(
    frame: npt.NDArray[np.generic], photometric: str, spp: int, bits: int, bits_stored: int,
    signed: bool,
) -> npt.NDArray[np.float64] | npt.NDArray[np.uint8]:
    """One decoded frame -> grey (uint8 for 8-bit data, float for wider data)."""
    if spp == 3:
        f = frame.astype(np.float32)
        y = 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]
        luma: npt.NDArray[np.uint8] = np.clip(y + 0.5, 0, 255).astype(np.uint8)
        return luma
    a = frame
    if signed:
        a = a.astype(np.int32) + (1 << (bits_stored - 1))
    if photometric == "MONOCHROME1":
        a = ((1 << bits_stored) - 1) - a.astype(np.int64)
    if bits == 8 and not signed:
        return np.asarray(a, dtype=np.uint8)
    wide: npt.NDArray[np.float64] = np.asarray(a, dtype=np.float64)
    return wide


def _native_frames(
    ds: Dataset, path: Path | None, frames: int, rows: int, cols: int, spp: int, bits: int
) -> Iterator[npt.NDArray[np.generic]] | None:
    """Read native little-endian frames straight from the file, one at a time.

    Keeps peak memory at about the decoded size (pydicom would read the whole Pixel Data
    element first). Returns None when this fast path does not apply.
    """
    ts = UID(str(ds.file_meta.get("TransferSyntaxUID", ""))) if hasattr(ds, "file_meta") else None
    elem = ds.get_item("PixelData", keep_deferred=True)
    tell = getattr(elem, "value_tell", None)
    if (
        path is None or ts is None or ts.is_compressed or not ts.is_little_endian
        or tell is None or getattr(elem, "value", None) is not None
    ):
        return None
    signed = _int(ds, "PixelRepresentation", 0) == 1
    dtype = np.dtype(("<i" if signed else "<u") + ("1" if bits == 8 else "2"))
    count = rows * cols * spp
    planar = spp == 3 and _int(ds, "PlanarConfiguration", 0) == 1

    def gen() -> Iterator[npt.NDArray[np.generic]]:
        with open(path, "rb") as fh:
            for i in range(frames):
                a = np.fromfile(fh, dtype=dtype, count=count, offset=tell if i == 0 else 0)
                if a.size != count:
                    raise _fail("file is truncated inside Pixel Data")
                if spp == 1:
                    yield a.reshape(rows, cols)
                elif planar:
                    yield np.moveaxis(a.reshape(3, rows, cols), 0, -1)
                else:
                    yield a.reshape(rows, cols, 3)

    return gen()


#: Decoder plugins in order of preference. python-gdcm is last: on some corrupt JPEG Baseline
#: streams it raises an uncaught C++ exception that aborts the whole process (reliability
#: finding R5 in docs/reliability.md), where pylibjpeg and Pillow raise ordinary Python errors.
_PLUGIN_PREFERENCE = ("pylibjpeg", "pydicom", "pillow", "pyjpegls", "gdcm")


def _decoder_choice(ds: Dataset) -> str:
    """Return the safest available decoder plugin for ``ds`` ("" lets pydicom choose)."""
    ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if ts is None or not UID(str(ts)).is_compressed:
        return ""
    try:
        available = get_decoder(UID(str(ts))).available_plugins
    except (NotImplementedError, ValueError):
        return ""
    return next((name for name in _PLUGIN_PREFERENCE if name in available), "")


def _check_frame_headers(ds: Dataset, path: Path | None, ts: UID, frames: int, rows: int,
                         cols: int, spp: int, bits: int) -> None:
    """Read every encapsulated frame's own header before anything is decoded.

    One frame's compressed bytes are in memory at a time (read from the file when Pixel Data
    was deferred). Raises :class:`InvalidDicomError` naming the frame and the header field.
    """
    if not ts.is_encapsulated:
        return
    elem = ds.get_item("PixelData", keep_deferred=True)
    if elem is None:
        return
    value = getattr(elem, "value", None)
    tell = getattr(elem, "value_tell", None)
    n = 0

    def check_all(buffer: object) -> int:
        count = 0
        for count, data in enumerate(
                generate_frames(buffer, number_of_frames=frames), start=1):  # type: ignore[arg-type]
            if count > frames:
                break
            try:
                check_frame(str(ts), data, count, rows=rows, columns=cols, samples=spp,
                            bits_allocated=bits)
            except InvalidDicomError as exc:
                raise _fail(f"cannot decode Pixel Data ({ts.name}): {exc}") from exc
        return count

    try:
        if value is not None:
            n = check_all(value)
        elif path is not None and tell is not None:
            with path.open("rb") as fh:
                fh.seek(tell)
                n = check_all(fh)
        else:
            return
    except InvalidDicomError:
        raise
    except Exception as exc:  # malformed items / offset tables
        raise _fail(f"encapsulated Pixel Data cannot be split into frames: "
                    f"{_first_line(exc)}") from exc
    if n < frames:
        raise _fail(f"encapsulated Pixel Data holds {n} frames, Number of Frames says {frames}")


def _decode(
    ds: Dataset, path: Path | None, frames: int, rows: int, cols: int, spp: int, bits: int,
    notes: list[str], keep_wide: bool = True,
) -> npt.NDArray[np.uint8]:
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    if spp == 1 and photometric not in {"MONOCHROME1", "MONOCHROME2"}:
        raise _fail(f"unsupported Photometric Interpretation {photometric} for one sample")
    bits_stored = _int(ds, "BitsStored", bits)
    if not 1 <= bits_stored <= bits:
        raise _fail(f"Bits Stored {bits_stored} is not within 1..{bits}")
    signed = _int(ds, "PixelRepresentation", 0) == 1
    src: str | Dataset = str(path) if path is not None else ds
    ts_uid = UID(str(ds.file_meta.get("TransferSyntaxUID", ""))) if hasattr(ds, "file_meta") \
        else UID("")
    _check_frame_headers(ds, path, ts_uid, frames, rows, cols, spp, bits)

    def grey_frames() -> Iterator[npt.NDArray[np.float64] | npt.NDArray[np.uint8]]:
        """Decode frame by frame (one frame in flight); check shape and count."""
        n = 0
        try:
            frame_iter = _native_frames(ds, path, frames, rows, cols, spp, bits)
            if frame_iter is None:
                frame_iter = iter_pixels(src, as_rgb=True,
                                         decoding_plugin=_decoder_choice(ds))
            for i, frame in enumerate(frame_iter):
                if i >= frames:
                    break
                if frame.shape[:2] != (rows, cols):
                    raise _fail(f"frame {i + 1} decodes to {frame.shape}, expected "
                                f"{rows} x {cols}")
                n += 1
                yield _to_grey8(frame, photometric, spp, bits, bits_stored, signed)
        except InvalidDicomError:
            raise
        except Exception as exc:  # decoders raise many types on corrupt data
            raise _fail(f"cannot decode Pixel Data ({ts_uid.name}): "
                        f"{_first_line(exc)}") from exc
        if n != frames:
            raise _fail(f"Pixel Data holds {n} frames, Number of Frames says {frames}")

    out = np.empty((frames, rows, cols), dtype=np.uint8)
    if not (bits == 16 and spp == 1):
        for i, g in enumerate(grey_frames()):
            out[i] = g
        return out
    # 16-bit grey: scaling needs the whole range. Keep a 16-bit copy when it fits the
    # budget; otherwise decode twice (range, then result).
    wide: npt.NDArray[np.uint16] | None = None
    if keep_wide:
        wide = np.empty((frames, rows, cols), dtype=np.uint16)
        for i, g in enumerate(grey_frames()):
            wide[i] = np.clip(g, 0, 65535)
        top = float(wide.max()) if wide.size else 0.0
    else:
        top = 0.0
        for g in grey_frames():
            top = max(top, float(np.clip(g, 0, 65535).max()))
        notes.append("16-bit frames decoded twice to stay within the decode memory budget")
    full = float((1 << bits_stored) - 1)
    denom = full
    if 0 < top < full / 4.0:
        denom = top
        notes.append(f"{bits_stored}-bit data use 0-{top:.0f}; scaled by the actual range")
    frames_again = iter(wide) if wide is not None else grey_frames()
    for i, g in enumerate(frames_again):  # frame by frame: no full-size float temporary
        out[i] = np.clip(np.clip(g, 0, 65535) * (255.0 / denom) + 0.5, 0, 255).astype(np.uint8)
    return out


def _region_spacing(
    ds: Dataset, rows: int, cols: int, notes: list[str]
) -> tuple[float | None, tuple[float, float] | None]:
    regions = ds.get("SequenceOfUltrasoundRegions")
    if not regions:
        return None, None
    best: tuple[int, Dataset] | None = None
    cx, cy = (cols - 1) / 2.0, (rows - 1) / 2.0
    for reg in regions:
        if reg.get("RegionSpatialFormat") != 1:
            continue
        if reg.get("PhysicalUnitsXDirection") != 3 or reg.get("PhysicalUnitsYDirection") != 3:
            continue
        x0, y0 = reg.get("RegionLocationMinX0", 0), reg.get("RegionLocationMinY0", 0)
        x1, y1 = reg.get("RegionLocationMaxX1", cols - 1), reg.get("RegionLocationMaxY1", rows - 1)
        rank = (2 if x0 <= cx <= x1 and y0 <= cy <= y1 else 0) + (reg.get("RegionDataType") == 1)
        if best is None or rank > best[0]:
            best = (rank, reg)
    if best is None:
        notes.append("Sequence of Ultrasound Regions has no 2D region in cm; ignored")
        return None, None
    reg = best[1]
    dx, dy = _float(reg.get("PhysicalDeltaX")), _float(reg.get("PhysicalDeltaY"))
    spacing = None
    if dx and dy and dx > 0 and dy > 0:
        dx_mm, dy_mm = abs(dx) * 10.0, abs(dy) * 10.0
        if abs(dx_mm - dy_mm) > 0.01 * max(dx_mm, dy_mm):
            notes.append(f"anisotropic pixels {dx_mm:.4g} x {dy_mm:.4g} mm; using the mean")
        spacing = (dx_mm + dy_mm) / 2.0
    center = None
    if "ReferencePixelX0" in reg and "ReferencePixelY0" in reg:
        center = (
            float(reg.get("RegionLocationMinX0", 0)) + float(reg.ReferencePixelX0),
            float(reg.get("RegionLocationMinY0", 0)) + float(reg.ReferencePixelY0),
        )
        if not (0 <= center[0] < cols and 0 <= center[1] < rows):
            notes.append("Reference Pixel X0/Y0 outside the image; catheter centre unknown")
            center = None
    return spacing, center


def _pixel_spacing(
    ds: Dataset, rows: int, cols: int, default: float | None, notes: list[str]
) -> tuple[float | None, tuple[float, float] | None]:
    spacing, center = _region_spacing(ds, rows, cols, notes)
    if spacing is None:
        for kw in ("PixelSpacing", "ImagerPixelSpacing"):
            val = ds.get(kw)
            if val is not None and len(val) == 2:
                a, b = _float(val[0]), _float(val[1])
                if a and b:
                    spacing = (a + b) / 2.0
                    notes.append(f"pixel spacing from {kw} (no ultrasound region calibration)")
                    break
    lo, hi = PIXEL_SPACING_RANGE
    if spacing is not None and not lo <= spacing <= hi:
        notes.append(f"implausible pixel spacing {spacing:.4g} mm ignored")
        spacing = None
    if spacing is None:
        if default is not None:
            notes.append(f"pixel spacing unknown in the header; site default {default} mm used")
            return default, center
        notes.append("pixel spacing unknown (no ultrasound regions, Pixel Spacing or site "
                     "default): areas, diameters and depths not assessable")
    return spacing, center


def _frame_interval_s(ds: Dataset) -> tuple[float | None, str]:
    ft = _float(ds.get("FrameTime"))
    if ft and ft > 0:
        return ft / 1000.0, "Frame Time"
    ftv = ds.get("FrameTimeVector")
    if ftv is not None:
        items = list(ftv) if isinstance(ftv, list | pydicom.multival.MultiValue) else [ftv]
        vals = [v for v in (_float(x) for x in items) if v is not None]
        if len(vals) > 1 and vals[0] == 0:
            vals = vals[1:]
        if vals and float(np.mean(vals)) > 0:
            return float(np.mean(vals)) / 1000.0, "Frame Time Vector"
    cr = _float(ds.get("CineRate"))
    if cr and cr > 0:
        return 1.0 / cr, "Cine Rate"
    return None, ""


def _frame_spacing(ds: Dataset, default: float | None, notes: list[str]) -> float | None:
    acq = str(ds.get("IVUSAcquisition", "")).strip().upper()
    spacing: float | None = None
    if acq == "GATED_PULLBACK":
        gated = _float(ds.get("IVUSGatedRate"))
        if gated and gated > 0:
            spacing = gated
            notes.append("gated pullback: frame spacing = IVUS Gated Rate (mm/beat, C.8.5.6.1.21)")
        else:
            notes.append("gated pullback without IVUS Gated Rate")
    else:
        rate = _float(ds.get("IVUSPullbackRate"))
        interval, source = _frame_interval_s(ds)
        if rate and rate > 0 and interval:
            spacing = rate * interval
            if source != "Frame Time":
                notes.append(f"frame interval from {source}")
        elif not rate:
            notes.append("IVUS Pullback Rate (0018,3101) missing")
        else:
            notes.append("frame timing missing (Frame Time, Frame Time Vector, Cine Rate)")
    lo, hi = FRAME_SPACING_RANGE
    if spacing is not None and not lo <= spacing <= hi:
        notes.append(f"implausible frame spacing {spacing:.4g} mm ignored")
        spacing = None
    if spacing is None:
        if default is not None:
            notes.append(f"frame spacing unknown in the header; site default {default} mm used")
            return default
        notes.append("frame spacing unknown: lengths along the pullback not assessable")
    return spacing


def load_pullback(
    source: str | os.PathLike[str] | Dataset,
    *,
    default_pixel_spacing_mm: float | None = None,
    default_frame_spacing_mm: float | None = None,
    limits: ReadLimits | None = None,
) -> LoadedPullback:
    """Load an IVUS pullback (see the module docstring for the rules).

    Parameters
    ----------
    source : str, os.PathLike or pydicom.Dataset
        A DICOM file or an already-read dataset (with file meta).
    default_pixel_spacing_mm, default_frame_spacing_mm : float or None
        Site defaults used (with a note) when the header lacks the information.
    limits : ReadLimits, optional
        Header and decode memory limits (default: those of the default settings).

    Raises
    ------
    InvalidDicomError
        Not DICOM, truncated, no or inconsistent Pixel Data, absurd sizes, undecodable data,
        or a SOP class other than Ultrasound (Multi-frame) Image Storage.
    """
    try:
        return _load(source, default_pixel_spacing_mm, default_frame_spacing_mm,
                     limits or ReadLimits.defaults())
    except (InvalidDicomError, MemoryError):
        raise
    except Exception as exc:  # a value of an unexpected type deep in a malformed header
        raise _fail(f"malformed DICOM data set: {_first_line(exc)}") from exc


def _load(
    source: str | os.PathLike[str] | Dataset,
    default_pixel_spacing_mm: float | None,
    default_frame_spacing_mm: float | None,
    limits: ReadLimits,
) -> LoadedPullback:
    ds, path = _read(source, limits)
    notes: list[str] = []
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class not in sopclasses.ANALYSED:
        name = sopclasses.name(sop_class) if sop_class else "missing"
        raise _fail(f"unsupported SOP Class {name} ({sop_class}); expected Ultrasound "
                    "Multi-frame Image Storage or Ultrasound Image Storage")
    sop_uid = str(ds.get("SOPInstanceUID", "")).strip()
    if not sop_uid:
        raise _fail("missing SOP Instance UID")
    modality = str(ds.get("Modality", "")).strip()
    if modality != "IVUS":
        notes.append(f"Modality is {modality or 'missing'}, not IVUS; analysed as IVUS")
    meta = getattr(ds, "file_meta", None)
    ts_str = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if not ts_str:
        raise _fail("missing Transfer Syntax UID (file meta)")
    ts = UID(ts_str)
    if not ts.is_transfer_syntax:
        raise _fail(f"unknown Transfer Syntax UID {ts_str}")
    frames, rows, cols, spp, bits, keep_wide = _check_geometry(ds, ts, path, limits)
    pixels = _decode(ds, path, frames, rows, cols, spp, bits, notes, keep_wide)
    spacing, center = _pixel_spacing(ds, rows, cols, default_pixel_spacing_mm, notes)
    fspacing = _frame_spacing(ds, default_frame_spacing_mm, notes)
    header = Dataset()
    for tag in list(ds.keys()):  # keys only: iterating the dataset would read Pixel Data
        if tag.group != 0x7FE0:
            header.add(ds[tag])
    if meta is not None:
        header.file_meta = meta
    pullback = Pullback(
        frames=pixels, pixel_spacing_mm=spacing, frame_spacing_mm=fspacing,
        catheter_center=center, notes=tuple(notes),
    )
    return LoadedPullback(pullback=pullback, header=header, sop_instance_uid=sop_uid)


# --- a single-frame series as one pullback ---------------------------------------------------
# Some consoles send a pullback as a series of single-frame instances (Ultrasound Image
# Storage, one frame per instance). The frames are decoded one by one with load_pullback and
# stacked in Instance Number order (PS3.3 C.7.6.1.1.1; SOP Instance UID order breaks ties).
# Pixel spacing comes from the first instance; the frame spacing from the first instance that
# has one, else the site default. The report notes that the pullback was assembled from a
# series. The result keeps every instance's SOP Instance UID and header (without Pixel Data)
# in frame order, so the SR references each frame's own instance.


def _order(loaded: LoadedPullback) -> tuple[int, str]:
    number = loaded.header.get("InstanceNumber")
    try:
        value = int(number) if number not in (None, "") else 2**31
    except (TypeError, ValueError):
        value = 2**31
    return value, loaded.sop_instance_uid


def load_series(paths: Sequence[str | os.PathLike[str]], *,
                default_pixel_spacing_mm: float | None = None,
                default_frame_spacing_mm: float | None = None,
                limits: ReadLimits | None = None) -> LoadedPullback:
    """Load single-frame instances of one series as one pullback.

    Parameters
    ----------
    paths : sequence of path
        The instances (any order).
    default_pixel_spacing_mm, default_frame_spacing_mm : float or None
        Site defaults, as for :func:`srservice.dicomio.load_pullback`.
    limits : ReadLimits, optional
        As for :func:`srservice.dicomio.load_pullback` (the budget applies to each instance).

    Returns
    -------
    LoadedPullback
        Frames stacked in Instance Number order; header and SOP Instance UID of the first;
        ``frame_sop_instance_uids`` / ``frame_headers`` one per frame (when more than one
        instance).

    Raises
    ------
    InvalidDicomError
        No instance, an instance with more than one frame, the same SOP Instance UID twice,
        or frames of different sizes.
    """
    if not paths:
        raise InvalidDicomError("series has no instances to analyse")
    parts = sorted((load_pullback(p, default_pixel_spacing_mm=default_pixel_spacing_mm,
                                  default_frame_spacing_mm=default_frame_spacing_mm,
                                  limits=limits)
                    for p in paths), key=_order)
    if len(parts) == 1:
        return parts[0]
    multi = [p.sop_instance_uid for p in parts if p.pullback.frames.shape[0] != 1]
    if multi:
        raise InvalidDicomError(f"series instance {multi[0]} has more than one frame")
    uids = tuple(p.sop_instance_uid for p in parts)
    if len(set(uids)) != len(uids):
        raise InvalidDicomError("series lists the same SOP Instance UID more than once")
    shapes = {p.pullback.frames.shape[1:] for p in parts}
    if len(shapes) != 1:
        raise InvalidDicomError(f"series frames differ in size: {sorted(shapes)}")
    first = parts[0]
    frames = np.concatenate([p.pullback.frames for p in parts], axis=0)
    frame_spacing = next((p.pullback.frame_spacing_mm for p in parts
                          if p.pullback.frame_spacing_mm is not None), default_frame_spacing_mm)
    notes = (f"pullback assembled from {len(parts)} single-frame instances of one series, "
             "ordered by Instance Number",
             *(n for n in first.pullback.notes if "frame spacing" not in n.lower()))
    if frame_spacing is None:
        notes = (*notes, "frame spacing unknown for the single-frame series")
    pullback = replace(first.pullback, frames=frames, frame_spacing_mm=frame_spacing,
                       notes=notes)
    return LoadedPullback(pullback=pullback, header=first.header,
                          sop_instance_uid=first.sop_instance_uid,
                          frame_sop_instance_uids=uids,
                          frame_headers=tuple(p.header for p in parts))
