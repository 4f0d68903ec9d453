"""Fixtures shared by every test directory; the helpers themselves live in :mod:`tests.support`.

In CI (``CI=true``) a missing tool or server fails the test; elsewhere it skips with the reason
(:func:`tests.support.environment.missing`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.environment import free_port, require_tool
from tests.support.listener import ListenerProcess, issue_pki
from tests.support.orthanc import OrthancServer
from tests.support.service import PrivateRedis, Service


@pytest.fixture
def tool() -> Callable[[str], str]:
    """``tool("storescu")`` -> path, failing in CI when absent."""
    return require_tool


@pytest.fixture
def port() -> int:
    """A free TCP port."""
    return free_port()


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[OrthancServer]:
    """A real Orthanc (Debian package) on free ports, stopped after the test."""
    server = OrthancServer(tmp_path / "orthanc").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A redis-server of our own on a free port (no persistence), killed afterwards.

    A private server instead of a db index of the machine's Redis: two test runs on one
    machine would otherwise flush each other's queues, and their workers would consume each
    other's tasks.
    """
    (tmp_path / "redis").mkdir(exist_ok=True)
    server = PrivateRedis(tmp_path / "redis").start()
    try:
        yield server.url
    finally:
        server.kill()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL on a fresh PostgreSQL schema, dropped afterwards."""
    from tests.support.jobs import pg_schema_url

    yield from pg_schema_url()


@pytest.fixture
def make_service(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """Factory: ``make_service(**settings)`` -> a :class:`~tests.support.service.Service`
    (not started), stopped at teardown."""
    started: list[Service] = []

    def make(**settings: str) -> Service:
        service = Service(tmp_path, **settings)
        started.append(service)
        return service

    yield make
    for s in started:
        s.stop()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """CA, server and client certificates, and a self-signed rogue client (openssl)."""
    return issue_pki(require_tool("openssl"), tmp_path_factory.mktemp("pki"))


@pytest.fixture
def listener_processes() -> Iterator[list[ListenerProcess]]:
    """Child listener processes to SIGKILL at teardown (append what you start)."""
    started: list[ListenerProcess] = []
    yield started
    for proc in started:
        proc.kill()
