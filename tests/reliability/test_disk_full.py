"""Disk full and the free-space watermark on a small real volume (docs/reliability.md, P8).

A 20 MiB tmpfs is mounted for the data directory (root only; where mounting is not permitted
the test skips locally and fails in CI). Filling it makes C-STORE answer 0xA700 (PS3.4 B.2.3
"Refused: Out of Resources") with nothing partial in the spool, and a resend succeeds once
space returns. The watermark (``min_free_disk_mb``) refuses before the disk is full.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import figures
from tests.support.datasets import US_MULTIFRAME
from tests.support.environment import missing
from tests.support.listener import RunningScp
from tests.support.reliability import (
    EXPLICIT_LE,
    RawInstance,
    Sender,
    phantom_part10,
    sha256_of_stored,
    split_part10,
    spool_finals,
    spool_partials,
    with_new_uids,
    write_huge,
)

pytestmark = pytest.mark.timeout(120)
CONTEXTS = [(US_MULTIFRAME, EXPLICIT_LE)]


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 20 MiB tmpfs mounted at a private directory; unmounted afterwards."""
    mnt = tmp_path / "vol"
    mnt.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        missing("mounting a tmpfs needs root and mount(8)")
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mnt)],
                         capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        missing(f"cannot mount a tmpfs here: {out.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def fill(volume: Path, leave_bytes: int) -> Path:
    """Write a filler file until only about ``leave_bytes`` are free on ``volume``."""
    filler = volume / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for block in (1 << 16, 4096):
            while shutil.disk_usage(volume).free > leave_bytes + block:
                os.write(fd, b"\0" * block)
    finally:
        os.close(fd)
    return filler


def big_instance(tmp_path: Path, megabytes: int) -> RawInstance:
    path = tmp_path / "big.dcm"
    uid, _, _ = write_huge(path, megabytes * 1024**2)
    _, data = split_part10(path.read_bytes())
    path.unlink()
    return RawInstance(US_MULTIFRAME, uid, EXPLICIT_LE, data)


def test_disk_full_answers_a700_then_recovers(scp: Callable[..., RunningScp], tmp_path: Path,
                                              small_volume: Path) -> None:
    running = scp(data_dir=small_volume / "data", min_free_disk_mb=0)
    big = big_instance(tmp_path, 6)
    filler = fill(small_volume, 3 * 1024**2)
    sender = Sender(running.port, CONTEXTS, tmp_path / "s")
    first = sender.send(big)  # does not fit into the ~3 MiB left
    assert first == 0xA700, f"status 0x{first or 0:04X}"
    assert spool_finals(running.spool) == [] and spool_partials(running.spool) == []
    # Completely full: even a small object is refused the same way, and the listener lives on.
    fd = os.open(filler, os.O_WRONLY | os.O_APPEND)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    assert shutil.disk_usage(small_volume).free < 4096
    small = with_new_uids(phantom_part10())
    second = sender.send(small)
    assert second == 0xA700, f"status 0x{second or 0:04X}"
    assert spool_finals(running.spool) == [] and spool_partials(running.spool) == []
    # Space returns: the resend of both succeeds, byte for byte.
    filler.unlink()
    assert sender.send(big) == 0x0000
    assert sender.send(small) == 0x0000
    sender.release()
    finals = spool_finals(running.spool)
    assert sorted(sha256_of_stored(p) for p in finals) == sorted([big.sha256, small.sha256])
    assert spool_partials(running.spool) == []
    figures.record("disk full", "6 MiB instance, 3 MiB free", f"0x{first:04X}, no partial file")
    figures.record("disk full", "small instance, 0 bytes free", f"0x{second:04X}, no partial file")
    figures.record("disk full", "resend after space returned", "0x0000, stored intact")


def test_free_space_watermark(scp: Callable[..., RunningScp], tmp_path: Path,
                              small_volume: Path) -> None:
    running = scp(data_dir=small_volume / "data", min_free_disk_mb=15)
    filler = fill(small_volume, 12 * 1024**2)
    inst = with_new_uids(phantom_part10())
    sender = Sender(running.port, CONTEXTS, tmp_path / "s")
    status = sender.send(inst)
    assert status == 0xA700
    assert spool_finals(running.spool) == [] and spool_partials(running.spool) == []
    filler.unlink()
    assert sender.send(inst) == 0x0000
    sender.release()
    assert [sha256_of_stored(p) for p in spool_finals(running.spool)] == [inst.sha256]
    figures.record("disk full", "below 15 MiB watermark (12 MiB free)", f"0x{status:04X}")
