"""Header and decompression bombs (promise P15 of docs/reliability.md).

- A header with 1.2 million tiny private elements (12 MiB), or one 12 MiB private value,
  before Pixel Data: the listener (a child process, its peak RSS measured) answers 0xC210
  from a streaming scan without building the data set, keeps nothing, and an ordinary
  instance is stored right after; ``load_pullback`` refuses the same file with bounded memory.
- Compressed frames whose own header claims another size than Rows/Columns/Samples (JPEG
  SOF, JPEG-LS SOF55, JPEG 2000 SIZ) or another RLE segment count are refused before any
  frame is decoded, naming the frame and the header; a pullback needing more than the decode
  memory budget is refused before decoding.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from srservice.dicomheader import ReadLimits
from srservice.dicomio import decode_memory_needed, load_pullback
from srservice.errors import HeaderTooLargeError, InvalidDicomError
from tests.support import figures
from tests.support.bombs import (
    DEFLATED,
    blob_bomb,
    deflate_bomb,
    frame_header_bomb,
    header_bomb,
    peak_rss_of_load,
)
from tests.support.datasets import US_MULTIFRAME
from tests.support.listener import ListenerProcess, rss_now_kb, rss_peak_kb
from tests.support.reliability import (
    EXPLICIT_LE,
    Sender,
    phantom_part10,
    spool_finals,
    spool_partials,
    with_new_uids,
)

pytestmark = pytest.mark.timeout(180)

ELEMENTS = 1_200_000


@pytest.mark.parametrize("kind", ["1.2M tiny elements", "one 12 MiB value"])
def test_header_bomb_refused_by_listener_with_bounded_memory(
        tmp_path: Path, listener_processes: list[ListenerProcess], kind: str) -> None:
    bomb = header_bomb(ELEMENTS) if kind.startswith("1.2M") else blob_bomb(12 * 1024**2)
    listener = ListenerProcess(tmp_path / "data", dimse_timeout="120", network_timeout="120")
    listener_processes.append(listener)
    base_kb = rss_now_kb(listener.pid)
    sender = Sender(listener.port, [(US_MULTIFRAME, EXPLICIT_LE)], tmp_path / "s", timeout=120)
    t0 = time.monotonic()
    status = sender.send(bomb)
    elapsed = time.monotonic() - t0
    good = sender.send(with_new_uids(phantom_part10()))
    sender.release()
    peak_kb = rss_peak_kb(listener.pid)
    figures.record("bombs", f"header bomb ({kind}, {len(bomb.data) / 2**20:.1f} MiB) -> listener",
                   f"0x{status or 0:04X} after {elapsed:.2f} s, peak RSS {peak_kb / 1024:.0f} MiB "
                   f"(+{(peak_kb - base_kb) / 1024:.0f} MiB)")
    assert status == 0xC210
    assert good == 0x0000
    assert len(spool_finals(listener.spool)) == 1 and spool_partials(listener.spool) == []
    assert (peak_kb - base_kb) < 48 * 1024, f"listener grew {(peak_kb - base_kb) / 1024:.0f} MiB"
    audit = [json.loads(line) for line in
             (tmp_path / "data" / "audit.log").read_text().splitlines()]
    reasons = [str(r.get("reason")) for r in audit if r["event"] == "instance-refused"]
    assert len(reasons) == 1 and "HeaderTooLargeError" in reasons[0]
    assert ("max_header_elements" if kind.startswith("1.2M") else "max_header_bytes") \
        in reasons[0]


def test_header_bomb_refused_by_loader_with_bounded_memory(tmp_path: Path) -> None:
    path = header_bomb(ELEMENTS).write(tmp_path / "bomb.dcm")
    result = peak_rss_of_load(path)
    growth_mib = (int(str(result["peak_kb"])) - int(str(result["base_kb"]))) / 1024
    figures.record("bombs", "header bomb (1.2M elements) -> load_pullback",
                   f"{str(result['outcome'])[:60]} in {float(str(result['seconds'])):.2f} s, "
                   f"RSS +{growth_mib:.0f} MiB")
    assert str(result["outcome"]).startswith("HeaderTooLargeError")
    assert growth_mib < 48
    # In-process as well: the exception type the worker maps to a failed job.
    with pytest.raises(HeaderTooLargeError, match="max_header_elements"):
        load_pullback(path)
    small = ReadLimits(max_header_bytes=64 * 1024, max_header_elements=10**6,
                       decode_memory_budget=ReadLimits.defaults().decode_memory_budget)
    with pytest.raises(HeaderTooLargeError, match="max_header_bytes"):
        load_pullback(path, limits=small)


@pytest.mark.parametrize("codec,header", [
    ("jpeg_baseline", "JPEG SOF0"),
    ("jpeg_lossless", "JPEG SOF3"),
    ("jpegls", "JPEG-LS SOF55"),
    ("j2k", "JPEG 2000 SIZ"),
])
def test_frame_header_size_mismatch_refused_before_decoding(
        tmp_path: Path, codec: str, header: str) -> None:
    # Only frame 3 lies: frames 1-2 are fine, so the refusal must come from reading headers.
    path = frame_header_bomb(codec, 8000, 8000, frames=(3,)).write(tmp_path / f"{codec}.dcm")
    with pytest.raises(InvalidDicomError,
                       match=rf"frame 3: {header} says 8000 x 8000 x 1, Rows/Columns/Samples "
                             r"per Pixel say 64 x 64 x 1; not decoded"):
        load_pullback(path)
    # Positive control: the same object without the lie decodes.
    ok = frame_header_bomb(codec, 64, 64, frames=(3,)).write(tmp_path / f"{codec}-ok.dcm")
    assert load_pullback(ok).pullback.frames.shape == (4, 64, 64)


def test_rle_segment_table_checked(tmp_path: Path) -> None:
    path = frame_header_bomb("rle", frames=(2,)).write(tmp_path / "rle.dcm")
    with pytest.raises(InvalidDicomError,
                       match=r"frame 2: RLE header: 3 segments, Samples per Pixel x Bits "
                             r"Allocated / 8 = 1"):
        load_pullback(path)


@pytest.mark.parametrize("size", [8000, 65535])
def test_jpeg_bomb_not_decoded(tmp_path: Path, size: int) -> None:
    """A few hundred bytes per frame claiming size x size: refused without the allocation."""
    inst = frame_header_bomb("jpeg_baseline", size, size)
    path = inst.write(tmp_path / "bomb.dcm")
    result = peak_rss_of_load(path)
    growth_mib = (int(str(result["peak_kb"])) - int(str(result["base_kb"]))) / 1024
    figures.record("bombs", f"JPEG frames claiming {size} x {size} in 64 x 64 -> load_pullback",
                   f"refused in {float(str(result['seconds'])):.2f} s, RSS +{growth_mib:.0f} MiB",
                   f"({len(inst.data)} bytes sent)")
    assert "JPEG SOF0 says" in str(result["outcome"]), result["outcome"]
    assert growth_mib < 48


def test_decode_memory_budget(tmp_path: Path) -> None:
    path = tmp_path / "p.dcm"
    path.write_bytes(phantom_part10(6, 64, "jpeg_baseline"))
    needed = decode_memory_needed(6, 64, 64, 1, 8)
    tight = ReadLimits(max_header_bytes=2**23, max_header_elements=10**5,
                       decode_memory_budget=needed - 1)
    with pytest.raises(InvalidDicomError, match=r"per-job budget .*decode_memory_budget_mb"):
        load_pullback(path, limits=tight)
    enough = ReadLimits(max_header_bytes=2**23, max_header_elements=10**5,
                        decode_memory_budget=needed)
    assert load_pullback(path, limits=enough).pullback.frames.shape == (6, 64, 64)


def test_16bit_pullback_decoded_twice_within_budget(tmp_path: Path) -> None:
    """16-bit grey data: when the 16-bit copy does not fit the budget, decoding twice does."""
    from pydicom import dcmread
    from pydicom.filebase import DicomBytesIO

    ds = dcmread(DicomBytesIO(phantom_part10(6, 64, "explicit")))
    ds.PixelData = (ds.pixel_array.astype("uint16") * 16).tobytes()
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    path = tmp_path / "p16.dcm"
    ds.save_as(path, enforce_file_format=True)
    with_copy = decode_memory_needed(6, 64, 64, 1, 16)
    twice = decode_memory_needed(6, 64, 64, 1, 16, keep_wide=False)
    assert twice < with_copy

    def limits(budget: int) -> ReadLimits:
        return ReadLimits(max_header_bytes=2**23, max_header_elements=10**5,
                          decode_memory_budget=budget)

    one_pass = load_pullback(path, limits=limits(with_copy)).pullback
    two_pass = load_pullback(path, limits=limits(twice)).pullback
    assert (one_pass.frames == two_pass.frames).all()
    assert not any("decoded twice" in n for n in one_pass.notes)
    assert any("decoded twice" in n for n in two_pass.notes)
    with pytest.raises(InvalidDicomError, match="decode_memory_budget_mb"):
        load_pullback(path, limits=limits(twice - 1))


def test_deflate_bomb_not_inflated_by_listener_and_bounded_in_loader(
        tmp_path: Path, listener_processes: list[ListenerProcess]) -> None:
    """Deflated data set with 256 MiB of trailing padding (about 250 kB sent)."""
    padding = 256 * 1024**2
    bomb = deflate_bomb(padding)
    listener = ListenerProcess(tmp_path / "data", dimse_timeout="120", network_timeout="120")
    listener_processes.append(listener)
    base_kb = rss_now_kb(listener.pid)
    sender = Sender(listener.port, [(US_MULTIFRAME, DEFLATED)], tmp_path / "s", timeout=120)
    t0 = time.monotonic()
    status = sender.send(bomb)
    elapsed = time.monotonic() - t0
    sender.release()
    peak_kb = rss_peak_kb(listener.pid)
    figures.record("bombs", f"deflated, {padding >> 20} MiB trailing padding "
                   f"({len(bomb.data) >> 10} KiB sent) -> listener",
                   f"0x{status or 0:04X} after {elapsed:.2f} s, peak RSS {peak_kb / 1024:.0f} MiB "
                   f"(+{(peak_kb - base_kb) / 1024:.0f} MiB)")
    assert status == 0x0000  # legal: only the header is inflated to check it
    assert (peak_kb - base_kb) < 48 * 1024, f"listener grew {(peak_kb - base_kb) / 1024:.0f} MiB"
    stored = spool_finals(listener.spool)
    assert len(stored) == 1
    small = ReadLimits(max_header_bytes=2**23, max_header_elements=10**5,
                       decode_memory_budget=64 * 1024**2)
    with pytest.raises(HeaderTooLargeError, match="inflates to more than"):
        load_pullback(stored[0], limits=small)
