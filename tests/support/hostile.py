"""Builders of hostile and malformed IVUS objects, and the outcome rule every one must obey.

The rule (docs/reliability.md, promise P4): a malformed object gets a DICOM status, never a
crash. Either the listener refuses it (a failure status, and nothing of it is in the spool), or
it answers Success (and the stored bytes are exactly the sent ones) and the analysis entry
point (:func:`srservice.dicomio.load_pullback` then
:func:`srservice.analysis.pipeline.analyze_pullback`) raises an :class:`SrServiceError` with a
reason instead of crashing.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import UID

from srservice.errors import SrServiceError
from tests.support.reliability import (
    JPEG_BASELINE,
    RawInstance,
    finals_for,
    phantom_part10,
    same_length_uid,
    sha256_of_stored,
    with_new_uids,
)


#: Statuses a refusal may carry: PS3.4 Table B.2-1 (0xA7xx out of resources, 0xA9xx data set
#: does not match SOP class, 0xCxxx cannot understand) and 0x0122 (SOP class not supported).
#: 0xC001 is excluded on purpose: pynetdicom answers it when a handler raised (a crash).
def is_refusal(status: int) -> bool:
    """True for a failure status the listener gives on purpose."""
    return (status == 0x0122 or 0xA700 <= status <= 0xA7FF or 0xA900 <= status <= 0xA9FF
            or (0xC000 <= status <= 0xCFFF and status != 0xC001))


def phantom_dataset(transfer_syntax: str = "explicit", frames: int = 6, rows: int = 64) -> Dataset:
    """A decoded copy of the small phantom pullback."""
    return dcmread(DicomBytesIO(phantom_part10(frames, rows, transfer_syntax)))


def encode(ds: Dataset, *, sop_instance_uid: str | None = None) -> RawInstance:
    """Encode ``ds`` (keeping its transfer syntax) as a :class:`RawInstance`.

    ``sop_instance_uid`` (any string, valid or not) is put in both the data set and the meta.
    """
    uid = sop_instance_uid if sop_instance_uid is not None else same_length_uid(
        str(ds.SOPInstanceUID))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.SOPInstanceUID = UID(uid)
        ds.file_meta.MediaStorageSOPInstanceUID = UID(uid)
        ts = ds.file_meta.TransferSyntaxUID
        buf = DicomBytesIO()
        buf.is_little_endian = ts.is_little_endian
        buf.is_implicit_VR = ts.is_implicit_VR
        write_dataset(buf, ds)
    data = buf.getvalue()
    return RawInstance(str(ds.SOPClassUID), uid, str(ds.file_meta.TransferSyntaxUID), data)


def replace_once(data: bytes, old: bytes, new: bytes) -> bytes:
    """Replace the first occurrence of ``old`` (which must exist)."""
    at = data.find(old)
    assert at >= 0, f"pattern {old!r} not found"
    return data[:at] + new + data[at + len(old):]


def pixel_data_offset(data: bytes) -> int:
    """Offset of the top-level (7FE0,0010) element header in little-endian data set bytes."""
    at = data.rfind(b"\xe0\x7f\x10\x00")
    assert at >= 0
    return at


@dataclass
class Outcome:
    """What happened to one hostile object."""

    status: int | None
    stored: bool
    analysis: str  # "refused", "ok", "SrServiceError-subclass: reason" or "CRASH ..."


def analyse_file(path: Path) -> str:
    """Run the analysis entry point on a stored file; return 'ok' or the error's class+reason.

    Anything that is not an :class:`SrServiceError` is returned as ``CRASH <type>: ...``.
    """
    from srservice.analysis.pipeline import analyze_pullback
    from srservice.dicomio import load_pullback

    try:
        loaded = load_pullback(path)
        analyze_pullback(loaded.pullback)
    except SrServiceError as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    except Exception as exc:
        return f"CRASH {type(exc).__name__}: {exc}"
    return "ok"


def check_outcome(status: int | None, inst: RawInstance, spool: Path) -> Outcome:
    """Apply the outcome rule to one sent object; raise AssertionError when it is broken."""
    assert status is not None, "no C-STORE response (association aborted or listener crashed)"
    safe_uid = all(c in "0123456789." for c in inst.sop_instance_uid)
    stored = finals_for(spool, inst.sop_instance_uid) if safe_uid else []
    if status != 0x0000:
        assert is_refusal(status), f"status 0x{status:04X} is not a deliberate refusal"
        assert stored == [], "a refused object left a file in the spool"
        return Outcome(status, False, "refused")
    assert len(stored) == 1, f"Success but {len(stored)} files for the instance"
    assert sha256_of_stored(stored[0]) == inst.sha256, "stored bytes differ from sent bytes"
    analysis = analyse_file(stored[0])
    assert not analysis.startswith("CRASH"), analysis
    return Outcome(status, True, analysis)


# --- data set level ------------------------------------------------------------------------------
BAD_UIDS = [
    "1.2.3/../../x", "..", "../../../../tmp/evil", "1.2.3.%2F..%2Fx", "1.02.3", "1.2.3.",
    "1.2.840.abc", "1.2.3.4 5",
]


def bad_uid_cases() -> list[tuple[str, RawInstance]]:
    """Invalid UIDs (path traversal, '..', too long, leading zeros), command or data set."""
    out = []
    for uid in BAD_UIDS:
        out.append((f"sop-uid {uid[:24]!r}", encode(phantom_dataset(), sop_instance_uid=uid)))
    # pynetdicom will not send an Affected SOP Instance UID over 64 characters; a data set
    # UID is not checked by the sender.
    for keyword, value in (("StudyInstanceUID", "1.2.3/../../x"),
                           ("SeriesInstanceUID", "../../x"),
                           ("StudyInstanceUID", "1." + "2" * 70)):
        ds = phantom_dataset()
        setattr(ds, keyword, value)
        out.append((f"{keyword} {value[:12]!r}", encode(ds)))
    return out


def truncated_cases() -> list[tuple[str, RawInstance]]:
    """A data set cut at five places."""
    base = encode(phantom_dataset())
    pix = pixel_data_offset(base.data)
    cuts = {"mid first element": 5, "mid header": 300, "mid pixel header": pix + 6,
            "mid pixel data": pix + 12 + 1000, "last byte missing": len(base.data) - 1}
    return [(f"truncated {k}", RawInstance(base.sop_class_uid, base.sop_instance_uid,
                                           base.transfer_syntax_uid, base.data[:v]))
            for k, v in cuts.items()]


def wrong_vr_cases() -> list[tuple[str, RawInstance]]:
    """Wrong VRs and value lengths in the header."""
    out = []
    rows_elem = b"\x28\x00\x10\x00US\x02\x00"
    for name, new in [("Rows VR ZZ", b"\x28\x00\x10\x00ZZ\x02\x00"),
                      ("Rows VR OB", b"\x28\x00\x10\x00OB\x02\x00"),
                      ("Rows VR SQ", b"\x28\x00\x10\x00SQ\x02\x00"),
                      ("Rows length 0xFFFF", b"\x28\x00\x10\x00US\xff\xff")]:
        base = encode(phantom_dataset())
        out.append((name, RawInstance(base.sop_class_uid, base.sop_instance_uid,
                                      base.transfer_syntax_uid,
                                      replace_once(base.data, rows_elem, new))))
    base = encode(phantom_dataset())
    pix = pixel_data_offset(base.data)
    data = base.data[:pix + 4] + b"UN" + base.data[pix + 6:]
    out.append(("PixelData VR UN", RawInstance(base.sop_class_uid, base.sop_instance_uid,
                                               base.transfer_syntax_uid, data)))
    base = encode(phantom_dataset())
    data = replace_once(base.data, b"\x28\x00\x08\x00IS\x02\x006 ", b"\x28\x00\x08\x00IS\x02\x00ab")
    out.append(("NumberOfFrames 'ab'", RawInstance(base.sop_class_uid, base.sop_instance_uid,
                                                   base.transfer_syntax_uid, data)))
    ds = phantom_dataset()
    ds["BitsAllocated"].value = 7
    out.append(("BitsAllocated 7", encode(ds)))
    return out


def pixel_mismatch_cases() -> list[tuple[str, RawInstance]]:
    """Pixel Data not matching Rows x Columns x Frames x Samples."""
    out = []
    for name, kw, value in [("Rows doubled", "Rows", 128), ("Columns 1", "Columns", 1),
                            ("NumberOfFrames 10^9", "NumberOfFrames", 1_000_000_000),
                            ("NumberOfFrames 0", "NumberOfFrames", 0),
                            ("NumberOfFrames -5", "NumberOfFrames", -5),
                            ("Rows 65535", "Rows", 65535),
                            ("SamplesPerPixel 3", "SamplesPerPixel", 3),
                            ("Photometric PALETTE", "PhotometricInterpretation",
                             "PALETTE COLOR")]:
        ds = phantom_dataset()
        setattr(ds, kw, value)
        out.append((name, encode(ds)))
    ds = phantom_dataset()
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    out.append(("PixelData half length", encode(ds)))
    ds = phantom_dataset()
    ds.PixelData = b""
    out.append(("PixelData empty", encode(ds)))
    ds = phantom_dataset()
    del ds.PixelData
    out.append(("PixelData missing", encode(ds)))
    return out


def bad_compressed_cases() -> list[tuple[str, RawInstance]]:
    """Compressed Pixel Data that does not decode."""
    out = []
    for ts in ("jpeg_baseline", "rle"):
        base = with_new_uids(phantom_part10(6, 64, ts))
        pix = pixel_data_offset(base.data)
        data = bytearray(base.data)
        # Keep the item structure; overwrite the inside of the fragments with garbage.
        start = pix + 12 + 8 + 16  # element header, empty offset table item, first item header
        for i in range(start, len(data) - 8, 7):
            data[i] = (data[i] * 31 + 17) & 0xFF
        out.append((f"{ts} garbage fragments",
                    RawInstance(base.sop_class_uid, base.sop_instance_uid,
                                base.transfer_syntax_uid, bytes(data))))
    native = encode(phantom_dataset())
    out.append(("native pixels labelled JPEG",
                RawInstance(native.sop_class_uid, native.sop_instance_uid, JPEG_BASELINE,
                            native.data)))
    return out


#: Every hostile data set, named.
CASES = (bad_uid_cases() + truncated_cases() + wrong_vr_cases() + pixel_mismatch_cases()
         + bad_compressed_cases())
