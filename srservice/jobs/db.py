"""Engine and transactions of the job store: SQLite (WAL, busy timeout) or PostgreSQL by URL.

SQLite (the embedded default) is opened in WAL mode with a busy timeout, and every transaction
starts with ``BEGIN IMMEDIATE`` (the SQLAlchemy pysqlite recipe) so that two processes never
deadlock upgrading a read lock to a write lock. PostgreSQL connections are pre-pinged so a
restarted server is reconnected transparently. Connection-level failures of either become
:class:`srservice.errors.TransientError` (C-STORE status 0xA700, task retried).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session

from srservice.errors import ConfigError, TransientError, reason_for
from srservice.jobs.models import Base

LOGGER = logging.getLogger(__name__)

#: SQLite busy timeout (ms): how long a writer waits for another process's transaction.
SQLITE_BUSY_TIMEOUT_MS = 30_000


#: Failures of the connection (not of our SQL): the database is down, restarting or locked.
_TRANSIENT = (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError)


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    """Create the engine for ``url`` and the tables if missing.

    Raises
    ------
    ConfigError
        The URL cannot be parsed or names an unsupported driver.
    TransientError
        The database cannot be reached right now.
    """
    try:
        parsed = make_url(url)
    except SQLAlchemyError as exc:
        raise ConfigError(f"SRSERVICE_DATABASE_URL: {reason_for(exc)}") from None
    try:
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                                                         "check_same_thread": False})
            _sqlite_setup(engine)
        else:
            engine = create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=10,
                                   pool_timeout=30)
    except (ImportError, SQLAlchemyError) as exc:
        raise ConfigError(f"SRSERVICE_DATABASE_URL: {reason_for(exc)}") from None
    _create_tables(engine)
    return engine


def _create_tables(engine: Engine) -> None:
    # Several processes may start at once (serve + workers): a concurrent CREATE on PostgreSQL
    # can fail with a duplicate-type error; the second attempt then finds the tables.
    for attempt in range(5):
        try:
            Base.metadata.create_all(engine)
            return
        except (IntegrityError, ProgrammingError):
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))
        except _TRANSIENT as exc:
            if attempt == 4:
                raise TransientError(f"job store unavailable: {reason_for(exc)}") from exc
            time.sleep(0.2 * (attempt + 1))


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """Yield a session in one transaction; commit at the end, roll back on error.

    Raises
    ------
    TransientError
        For connection, lock and pool failures (the caller or the sender retries).
    """
    try:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            yield session
    except _TRANSIENT as exc:
        raise TransientError(f"job store unavailable: {reason_for(exc)}") from exc
