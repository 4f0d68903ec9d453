"""Seeded mutation of small phantom IVUS pullbacks (the fuzz corpus of docs/reliability.md).

A base pullback is split into its top-level elements (each encoded on its own, so their
concatenation is exactly the data set). A case applies one to three mutations, chosen by a
seeded generator, to those element spans or to the joined bytes:

flip bytes, truncate, change an element's VR, change an element's length field, delete an
element, duplicate an element, swap two elements, set Rows / Columns / NumberOfFrames /
BitsAllocated / BitsStored / SamplesPerPixel / PhotometricInterpretation / PixelRepresentation
to odd values, and relabel the data set with another transfer syntax.

The same seed always gives the same corpus, so a failing case can be rebuilt from its number.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import UID

from tests.support.datasets import US_MULTIFRAME
from tests.support.reliability import RawInstance, phantom_part10, same_length_uid

#: Base pullbacks: (transfer syntax short name, frames, rows).
BASES: tuple[tuple[str, int, int], ...] = (
    ("explicit", 4, 64), ("implicit", 4, 64), ("rle", 4, 64), ("jpeg_baseline", 4, 64),
)
#: Transfer syntaxes a case may be relabelled with (all negotiated by the listener).
RELABEL_TS = (
    "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.1.99",
)
VRS = (b"AE", b"AS", b"CS", b"DA", b"DS", b"IS", b"LO", b"OB", b"OW", b"SQ", b"UI", b"UL",
       b"UN", b"US", b"SS", b"FD", b"UT", b"ZZ", b"\x00\x00")
ODD_VALUES: dict[str, tuple[object, ...]] = {
    "Rows": (0, 1, 31, 63, 65, 128, 4097, 65535),
    "Columns": (0, 1, 33, 63, 65, 256, 65535),
    "NumberOfFrames": (0, 1, 3, 5, 1000, 20001, 10**9, -1),
    "BitsAllocated": (0, 1, 7, 12, 16, 32, 64),
    "BitsStored": (0, 1, 9, 16, 33),
    "SamplesPerPixel": (0, 2, 3, 4),
    "PhotometricInterpretation": ("MONOCHROME1", "RGB", "YBR_FULL_422", "PALETTE COLOR",
                                  "YBR_ICT", "", "XYZ"),
    "PixelRepresentation": (1, 2),
    "PlanarConfiguration": (1, 5),
}


@dataclass(frozen=True)
class Base:
    """A base pullback split into top-level element spans."""

    name: str
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    dataset: Dataset
    tags: tuple[int, ...]
    spans: tuple[bytes, ...]
    implicit: bool


def _encode(ds: Dataset, ts: UID) -> bytes:
    buf = DicomBytesIO()
    buf.is_little_endian = ts.is_little_endian
    buf.is_implicit_VR = ts.is_implicit_VR
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_dataset(buf, ds)
    return buf.getvalue()


@lru_cache(maxsize=8)
def base(index: int) -> Base:
    """Base pullback ``index`` of :data:`BASES`."""
    ts_name, frames, rows = BASES[index]
    blob = phantom_part10(frames, rows, ts_name)
    ds = dcmread(DicomBytesIO(blob))
    ts = UID(str(ds.file_meta.TransferSyntaxUID))
    spans = []
    tags = []
    for elem in ds:
        single = Dataset()
        single.add(elem)
        spans.append(_encode(single, ts))
        tags.append(int(elem.tag))
    assert b"".join(spans) == _encode(ds, ts)
    return Base(ts_name, str(ds.SOPClassUID), str(ds.SOPInstanceUID), str(ts), ds,
                tuple(tags), tuple(spans), ts.is_implicit_VR)


Mutation = Callable[[np.random.Generator, Base, list[bytes], dict[str, str]], None]


def _pick(rng: np.random.Generator, spans: list[bytes]) -> int:
    return int(rng.integers(0, len(spans))) if spans else 0


def m_flip(rng: np.random.Generator, b: Base, spans: list[bytes], info: dict[str, str]) -> None:
    """Flip 1-8 random bytes (anywhere: headers, values, pixels)."""
    data = bytearray(b"".join(spans))
    k = int(rng.integers(1, 9))
    for _ in range(k):
        i = int(rng.integers(0, len(data)))
        data[i] ^= int(rng.integers(1, 256))
    spans[:] = [bytes(data)]
    info["flip"] = str(k)


def m_truncate(rng: np.random.Generator, b: Base, spans: list[bytes], info: dict[str, str]) -> None:
    """Cut the data set at a random byte."""
    data = b"".join(spans)
    cut = int(rng.integers(0, len(data)))
    spans[:] = [data[:cut]]
    info["truncate"] = str(cut)


def m_vr(rng: np.random.Generator, b: Base, spans: list[bytes], info: dict[str, str]) -> None:
    """Replace the VR of one element (explicit VR) or its tag's group (implicit VR)."""
    i = _pick(rng, spans)
    s = bytearray(spans[i])
    if len(s) < 8:
        return
    if b.implicit:
        s[4:8] = int(rng.integers(0, 2**32)).to_bytes(4, "little")  # garbage length
    else:
        s[4:6] = VRS[int(rng.integers(0, len(VRS)))]
    spans[i] = bytes(s)
    info["vr"] = f"elem{i}"


def m_length(rng: np.random.Generator, b: Base, spans: list[bytes], info: dict[str, str]) -> None:
    """Change the length field of one element (small delta, odd, zero or huge)."""
    i = _pick(rng, spans)
    s = bytearray(spans[i])
    if len(s) < 8:
        return
    long_form = not b.implicit and bytes(s[4:6]) in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN",
                                                       b"OD", b"OL", b"OV", b"UC", b"UR")
    if b.implicit or long_form:
        at, width = (4, 4) if b.implicit else (8, 4)
    else:
        at, width = 6, 2
    if len(s) < at + width:
        return
    old = int.from_bytes(s[at:at + width], "little")
    choice = int(rng.integers(0, 5))
    new = [old + 1, max(old - 2, 0), 0, 2 ** (8 * width) - 1, old * 3 + 7][choice]
    s[at:at + width] = (new % 2 ** (8 * width)).to_bytes(width, "little")
    spans[i] = bytes(s)
    info["length"] = f"elem{i}:{old}->{new}"


def m_delete(rng: np.random.Generator, b: Base, spans: list[bytes], info: dict[str, str]) -> None:
    """Delete one element."""
    if len(spans) > 1:
        i = _pick(rng, spans)
        del spans[i]
        info["delete"] = f"elem{i}"


def m_duplicate(rng: np.random.Generator, b: Base, spans: list[bytes],
                info: dict[str, str]) -> None:
    """Insert a copy of one element at a random position (repeated / out-of-order tag)."""
    i = _pick(rng, spans)
    j = int(rng.integers(0, len(spans) + 1))
    spans.insert(j, spans[i])
    info["duplicate"] = f"elem{i}@{j}"


def m_swap(rng: np.random.Generator, b: Base, spans: list[bytes], info: dict[str, str]) -> None:
    """Swap two elements (tags out of ascending order)."""
    if len(spans) > 1:
        i, j = (int(x) for x in rng.choice(len(spans), 2, replace=False))
        spans[i], spans[j] = spans[j], spans[i]
        info["swap"] = f"{i}<->{j}"


def m_attribute(rng: np.random.Generator, b: Base, spans: list[bytes],
                info: dict[str, str]) -> None:
    """Set an image pixel module attribute to an odd value (re-encoded element)."""
    names = list(ODD_VALUES)
    kw = names[int(rng.integers(0, len(names)))]
    values = ODD_VALUES[kw]
    value = values[int(rng.integers(0, len(values)))]
    ds = Dataset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        setattr(ds, kw, value)
    span = _encode(ds, UID(b.transfer_syntax_uid))
    tag = int(ds[kw].tag)
    joined = b"".join(spans)
    if tag in b.tags and b.spans[b.tags.index(tag)] in joined:
        joined = joined.replace(b.spans[b.tags.index(tag)], span, 1)
        spans[:] = [joined]
    else:  # insert at the place of the first larger tag
        idx = next((k for k, t in enumerate(b.tags) if t > tag), len(b.tags))
        marker = b.spans[idx] if idx < len(b.spans) else b""
        at = joined.find(marker) if marker else len(joined)
        at = at if at >= 0 else len(joined)
        spans[:] = [joined[:at] + span + joined[at:]]
    info["attr"] = f"{kw}={value!r}"


MUTATIONS: tuple[Mutation, ...] = (m_flip, m_truncate, m_vr, m_length, m_delete, m_duplicate,
                                   m_swap, m_attribute, m_attribute, m_flip)


@dataclass(frozen=True)
class FuzzCase:
    """One mutated pullback."""

    number: int
    description: str
    instance: RawInstance


def make_case(seed: int, number: int) -> FuzzCase:
    """Build fuzz case ``number`` of the corpus with ``seed`` (deterministic)."""
    rng = np.random.default_rng([seed, number])
    b = base(int(rng.integers(0, len(BASES))))
    uid = same_length_uid(b.sop_instance_uid)
    old = b.sop_instance_uid.encode() + (b"\x00" if len(b.sop_instance_uid) % 2 else b"")
    new = uid.encode() + (b"\x00" if len(uid) % 2 else b"")
    spans = [s.replace(old, new) if old in s else s for s in b.spans]
    info: dict[str, str] = {"base": b.name}
    ts = b.transfer_syntax_uid
    for _ in range(int(rng.integers(1, 4))):
        if rng.random() < 0.08:
            ts = RELABEL_TS[int(rng.integers(0, len(RELABEL_TS)))]
            info["ts"] = ts
        else:
            MUTATIONS[int(rng.integers(0, len(MUTATIONS)))](rng, b, spans, info)
    desc = " ".join(f"{k}={v}" for k, v in info.items())
    return FuzzCase(number, desc, RawInstance(b.sop_class_uid, uid, ts, b"".join(spans)))


def corpus(seed: int, count: int) -> list[FuzzCase]:
    """The first ``count`` cases of the corpus with ``seed``."""
    return [make_case(seed, n) for n in range(count)]


#: Seed of the corpus the suite sends (change it only together with the recorded findings).
SEED = 20261123


def contexts() -> list[tuple[str, str]]:
    """Presentation contexts (US Multi-frame, each transfer syntax of the corpus)."""
    ts = {base(i).transfer_syntax_uid for i in range(len(BASES))} | set(RELABEL_TS)
    return [(US_MULTIFRAME, t) for t in sorted(ts)]
