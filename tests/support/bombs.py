"""Header and decompression bombs: IVUS objects that cost far more to read than to send.

- :func:`header_bomb`: the small phantom pullback with ``count`` tiny private elements (10
  bytes each, explicit VR SH) inserted before Pixel Data, built with numpy (1.2 million
  elements in well under a second).
- :func:`blob_bomb`: one private OB element of ``size`` bytes before Pixel Data.
- :func:`deflate_bomb`: the phantom as Deflated Explicit VR Little Endian with ``padding``
  zero bytes of Data Set Trailing Padding (FFFC,FFFC) after Pixel Data: legal, a few hundred
  kilobytes on the wire, and ``padding`` bytes once inflated.
- :func:`frame_header_bomb`: a compressed phantom whose frames' own headers claim another
  size (JPEG SOF / JPEG-LS SOF55 Y and X, JPEG 2000 SIZ Xsiz and Ysiz) or, for RLE, another
  number of segments.
- :func:`peak_rss_of_load`: ``load_pullback`` in a child process; its peak RSS, time, outcome.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.encaps import encapsulate, generate_frames
from pydicom.filebase import DicomBytesIO

from tests.support.environment import ROOT
from tests.support.hostile import pixel_data_offset
from tests.support.listener import child_env
from tests.support.reliability import RawInstance, phantom_part10, split_part10, with_new_uids


def header_bomb(count: int) -> RawInstance:
    """The phantom with ``count`` private SH elements (groups 7F01, 7F03, ...) before Pixel Data."""
    inst = with_new_uids(phantom_part10())
    per_group = 0xF000
    idx = np.arange(count)
    rec = np.zeros(count, dtype=[("g", "<u2"), ("e", "<u2"), ("vr", "S2"), ("n", "<u2"),
                                 ("v", "S2")])
    rec["g"] = 0x7F01 + 2 * (idx // per_group)
    rec["e"] = 0x1000 + (idx % per_group)
    rec["vr"] = b"SH"
    rec["n"] = 2
    rec["v"] = b"AB"
    at = pixel_data_offset(inst.data)
    data = inst.data[:at] + rec.tobytes() + inst.data[at:]
    return RawInstance(inst.sop_class_uid, inst.sop_instance_uid, inst.transfer_syntax_uid, data)


def blob_bomb(size: int) -> RawInstance:
    """The phantom with one private OB element of ``size`` bytes before Pixel Data."""
    inst = with_new_uids(phantom_part10())
    at = pixel_data_offset(inst.data)
    elem = struct.pack("<HH2sHI", 0x7F01, 0x1000, b"OB", 0, size) + b"\x00" * size
    data = inst.data[:at] + elem + inst.data[at:]
    return RawInstance(inst.sop_class_uid, inst.sop_instance_uid, inst.transfer_syntax_uid, data)


DEFLATED = "1.2.840.10008.1.2.1.99"


def deflate_bomb(padding: int) -> RawInstance:
    """The phantom, deflated (PS3.5 A.5), with ``padding`` bytes of trailing padding."""
    import zlib

    inst = with_new_uids(phantom_part10())
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [squeeze.compress(inst.data),
             squeeze.compress(struct.pack("<HH2sHI", 0xFFFC, 0xFFFC, b"OB", 0, padding))]
    zeros = b"\x00" * (16 << 20)
    left = padding
    while left > 0:
        parts.append(squeeze.compress(zeros[:min(left, len(zeros))]))
        left -= min(left, len(zeros))
    parts.append(squeeze.flush())
    return RawInstance(inst.sop_class_uid, inst.sop_instance_uid, DEFLATED, b"".join(parts))


def _patch_frame(codec: str, frame: bytes, rows: int, cols: int) -> bytes:
    out = bytearray(frame)
    if codec in ("jpeg_baseline", "jpeg_lossless", "jpegls"):
        sofs = {0xC0, 0xC1, 0xC2, 0xC3, 0xF7}
        pos = 2
        while pos < len(out):
            marker = out[pos + 1]
            length = struct.unpack(">H", out[pos + 2:pos + 4])[0]
            if marker in sofs:
                out[pos + 5:pos + 9] = struct.pack(">HH", rows, cols)
                return bytes(out)
            pos += 2 + length
        raise AssertionError("no SOF marker")
    if codec == "j2k":
        at = out.find(b"\xff\x51")
        assert at >= 0
        out[at + 6:at + 14] = struct.pack(">II", cols, rows)  # Xsiz, Ysiz (XOsiz = YOsiz = 0)
        return bytes(out)
    if codec == "rle":
        out[0:4] = struct.pack("<I", 3)  # three segments for one 8-bit sample
        return bytes(out)
    raise ValueError(codec)


def frame_header_bomb(codec: str, rows: int = 8000, cols: int = 8000,
                      frames: tuple[int, ...] = (1, 2, 3, 4)) -> RawInstance:
    """The 4-frame 64 x 64 phantom in ``codec`` with the given frames' headers patched."""
    blob = phantom_part10(4, 64, codec)
    ds = dcmread(DicomBytesIO(blob))
    n = int(ds.NumberOfFrames)
    originals = list(generate_frames(ds.PixelData, number_of_frames=n))
    patched = [_patch_frame(codec, f, rows, cols) if i + 1 in frames else f
               for i, f in enumerate(originals)]
    ds.PixelData = encapsulate(patched)
    buf = DicomBytesIO()
    ds.save_as(buf, enforce_file_format=True)
    fresh = with_new_uids(buf.getvalue())
    _, data = split_part10(fresh.part10())
    return RawInstance(fresh.sop_class_uid, fresh.sop_instance_uid, fresh.transfer_syntax_uid,
                       data)


_LOAD_SCRIPT = """
import json, resource, sys, time
from srservice.dicomio import load_pullback
t0 = time.monotonic()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    loaded = load_pullback(sys.argv[1])
    outcome = "ok " + str(loaded.pullback.frames.shape)
except Exception as exc:
    outcome = type(exc).__name__ + ": " + str(exc)
print(json.dumps({"outcome": outcome, "seconds": time.monotonic() - t0, "base_kb": base,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def peak_rss_of_load(path: Path, timeout: float = 120.0) -> dict[str, object]:
    """Run ``load_pullback(path)`` in a child; return outcome, seconds, base_kb and peak_kb."""
    proc = subprocess.run([sys.executable, "-c", _LOAD_SCRIPT, str(path)], cwd=ROOT,
                          env=child_env(), capture_output=True, text=True, timeout=timeout,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result
