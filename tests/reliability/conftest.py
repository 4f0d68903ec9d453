"""Fixtures of the reliability suite: the real listener in-process (``scp``).

Child listener processes, the private Redis and the whole service are the fixtures of
``tests/conftest.py``.

Every process and server started here is stopped by a finalizer; ports are picked by the OS
(port 0) or :func:`tests.support.environment.free_port`; waiting is polling with deadlines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from srservice.listener.scp import start_scp
from tests.support import figures
from tests.support.listener import Recorder, RunningScp
from tests.support.reliability import reliability_settings


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


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the reliability figures recorded during the run."""
    recorded = figures.recorded()
    if recorded:
        terminalreporter.write_sep("=", "srservice reliability figures")
        terminalreporter.write_line(figures.table(recorded))
