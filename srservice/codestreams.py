"""The image size a compressed frame claims in its own header, read before decoding.

A decoder allocates what the codestream header says, not what Rows/Columns say: a 380-byte
JPEG frame whose SOF claims 8000 x 8000 inside a 64 x 64 object makes the decoder produce
hundreds of megabytes before anyone compares sizes. :func:`frame_geometry` reads the header
of one encapsulated frame (PS3.5 Section 8.2 and Annexes A.4, G) without decoding it:

- JPEG (ISO/IEC 10918-1 Annex B.2.2): the first SOFn marker segment (C0-C3, C5-C7, C9-CB,
  CD-CF): sample precision P, number of lines Y, samples per line X, components Nf.
- JPEG-LS (ISO/IEC 14495-1 Annex C.2.2): the SOF55 marker segment (FFF7), same layout.
- JPEG 2000 and HTJ2K (ISO/IEC 15444-1 Annex A.5.1): the SIZ marker segment after SOC:
  width Xsiz - XOsiz, height Ysiz - YOsiz, Csiz components, precision from Ssiz; a JP2 file
  wrapper is followed to its contiguous codestream box (``jp2c``).
- RLE Lossless (PS3.5 Annex G.5): the 64-byte header: number of segments (must be Samples
  per Pixel x Bits Allocated / 8) and segment offsets (the first 64, increasing, inside the
  frame). RLE carries no image size: the decoder is given Rows/Columns.

:func:`check_frame` compares the result with the data set's Rows, Columns and Samples per
Pixel and raises :class:`~srservice.errors.InvalidDicomError` naming the header field.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass

from pydicom import uid as tsuid
from pydicom.uid import UID

from srservice.errors import InvalidDicomError

_JPEG = frozenset({tsuid.JPEGBaseline8Bit, tsuid.JPEGExtended12Bit, tsuid.JPEGLossless,
                   tsuid.JPEGLosslessSV1})
_JPEG_LS = frozenset({tsuid.JPEGLSLossless, tsuid.JPEGLSNearLossless})
_J2K = frozenset({tsuid.JPEG2000Lossless, tsuid.JPEG2000, tsuid.HTJ2KLossless,
                  tsuid.HTJ2KLosslessRPCL, tsuid.HTJ2K,
                  UID("1.2.840.10008.1.2.4.92"), UID("1.2.840.10008.1.2.4.93")})
#: SOFn markers of ISO/IEC 10918-1 Table B.1 (not DHT C4, JPG C8, DAC CC) and SOF55 (JPEG-LS).
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE,
                  0xCF, 0xF7})
#: Markers without a length field: TEM, RST0-7, SOI, EOI.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})


@dataclass(frozen=True)
class FrameGeometry:
    """What a compressed frame's header says."""

    codec: str
    """``JPEG SOF``, ``JPEG-LS SOF55``, ``JPEG 2000 SIZ`` or ``RLE header``."""
    rows: int | None
    columns: int | None
    samples: int
    precision: int | None


def _jpeg(data: bytes, codec: str) -> FrameGeometry:
    if data[:2] != b"\xff\xd8":
        raise InvalidDicomError(f"{codec}: frame does not start with SOI (FFD8)")
    pos = 2
    n = len(data)
    while pos < n:
        if data[pos] != 0xFF:
            raise InvalidDicomError(f"{codec}: no marker at byte {pos} before the frame header")
        while pos < n and data[pos] == 0xFF:  # fill bytes (B.1.1.2)
            pos += 1
        if pos >= n:
            break
        marker = data[pos]
        pos += 1
        if marker in _STANDALONE:
            continue
        if pos + 2 > n:
            break
        (length,) = struct.unpack(">H", data[pos:pos + 2])
        if marker in _SOF:
            if length < 8 or pos + 8 > n:
                break
            precision, rows, cols, comps = struct.unpack(">BHHB", data[pos + 2:pos + 8])
            name = "JPEG-LS SOF55" if marker == 0xF7 else f"JPEG SOF{marker - 0xC0}"
            return FrameGeometry(name, rows, cols, comps, precision)
        if marker == 0xDA:  # SOS before any SOF
            break
        pos += length
    raise InvalidDicomError(f"{codec}: no frame header (SOF marker) in the frame")


def _j2k_codestream(data: bytes) -> bytes:
    """Return the codestream of a raw J2K stream or of a JP2 file (ISO/IEC 15444-1 Annex I)."""
    if data[:4] == b"\xff\x4f\xff\x51":
        return data
    if data[4:8] != b"jP  ":
        raise InvalidDicomError("JPEG 2000: frame starts with neither SOC+SIZ nor a JP2 box")
    pos = 0
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        header = 8
        if length == 1 and pos + 16 <= len(data):
            (length,) = struct.unpack(">Q", data[pos + 8:pos + 16])
            header = 16
        if kind == b"jp2c":
            return data[pos + header:]
        if length == 0 or length < header:
            break
        pos += length
    raise InvalidDicomError("JPEG 2000: JP2 file without a codestream box (jp2c)")


def _j2k(data: bytes) -> FrameGeometry:
    code = _j2k_codestream(data)
    # SOC (2 bytes), SIZ marker (2), then Lsiz Rsiz (2+2), Xsiz..YTOsiz (8 x 4), Csiz (2),
    # then per component Ssiz XRsiz YRsiz (ISO/IEC 15444-1 Table A.9).
    if code[:4] != b"\xff\x4f\xff\x51" or len(code) < 4 + 38 + 1:
        raise InvalidDicomError("JPEG 2000: no SIZ marker segment after SOC")
    (_, _, xsiz, ysiz, xo, yo, _, _, _, _, csiz) = struct.unpack(">HHIIIIIIIIH", code[4:42])
    if xsiz <= xo or ysiz <= yo or csiz < 1:
        raise InvalidDicomError(f"JPEG 2000 SIZ: empty image ({xsiz}-{xo} x {ysiz}-{yo}, "
                                f"{csiz} components)")
    ssiz = code[42]
    return FrameGeometry("JPEG 2000 SIZ", ysiz - yo, xsiz - xo, csiz, (ssiz & 0x7F) + 1)


def _rle(data: bytes, samples: int, bits: int) -> FrameGeometry:
    if len(data) < 64:
        raise InvalidDicomError(f"RLE header: frame of {len(data)} bytes, shorter than the "
                                "64-byte header")
    header = struct.unpack("<16I", data[:64])
    count, offsets = header[0], [o for o in header[1:1 + max(0, min(header[0], 15))]]
    expected = samples * max(1, bits // 8)
    if count != expected:
        raise InvalidDicomError(f"RLE header: {count} segments, Samples per Pixel x Bits "
                                f"Allocated / 8 = {expected}")
    increasing = all(b > a for a, b in itertools.pairwise(offsets))
    if not offsets or offsets[0] != 64 or not increasing or offsets[-1] >= len(data):
        raise InvalidDicomError(f"RLE header: segment offsets {offsets} are not increasing "
                                f"from 64 within the {len(data)}-byte frame")
    return FrameGeometry("RLE header", None, None, samples, None)


def frame_geometry(transfer_syntax: str, data: bytes, *, samples: int = 1,
                   bits_allocated: int = 8) -> FrameGeometry | None:
    """Read the image size from one encapsulated frame's header (None: not a known codec).

    Parameters
    ----------
    transfer_syntax : str
        Transfer Syntax UID of the data set.
    data : bytes
        The frame's bytes (its fragments joined).
    samples, bits_allocated : int
        From the data set; the RLE header is checked against them.

    Raises
    ------
    InvalidDicomError
        The header is missing or malformed.
    """
    ts = UID(transfer_syntax)
    if ts in _JPEG:
        return _jpeg(data, "JPEG")
    if ts in _JPEG_LS:
        return _jpeg(data, "JPEG-LS")
    if ts in _J2K:
        return _j2k(data)
    if ts == tsuid.RLELossless:
        return _rle(data, samples, bits_allocated)
    return None


def check_frame(transfer_syntax: str, data: bytes, index: int, *, rows: int, columns: int,
                samples: int, bits_allocated: int) -> FrameGeometry | None:
    """Refuse a frame whose own header disagrees with Rows, Columns or Samples per Pixel.

    Parameters
    ----------
    transfer_syntax : str
        Transfer Syntax UID.
    data : bytes
        The encapsulated frame.
    index : int
        Frame number from 1 (for the message).
    rows, columns, samples, bits_allocated : int
        Rows (0028,0010), Columns (0028,0011), Samples per Pixel (0028,0002), Bits Allocated
        (0028,0100) of the data set.

    Returns
    -------
    FrameGeometry or None
        The header read (None for a transfer syntax without a known codestream header).

    Raises
    ------
    InvalidDicomError
        "frame N: JPEG SOF0 says 8000 x 8000 x 1, Rows/Columns/Samples say 64 x 64 x 1".
    """
    try:
        geom = frame_geometry(transfer_syntax, data, samples=samples,
                              bits_allocated=bits_allocated)
    except InvalidDicomError as exc:
        raise InvalidDicomError(f"frame {index}: {exc}") from exc
    if geom is None:
        return None
    if geom.rows is not None and geom.columns is not None and (
            (geom.rows, geom.columns, geom.samples) != (rows, columns, samples)):
        raise InvalidDicomError(
            f"frame {index}: {geom.codec} says {geom.rows} x {geom.columns} x {geom.samples}, "
            f"Rows/Columns/Samples per Pixel say {rows} x {columns} x {samples}; not decoded")
    if geom.precision is not None and geom.precision > bits_allocated:
        raise InvalidDicomError(f"frame {index}: {geom.codec} precision {geom.precision} bits "
                                f"exceeds Bits Allocated {bits_allocated}; not decoded")
    return geom
