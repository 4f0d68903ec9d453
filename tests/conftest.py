"""Shared test fixtures.

In CI (``CI=true``) a missing tool or server fails the test; elsewhere it skips with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.orthanc import OrthancServer

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing(reason: str) -> None:
    """Fail in CI, skip elsewhere."""
    if IN_CI:
        pytest.fail(f"required in CI but missing: {reason}")
    pytest.skip(reason)


def require_tool(name: str) -> str:
    """Return the path of executable ``name`` or fail (CI) / skip (local)."""
    path = shutil.which(name)
    if path is None:
        missing(f"executable {name!r} not on PATH (install with scripts/install-system-deps.sh)")
    assert path is not None
    return path


@pytest.fixture
def tool() -> Callable[[str], str]:
    """``tool("storescu")`` -> path, failing in CI when absent."""
    return require_tool


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def port() -> int:
    """A free TCP port."""
    return free_port()


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[OrthancServer]:
    """A real Orthanc (Debian package) on free ports, stopped after the test."""
    from tests.orthanc import OrthancServer

    server = OrthancServer(tmp_path / "orthanc").start()
    try:
        yield server
    finally:
        server.stop()
