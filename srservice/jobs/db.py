"""Engine and transactions of the job store: SQLite (WAL, busy timeout) or PostgreSQL by URL.

SQLite (the embedded default) is opened in WAL mode with a busy timeout, and every transaction
starts with ``BEGIN IMMEDIATE`` (the SQLAlchemy pysqlite recipe) so that two processes never
deadlock upgrading a read lock to a write lock. PostgreSQL connections are pre-pinged so a
restarted server is reconnected transparently. Connection-level failures of either become
:class:`srservice.errors.TransientError` (C-STORE status 0xA700, task retried); for SQLite only
the result codes that pass with time do (busy, locked, full, I/O error, cannot open;
https://www.sqlite.org/rescode.html). A damaged store (corrupt or not a database, a missing
table, a read-only file) is :class:`srservice.errors.JobStoreDamagedError`: waiting does not
repair it. :func:`check_integrity` runs ``PRAGMA quick_check`` (SQLite) at start-up and in
``srservice check``.
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
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session

from srservice.errors import ConfigError, JobStoreDamagedError, TransientError, reason_for
from srservice.jobs.models import Base

LOGGER = logging.getLogger(__name__)

#: SQLite busy timeout (ms): how long a writer waits for another process's transaction.
SQLITE_BUSY_TIMEOUT_MS = 30_000


#: Failures of the connection (not of our SQL): the database is down, restarting or locked.
_TRANSIENT = (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError)


#: SQLite primary result codes that pass with time (https://www.sqlite.org/rescode.html):
#: BUSY, LOCKED, IOERR, CANTOPEN, FULL.
SQLITE_TRANSIENT_CODES = frozenset({5, 6, 10, 13, 14})
#: How many lines of ``PRAGMA quick_check`` output a damaged-store reason quotes.
QUICK_CHECK_LINES = 1


def store_failure(exc: SQLAlchemyError) -> SQLAlchemyError | TransientError | JobStoreDamagedError:
    """Classify a database error: transient (retry), damaged store, or ``exc`` itself.

    Parameters
    ----------
    exc : sqlalchemy.exc.SQLAlchemyError
        What a statement or a connection raised.

    Returns
    -------
    TransientError, JobStoreDamagedError or SQLAlchemyError
        :class:`TransientError` for connection, pool, busy, locked and disk failures;
        :class:`JobStoreDamagedError` for any other SQLite error of the database itself
        (result codes CORRUPT, NOTADB, READONLY, a missing table, ...); ``exc`` unchanged for
        errors of a statement (constraint violations, which the store handles itself).
    """
    orig = exc.orig if isinstance(exc, DBAPIError) else None
    code = getattr(orig, "sqlite_errorcode", None)
    if orig is not None and code is not None and not isinstance(exc, IntegrityError):
        if code & 0xFF in SQLITE_TRANSIENT_CODES:
            return TransientError(f"job store unavailable: {reason_for(orig)}")
        return JobStoreDamagedError(f"job store damaged: {reason_for(orig)}")
    if isinstance(exc, _TRANSIENT):
        return TransientError(f"job store unavailable: {reason_for(exc)}")
    return exc


def check_integrity(engine: Engine) -> None:
    """Run ``PRAGMA quick_check`` on an SQLite job store (nothing to check for PostgreSQL).

    Raises
    ------
    JobStoreDamagedError
        The check reports a problem or cannot run because the file is damaged; the message
        is one line with SQLite's first finding.
    TransientError
        The store is busy or cannot be reached right now.
    """
    if engine.dialect.name != "sqlite":
        return
    try:
        with engine.connect() as conn:
            rows = [str(r[0]) for r in conn.exec_driver_sql("PRAGMA quick_check")]
    except SQLAlchemyError as exc:
        raise store_failure_or_damaged(exc) from None
    if rows != ["ok"]:
        # one row may hold several lines, the first naming the database ("*** in database")
        lines = [line.strip() for row in rows for line in row.splitlines()
                 if line.strip() and not line.startswith("***")] or ["no result"]
        found = "; ".join(lines[:QUICK_CHECK_LINES])
        more = len(lines) - QUICK_CHECK_LINES
        raise JobStoreDamagedError(f"job store damaged: PRAGMA quick_check: {found}"
                                   + (f" (and {more} more)" if more > 0 else ""))


def store_failure_or_damaged(exc: SQLAlchemyError) -> TransientError | JobStoreDamagedError:
    """:func:`store_failure`, where an unclassified error also means a damaged store."""
    found = store_failure(exc)
    if isinstance(found, TransientError | JobStoreDamagedError):
        return found
    return JobStoreDamagedError(f"job store damaged: {reason_for(exc)}")


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
        The URL cannot be parsed (e.g. a port that is not a number) or names an unsupported
        driver.
    TransientError
        The database cannot be reached right now.
    JobStoreDamagedError
        The SQLite file is not a database or is damaged.
    """
    try:
        parsed = make_url(url)
    except ValueError:  # SQLAlchemy converts the port with int(); the URL may hold a password
        raise ConfigError("SRSERVICE_DATABASE_URL: the port is not a number") from None
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
        except (IntegrityError, ProgrammingError) as exc:
            if engine.dialect.name == "sqlite":
                raise store_failure_or_damaged(exc) from None
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))
        except SQLAlchemyError as exc:
            failure = store_failure_or_damaged(exc)
            if attempt == 4 or isinstance(failure, JobStoreDamagedError):
                raise failure from None
            time.sleep(0.2 * (attempt + 1))


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """Yield a session in one transaction; commit at the end, roll back on error.

    Raises
    ------
    TransientError
        For connection, lock and pool failures (the caller or the sender retries).
    JobStoreDamagedError
        The SQLite store is damaged (:func:`store_failure`).
    """
    try:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            yield session
    except SQLAlchemyError as exc:
        failure = store_failure(exc)
        if failure is exc:
            raise
        raise failure from exc
