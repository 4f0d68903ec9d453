"""What a received data set must satisfy before the spool keeps it.

- **UID grammar** (PS3.5 Section 9.1), checked before a UID touches a path: a series of
  numeric components separated by ``.``; each component is ``0`` or a digit string without a
  leading zero; the whole string is at most 64 characters ("UID Encoding Rules"). Anything
  else (``/``, ``..``, letters, spaces, NUL, a trailing pad byte that survived decoding) is
  refused with :class:`~srservice.errors.InvalidUIDError`.
- **A bounded header** (:func:`check_received`, :func:`srservice.dicomheader.scan_header`):
  at most ``max_header_bytes`` bytes and ``max_header_elements`` elements before Pixel Data,
  checked by streaming over the file before pydicom builds anything; else 0xC210.
- **A readable header** (:func:`check_received`): the Part 10 file pynetdicom wrote while
  receiving has a File Meta Information group length (PS3.10 7.1), its header decodes with no
  element shorter than declared, its Pixel Data does not run past the end, its SOP Instance
  and SOP Class UIDs equal the command's (PS3.4 B.2.3), and its Study/Series UIDs are valid.
"""

from __future__ import annotations

import io
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.uid import UID

from srservice.dicomheader import ReadLimits, inflated_header, scan_header
from srservice.errors import (
    DataSetMismatchError,
    InstanceMismatchError,
    InvalidDicomError,
    InvalidUIDError,
)

#: Maximum UID length, PS3.5 Section 9.1 (also the UI VR maximum, PS3.5 Table 6.2-1).
MAX_UID_LENGTH = 64

_COMPONENT = r"(?:0|[1-9][0-9]*)"
_UID_RE = re.compile(rf"{_COMPONENT}(?:\.{_COMPONENT})*")


def is_valid_uid(value: object) -> bool:
    """Return True when ``value`` is a string obeying the UID grammar of PS3.5 Section 9.1.

    Parameters
    ----------
    value : object
        Candidate UID (anything; non-strings are invalid).

    Returns
    -------
    bool
        True for e.g. ``"1.2.840.10008.5.1.4.1.1.3.1"``; False for ``"1.2.03"`` (leading
        zero), ``"1.2.3/../../etc"``, ``""``, ``"1..2"`` or a string longer than 64 characters.
    """
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_UID_LENGTH
        and value.isascii()
        and _UID_RE.fullmatch(value) is not None
    )


def validate_uid(value: object, keyword: str) -> str:
    """Return ``value`` as ``str`` when it is a valid DICOM UID, else raise.

    Parameters
    ----------
    value : object
        Candidate UID, e.g. a data element value.
    keyword : str
        DICOM keyword of the element it came from (named in the error message).

    Returns
    -------
    str
        The UID unchanged.

    Raises
    ------
    InvalidUIDError
        When ``value`` violates PS3.5 Section 9.1; the message shows a bounded ``repr``.
    """
    if not is_valid_uid(value):
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        raise InvalidUIDError(f"{keyword} {shown} is not a valid DICOM UID (PS3.5 9.1)")
    return str(value)


#: Elements longer than this are not read while checking a header (PS3.10 7.1 layout).
_DEFER_SIZE = 64 * 1024


@dataclass(frozen=True)
class ReceivedHeader:
    """What the spool needs from the data set header (read without pixel data)."""

    study_instance_uid: str
    series_instance_uid: str
    modality: str
    number_of_frames: int


def _part10_dataset_offset(fh: BinaryIO) -> int:
    """Return the offset of the data set in a Part 10 file written with a group length.

    PS3.10 7.1: preamble (128), ``DICM``, then (0002,0000) UL File Meta Information Group
    Length, whose value is the byte count of the rest of group 0002.
    """
    fh.seek(0)
    head = fh.read(144)
    if len(head) < 144 or head[128:132] != b"DICM" or head[132:138] != b"\x02\x00\x00\x00UL":
        raise InvalidDicomError("received file has no File Meta Information group length")
    (group_length,) = struct.unpack("<I", head[140:144])
    return 144 + int(group_length)


def _check_pixel_data_length(fh: BinaryIO, transfer_syntax: UID, end: int) -> None:
    """Refuse a top-level pixel data element whose defined length runs past the data set end.

    Called with ``fh`` positioned where pydicom's ``stop_before_pixels`` stopped (PS3.5 7.1.2
    element layout: explicit VR OB/OW/OF/OD have a 12-byte header, implicit VR 8 bytes).
    """
    start = fh.tell()
    if transfer_syntax.is_deflated or start >= end:
        return
    head = fh.read(12)
    endian = "<" if transfer_syntax.is_little_endian else ">"
    if transfer_syntax.is_implicit_VR:
        if len(head) < 8:
            raise InvalidDicomError("pixel data element header is truncated")
        (length,) = struct.unpack(endian + "I", head[4:8])
        header_len = 8
    else:
        if len(head) < 12:
            raise InvalidDicomError("pixel data element header is truncated")
        (length,) = struct.unpack(endian + "I", head[8:12])
        header_len = 12
    if length != 0xFFFFFFFF and start + header_len + length > end:
        raise InvalidDicomError(
            f"pixel data declares {length} bytes but only {end - start - header_len} were received"
        )


class _StrictReader:
    """File wrapper for pydicom that turns a short read inside an element into an error.

    pydicom silently accepts a value shorter than its declared length (a truncated or
    corrupt data set); only a clean end of file before an element header is allowed.
    """

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self.name = getattr(fh, "name", "<received>")

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        if size > 0 and 0 < len(data) < size:
            raise InvalidDicomError(f"data set is truncated at byte {self._fh.tell()}")
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def close(self) -> None:
        """Leave closing to the owner of the file."""


def check_received(path: Path, *, sop_class_uid: str, sop_instance_uid: str,
                   transfer_syntax_uid: str,
                   limits: ReadLimits | None = None) -> tuple[ReceivedHeader, int]:
    """Parse and check the header of a received Part 10 file without loading pixel data.

    Parameters
    ----------
    path : pathlib.Path
        The file pynetdicom wrote while receiving (PS3.10 layout).
    sop_class_uid, sop_instance_uid : str
        Affected SOP Class / Instance UID of the C-STORE request (already validated).
    transfer_syntax_uid : str
        Transfer syntax of the presentation context.
    limits : ReadLimits, optional
        Header size limits (default: those of the default settings).

    Returns
    -------
    tuple of (ReceivedHeader, int)
        Header fields and the byte offset of the data set in ``path``.

    Raises
    ------
    HeaderTooLargeError
        More header bytes or elements than ``limits`` (0xC210).
    InvalidDicomError
        Undecodable header (0xC210), truncated pixel data (0xC210).
    InvalidUIDError
        Study/Series/SOP UIDs in the data set that violate PS3.5 9.1 (0xC211).
    InstanceMismatchError, DataSetMismatchError
        SOP Instance / Class UID differing from the command (0xC212 / 0xA900).
    """
    with path.open("rb") as fh:
        offset = _part10_dataset_offset(fh)
        end = os.fstat(fh.fileno()).st_size
        fh.seek(offset)
        extent = scan_header(fh, transfer_syntax_uid, limits or ReadLimits.defaults())
        fh.seek(0)
        try:
            ds: Dataset
            if UID(transfer_syntax_uid).is_deflated:
                # pydicom would inflate the whole data set, Pixel Data and anything after it
                # included; only the header (bounded by the scan) is inflated here.
                fh.seek(offset)
                prefix = inflated_header(fh, extent.header_bytes)
                ds = read_dataset(_StrictReader(io.BytesIO(prefix)),  # type: ignore[arg-type]
                                  False, True, defer_size=_DEFER_SIZE)
            else:
                ds = dcmread(_StrictReader(fh), stop_before_pixels=True,
                             defer_size=_DEFER_SIZE)
                if fh.tell() > end:
                    raise InvalidDicomError("data set is truncated (element runs past the "
                                            "end)")
                _check_pixel_data_length(fh, UID(transfer_syntax_uid), end)
            values = {kw: ds.get(kw) for kw in ("SOPInstanceUID", "SOPClassUID",
                                                "StudyInstanceUID", "SeriesInstanceUID",
                                                "Modality", "NumberOfFrames")}
        except InvalidDicomError:
            raise
        except Exception as exc:  # pydicom raises many types on malformed input
            raise InvalidDicomError(f"data set header cannot be decoded: "
                                    f"{type(exc).__name__}") from exc
    if values["SOPInstanceUID"] is None:
        raise InvalidDicomError("data set has no SOP Instance UID (0008,0018)")
    ds_instance = validate_uid(values["SOPInstanceUID"], "SOPInstanceUID")
    if ds_instance != sop_instance_uid:
        raise InstanceMismatchError("data set SOP Instance UID differs from the C-STORE "
                                    "Affected SOP Instance UID")
    if values["SOPClassUID"] is not None:
        ds_class = validate_uid(values["SOPClassUID"], "SOPClassUID")
        if ds_class != sop_class_uid:
            raise DataSetMismatchError(f"data set SOP Class UID {ds_class} differs from the "
                                       f"C-STORE Affected SOP Class UID {sop_class_uid}")
    study = validate_uid(values["StudyInstanceUID"], "StudyInstanceUID")
    series = validate_uid(values["SeriesInstanceUID"], "SeriesInstanceUID")
    try:
        frames = 1 if values["NumberOfFrames"] in (None, "") else int(values["NumberOfFrames"])
    except (TypeError, ValueError) as exc:
        raise InvalidDicomError("Number of Frames (0028,0008) is not an integer") from exc
    if frames < 1:
        raise InvalidDicomError(f"Number of Frames (0028,0008) is {frames}")
    modality = str(values["Modality"] or "")[:16]
    return ReceivedHeader(study, series, modality, frames), offset
