"""Bounds on a DICOM data set header, checked by streaming over the encoded bytes.

pydicom builds every element of a header as Python objects (about 500 bytes each), so a data
set with a million tiny (private) elements before Pixel Data costs half a gigabyte to read.
:func:`scan_header` walks the element stream without building anything: element headers are
decoded with ``struct`` (PS3.5 Section 7.1: tag, explicit VR with 2- or 4-byte length, or
implicit VR with a 4-byte length), values are skipped, sequences and items of defined or
undefined length are followed (PS3.5 Section 7.5), and the walk stops at the top-level Pixel
Data (7FE0,0010). It refuses, as soon as a limit is passed and before reading further:

- more than ``max_bytes`` bytes before Pixel Data (everything: values, sequences, items);
- more than ``max_elements`` elements and items;
- sequences nested deeper than :data:`MAX_DEPTH`.

A Deflated Explicit VR Little Endian data set (PS3.5 A.5) is inflated as a stream, so the
limits apply to the inflated bytes. Memory is constant (one read buffer, one stack frame per
nesting level). A data set that ends early is not an error here: the parser that follows
reports it.

:class:`ReadLimits` gathers the limits a reader applies (header size, element count, decode
memory budget), taken from :class:`srservice.config.Settings`.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from pydicom.datadict import dictionary_VR
from pydicom.uid import UID

from srservice.errors import HeaderTooLargeError, InvalidDicomError

if TYPE_CHECKING:
    from srservice.config import Settings

#: Deepest sequence nesting accepted (PS3.5 sets no limit; real objects use a handful).
MAX_DEPTH = 32

#: Explicit VRs with a 2-byte reserved field and a 4-byte length (PS3.5 Table 7.1-1).
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN",
                       b"UR", b"UT", b"UV"})
_UNDEFINED = 0xFFFFFFFF
_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQ_END = 0xFFFEE0DD
_PIXEL_DATA = 0x7FE00010
_CHUNK = 1 << 16


@dataclass(frozen=True)
class ReadLimits:
    """Limits of one reader of DICOM files (listener check or worker).

    Attributes
    ----------
    max_header_bytes : int
        Bytes before Pixel Data.
    max_header_elements : int
        Elements and items before Pixel Data.
    decode_memory_budget : int
        Bytes of decoded pixels one pullback may need (see :mod:`srservice.dicomio`).
    """

    max_header_bytes: int
    max_header_elements: int
    decode_memory_budget: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ReadLimits:
        """Return the limits configured in ``settings``."""
        return cls(max_header_bytes=settings.max_header_bytes,
                   max_header_elements=settings.max_header_elements,
                   decode_memory_budget=settings.decode_memory_budget_mb * 1024 * 1024)

    @classmethod
    def defaults(cls) -> ReadLimits:
        """Return the limits of the default settings (``srservice.config.Settings``)."""
        from srservice.config import Settings

        fields = Settings.model_fields
        return cls(max_header_bytes=int(fields["max_header_bytes"].default),
                   max_header_elements=int(fields["max_header_elements"].default),
                   decode_memory_budget=int(fields["decode_memory_budget_mb"].default)
                   * 1024 * 1024)


@dataclass(frozen=True)
class HeaderExtent:
    """What :func:`scan_header` found."""

    header_bytes: int
    """Bytes from the data set start to the Pixel Data element (or to the end)."""
    elements: int
    """Elements and items counted (nested ones included)."""
    pixel_data_found: bool
    """A top-level Pixel Data (7FE0,0010) element header was reached."""


class _Stream:
    """Forward-only reader over a file or an inflated stream, counting bytes consumed."""

    def __init__(self, fh: IO[bytes], deflated: bool) -> None:
        self._fh = fh
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS) if deflated else None
        self._buf = b""
        self._pos = 0
        self.consumed = 0

    def _fill(self, want: int) -> None:
        while len(self._buf) - self._pos < want:
            rest = self._buf[self._pos:]
            self._pos = 0
            if self._inflater is None:
                raw = self._fh.read(_CHUNK)
                self._buf = rest + raw
                if not raw:
                    return
                continue
            # max_length bounds what one call may inflate: a deflate bomb cannot expand one
            # read into gigabytes at once.
            cap = max(want, _CHUNK) * 4
            tail = self._inflater.unconsumed_tail
            if tail:
                self._buf = rest + self._inflater.decompress(tail, cap)
                continue
            raw = self._fh.read(_CHUNK)
            if raw:
                self._buf = rest + self._inflater.decompress(raw, cap)
                continue
            self._buf = rest + self._inflater.flush()
            return

    def read(self, count: int) -> bytes:
        """Up to ``count`` bytes (fewer only at the end)."""
        self._fill(count)
        data = self._buf[self._pos:self._pos + count]
        self._pos += len(data)
        self.consumed += len(data)
        return data

    def skip(self, count: int) -> int:
        """Skip ``count`` bytes; return how many were skipped (fewer only at the end)."""
        done = 0
        while done < count:
            if self._inflater is None and self._pos >= len(self._buf):
                here = self._fh.tell()
                end = self._fh.seek(0, 2)
                step = min(count - done, end - here)
                self._fh.seek(here + step)
                done += step
                self.consumed += step
                return done
            got = len(self.read(min(count - done, _CHUNK)))
            if got == 0:
                break
            done += got
        return done


class _EndOfData(Exception):  # noqa: N818 - control flow inside this module only
    """The data set ended (EOF) inside the scan: not this module's error to report."""


class _Walker:
    def __init__(self, stream: _Stream, little: bool, implicit: bool, limits: ReadLimits,
                 stop_at_pixels: bool) -> None:
        self.s = stream
        self.little = little
        self.implicit = implicit
        self.limits = limits
        self.stop_at_pixels = stop_at_pixels
        self.elements = 0
        self._e = "<" if little else ">"

    # --- limits ------------------------------------------------------------------------
    def _count(self) -> None:
        self.elements += 1
        if self.elements > self.limits.max_header_elements:
            raise HeaderTooLargeError(
                f"data set has more than {self.limits.max_header_elements} elements before "
                f"Pixel Data (max_header_elements)")

    def _bytes(self, more: int = 0) -> None:
        if self.s.consumed + more > self.limits.max_header_bytes:
            raise HeaderTooLargeError(
                f"data set header is larger than {self.limits.max_header_bytes} bytes before "
                f"Pixel Data (max_header_bytes)")

    def _need(self, count: int) -> bytes:
        data = self.s.read(count)
        if len(data) < count:
            raise _EndOfData
        return data

    # --- structure ---------------------------------------------------------------------
    def element_header(self, implicit: bool, e: str) -> tuple[int, bytes, int]:
        """Return (tag, VR or b'', length) of the next element header."""
        head = self._need(8)
        group, elem = struct.unpack(e + "HH", head[:4])
        tag = (group << 16) | elem
        if implicit or group == 0xFFFE:  # items and delimiters never carry a VR (PS3.5 7.5)
            (length,) = struct.unpack(e + "I", head[4:])
            return tag, b"", length
        vr = head[4:6]
        if vr in _LONG_VRS:
            (length,) = struct.unpack(e + "I", self._need(4))
        else:
            (length,) = struct.unpack(e + "H", head[6:8])
        return tag, vr, length

    def dataset(self, implicit: bool, e: str, length: int | None, depth: int,
                top: bool) -> bool:
        """Walk elements until ``length`` bytes, an item delimiter, or the end.

        Returns True when the top-level Pixel Data was reached.
        """
        if depth > MAX_DEPTH:
            raise InvalidDicomError(f"sequences nested deeper than {MAX_DEPTH} levels")
        start = self.s.consumed
        while length is None or self.s.consumed - start < length:
            before = self.s.consumed
            try:
                tag, vr, vlen = self.element_header(implicit, e)
            except _EndOfData:
                if top:
                    return False
                raise
            if top and tag == _PIXEL_DATA and self.stop_at_pixels:
                self.s.consumed = before  # the header ends where Pixel Data starts
                return True
            if tag == _ITEM_END:
                return False
            self._count()
            self._bytes()
            is_seq = vr == b"SQ" or (
                vlen == _UNDEFINED and (vr in (b"", b"UN") or tag == _PIXEL_DATA))
            if implicit and not is_seq and vlen != _UNDEFINED and (tag >> 16) & 1 == 0:
                try:
                    is_seq = dictionary_VR(tag) == "SQ"
                except KeyError:
                    is_seq = False
            if is_seq:
                # UN of undefined length holds an implicit VR LE sequence (PS3.5 6.2.2).
                inner_implicit = implicit or vr == b"UN"
                inner_e = "<" if vr == b"UN" else e
                self.sequence(inner_implicit, inner_e, None if vlen == _UNDEFINED else vlen,
                              depth + 1, fragments=tag == _PIXEL_DATA or vr in (b"OB", b"OW"))
            elif vlen == _UNDEFINED:
                raise InvalidDicomError(f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) has an "
                                        "undefined length but is not a sequence")
            else:
                self._bytes(vlen)
                if self.s.skip(vlen) < vlen:
                    raise _EndOfData
        return False

    def sequence(self, implicit: bool, e: str, length: int | None, depth: int,
                 fragments: bool) -> None:
        """Walk the items of a sequence (or the fragments of encapsulated data)."""
        start = self.s.consumed
        while length is None or self.s.consumed - start < length:
            head = self._need(8)
            group, elem, ilen = struct.unpack(e + "HHI", head)
            tag = (group << 16) | elem
            if tag == _SEQ_END:
                return
            if tag != _ITEM:
                raise InvalidDicomError(f"sequence holds ({group:04X},{elem:04X}) where an "
                                        "item was expected")
            self._count()
            self._bytes()
            if fragments or ilen != _UNDEFINED:
                if ilen == _UNDEFINED:
                    raise InvalidDicomError("encapsulated fragment of undefined length")
                if fragments:
                    self._bytes(ilen)
                    if self.s.skip(ilen) < ilen:
                        raise _EndOfData
                    continue
                self.dataset(implicit, e, ilen, depth, top=False)
            else:
                self.dataset(implicit, e, None, depth, top=False)


def scan_header(fh: IO[bytes], transfer_syntax: str, limits: ReadLimits) -> HeaderExtent:
    """Check the size of the data set header that starts at ``fh``'s position.

    Parameters
    ----------
    fh : binary file
        Positioned at the first data set element (after the File Meta Information).
    transfer_syntax : str
        Transfer Syntax UID of the data set.
    limits : ReadLimits
        ``max_header_bytes`` and ``max_header_elements`` apply.

    Returns
    -------
    HeaderExtent
        Bytes and elements before Pixel Data. ``fh`` is left at an unspecified position.

    Raises
    ------
    HeaderTooLargeError
        More bytes or elements than the limits (status 0xC210).
    InvalidDicomError
        An unknown transfer syntax, nesting deeper than :data:`MAX_DEPTH`, an item where none
        may be, or a corrupt deflate stream.
    """
    ts = UID(transfer_syntax)
    if not ts.is_transfer_syntax:
        shown = transfer_syntax if len(transfer_syntax) <= 64 else transfer_syntax[:61] + "..."
        raise InvalidDicomError(f"unknown Transfer Syntax UID {shown!r}")
    stream = _Stream(fh, deflated=ts.is_deflated)
    walker = _Walker(stream, ts.is_little_endian, ts.is_implicit_VR, limits, True)
    try:
        found = walker.dataset(ts.is_implicit_VR, "<" if ts.is_little_endian else ">", None,
                               0, top=True)
    except _EndOfData:
        found = False
    except zlib.error as exc:
        raise InvalidDicomError(f"deflated data set cannot be inflated: {exc}") from exc
    except struct.error as exc:  # pragma: no cover - lengths are always checked first
        raise InvalidDicomError(f"data set header cannot be decoded: {exc}") from exc
    return HeaderExtent(stream.consumed, walker.elements, found)


def part10_dataset_start(fh: IO[bytes]) -> tuple[int, str]:
    """Return (offset of the data set, Transfer Syntax UID) of a Part 10 file.

    Walks the File Meta Information (PS3.10 7.1: 128-byte preamble, ``DICM``, group 0002 in
    Explicit VR Little Endian) element by element; at most 64 KiB of it are accepted.

    Raises
    ------
    InvalidDicomError
        No ``DICM`` prefix, no Transfer Syntax UID, or File Meta Information over 64 KiB.
    """
    fh.seek(0)
    head = fh.read(132)
    if len(head) < 132 or head[128:132] != b"DICM":
        raise InvalidDicomError("not a DICOM file (no DICM prefix of PS3.10 7.1)")
    transfer_syntax = ""
    pos = 132
    while True:
        elem_head = fh.read(8)
        if len(elem_head) < 8:
            break
        group, elem = struct.unpack("<HH", elem_head[:4])
        if group != 0x0002:
            break
        vr = elem_head[4:6]
        if vr in _LONG_VRS:
            more = fh.read(4)
            if len(more) < 4:
                break
            (length,) = struct.unpack("<I", more)
            header = 12
        else:
            (length,) = struct.unpack("<H", elem_head[6:8])
            header = 8
        if pos + header + length > 132 + 65536:
            raise InvalidDicomError("File Meta Information is larger than 64 KiB")
        value = fh.read(length)
        if elem == 0x0010:
            transfer_syntax = value.rstrip(b"\x00 ").decode("ascii", "replace")
        pos += header + length
    if not transfer_syntax:
        raise InvalidDicomError("File Meta Information has no Transfer Syntax UID")
    return pos, transfer_syntax


def inflated_header(fh: IO[bytes], header_bytes: int) -> bytes:
    """Return the first ``header_bytes`` inflated bytes of a deflated data set at ``fh``.

    With ``header_bytes`` from :func:`scan_header` these are the elements before Pixel Data,
    which a reader can parse as Explicit VR Little Endian (PS3.5 A.5) without inflating the
    rest, as pydicom's ``dcmread`` would.
    """
    return _Stream(fh, deflated=True).read(header_bytes)


def inflated_size(fh: IO[bytes], limit: int) -> int:
    """Count the inflated bytes of a deflated data set at ``fh``, streaming; stop past ``limit``.

    Raises
    ------
    HeaderTooLargeError
        The data set inflates to more than ``limit`` bytes.
    InvalidDicomError
        The deflate stream is corrupt.
    """
    stream = _Stream(fh, deflated=True)
    total = 0
    try:
        while chunk := stream.read(_CHUNK):
            total += len(chunk)
            if total > limit:
                raise HeaderTooLargeError(
                    f"deflated data set inflates to more than {limit} bytes "
                    "(max_header_bytes + decode_memory_budget_mb)")
    except zlib.error as exc:
        raise InvalidDicomError(f"deflated data set cannot be inflated: {exc}") from exc
    return total


def check_file_header(fh: IO[bytes], limits: ReadLimits) -> HeaderExtent:
    """:func:`scan_header` of a whole Part 10 file (``fh`` at any position).

    A deflated data set is inflated whole by pydicom when read, so its whole inflated size
    is bounded too, by ``max_header_bytes`` + ``decode_memory_budget``
    (:func:`inflated_size`).
    """
    offset, transfer_syntax = part10_dataset_start(fh)
    fh.seek(offset)
    extent = scan_header(fh, transfer_syntax, limits)
    if UID(transfer_syntax).is_deflated:
        fh.seek(offset)
        inflated_size(fh, limits.max_header_bytes + limits.decode_memory_budget)
    return extent
