"""Fixtures of the reliability suite: the real listener in-process and as a child process.

Every process and server started here is stopped by a finalizer; ports are picked by the OS
(port 0) or :func:`tests.conftest.free_port`; waiting is polling with deadlines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from srservice.config import Settings
from srservice.scp import start_scp
from tests.reliability import figures
from tests.reliability.support import (
    ListenerProcess,
    reliability_settings,
)
from tests.scp_support import Recorder


class RunningScp:
    """An in-process listener started with :func:`srservice.scp.start_scp`."""

    def __init__(self, settings: Settings, callback: Recorder, server: Any) -> None:
        self.settings = settings
        self.callback = callback
        self.server = server

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def spool(self) -> Path:
        return self.settings.spool_dir


@pytest.fixture
def scp(tmp_path: Path) -> Iterator[Callable[..., RunningScp]]:
    """Factory: ``scp(**settings_overrides)`` starts a listener on a free port."""
    started: list[Any] = []

    def start(**overrides: Any) -> RunningScp:
        data_dir = overrides.pop("data_dir", tmp_path / f"data{len(started)}")
        settings = reliability_settings(data_dir, **overrides)
        callback = Recorder()
        server = start_scp(settings, callback)
        started.append(server)
        return RunningScp(settings, callback, server)

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


@pytest.fixture
def listener_processes() -> Iterator[list[ListenerProcess]]:
    """Child listener processes to SIGKILL at teardown (append what you start)."""
    started: list[ListenerProcess] = []
    yield started
    for proc in started:
        proc.kill()


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A redis-server of our own on a free port (no persistence), killed afterwards.

    A private server instead of a db index of the machine's Redis: other test runs on the
    same machine pick random db indexes and flush them, and their workers would consume our
    tasks if they picked the same index.
    """
    from tests.test_e2e_faults import PrivateRedis

    (tmp_path / "redis").mkdir(exist_ok=True)
    server = PrivateRedis(tmp_path / "redis").start()
    try:
        yield server.url
    finally:
        server.kill()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the reliability figures recorded during the run."""
    recorded = figures.recorded()
    if recorded:
        terminalreporter.write_sep("=", "srservice reliability figures")
        terminalreporter.write_line(figures.table(recorded))
