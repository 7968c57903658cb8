"""Database engine and sessions: SQLite (WAL, busy timeout, foreign keys) or PostgreSQL.

Transactions end at the boundary (a request, a sync batch, a CLI command): services
only flush; `session_scope` commits or rolls back.

On SQLite a transaction that reads and then writes must start as a writer (`BEGIN IMMEDIATE`,
`session_scope(..., write=True)`): a deferred one that tries to upgrade while another
connection writes is refused at once ("database is locked") instead of waiting out the busy
timeout. Write transactions therefore queue for the one writer's lock, up to 30 seconds.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Row,
    Table,
    create_engine,
    event,
    make_url,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = [
    "Base",
    "UTCDateTime",
    "begin_write",
    "create_db_engine",
    "for_reading",
    "insert_new",
    "make_session_factory",
    "reading",
    "session_scope",
]

SQLITE_BUSY_TIMEOUT_MS = 30_000


class Base(DeclarativeBase):
    pass


class SQLiteDateTime(sqlite.DATETIME):
    """SQLite's DATETIME, bound with C `isoformat` instead of SQLAlchemy's Python string
    formatting (the sync engine binds six datetimes per shipment it writes). The text is
    SQLAlchemy's own storage format, so stored values and comparisons are unchanged."""

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], str | None]:
        def process(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat(" ", "microseconds")

        return process


_SQLITE_DATETIME = SQLiteDateTime()  # type: ignore[no-untyped-call]  # SQLAlchemy's __init__


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC and always returns them aware, on every engine."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return _SQLITE_DATETIME
        return super().load_dialect_impl(dialect)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def result_processor(
        self, dialect: Dialect, coltype: object
    ) -> Callable[[Any], datetime | None] | None:
        """On SQLite, the text is parsed and made aware in one call: TypeDecorator's own
        chain makes two Python calls a value, and a list page of 50 reads 350 datetimes."""
        if dialect.name == "sqlite":
            return _read_sqlite_datetime
        return super().result_processor(dialect, coltype)


def _read_sqlite_datetime(value: str | None) -> datetime | None:
    """What SQLAlchemy's SQLite DATETIME reads (`datetime.fromisoformat`), then
    `UTCDateTime.process_result_value`."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


# Connections a process keeps open (opened as needed; up to 10 more beyond, closed when given
# back). The API runs up to 10 request transactions at once (`api.deps.REQUEST_TRANSACTIONS`)
# beside its updater; with SQLAlchemy's default of 5, the rest reconnected every time: under
# `bench/api_load.py` on PostgreSQL, 60 new connections a second, each a new server process
# that had to parse and plan every statement afresh (2 processes then held 20 at most).
POOL_SIZE: Final = 15


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    """Create the engine; SQLite connections get WAL, a busy timeout and foreign keys. Bound
    values never appear in SQLAlchemy's error messages (`hide_parameters`): they may be a
    user's text, and an error message may reach a log."""
    kwargs.setdefault("hide_parameters", True)
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", POOL_SIZE)
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={
                "check_same_thread": False,
                "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                "factory": _writer_turns(_writer_lock_file(url)),
            },
            **kwargs,
        )
        event.listen(engine, "connect", _configure_sqlite)
        event.listen(engine, "begin", _begin_immediate_if_writing)
        return engine
    engine = create_engine(url, **kwargs)
    _ping_when_idle(engine)
    return engine


# A pooled connection idle this long is pinged before it is used again; one used more recently
# is trusted (SQLAlchemy's `pool_pre_ping` pings every time: a round trip before every request,
# about 8% of the API's throughput on PostgreSQL under `bench/api_load.py`). A connection the
# server dropped within that time fails its statement instead; that invalidates the whole pool,
# a short read is tried again on a new connection (`api.deps.short_read`) and anything else
# answers 503 (`api.app`).
PING_AFTER_IDLE_S: Final = 5.0


def _ping_when_idle(engine: Engine) -> None:
    dialect = engine.dialect

    def fresh(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    def check(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, _: object) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is not None and time.monotonic() - idle_since < PING_AFTER_IDLE_S:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:  # the pool discards it and connects again
            raise DisconnectionError("The pooled connection no longer answers.") from error

    event.listen(engine, "connect", fresh)
    event.listen(engine, "checkin", fresh)
    event.listen(engine, "checkout", check)


def _configure_sqlite(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    # Let SQLAlchemy issue BEGIN itself so transactions behave the same on both engines.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _begin_immediate_if_writing(connection: Any) -> None:
    mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
    if mode != "IMMEDIATE":
        connection.exec_driver_sql(f"BEGIN {mode}")
        return
    dbapi_connection = connection.connection.dbapi_connection
    dbapi_connection.wait_for_writer_turn()
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        dbapi_connection.end_writer_turn()
        raise


def _writer_lock_file(url: str) -> str | None:
    """Where the writers of every process on this SQLite file take turns: a file beside it
    (None for an in-memory database)."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return f"{os.path.abspath(database)}-writer"


class _FileTurn:
    """The writer's turn among processes: an exclusive `flock` of the lock file, taken by one
    thread of a process at a time (the caller holds its process's lock). Tried without
    blocking, every 0.1 to 2 ms until `timeout`: a blocking `flock` cannot give up, and a few
    hundred tries a second by one waiting thread cost next to nothing."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, timeout: float) -> bool:
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            deadline = time.monotonic() + timeout
            pause = 0.0001
            while True:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        return False
                    time.sleep(pause)
                    pause = min(pause * 2, 0.002)
        except OSError:
            return False  # no lock file (a read-only folder): SQLite's own wait remains

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


def _writer_turns(lock_file: str | None) -> type[sqlite3.Connection]:
    """A connection class whose write transactions take turns on one lock of the engine before
    `BEGIN IMMEDIATE` (and then, with `lock_file`, on a file lock that every process of this
    database takes), and give them back as soon as they commit or roll back.

    SQLite's busy handler makes a writer that finds the database locked sleep and retry (after
    1, 2, 5, 10 ... then every 100 ms), so under steady writes a request waited up to 100 ms
    past the moment the lock was free, and the updater's many short transactions could win the
    retries again and again. Waiting on a lock instead hands the turn over at once: within the
    process on a thread lock, between processes (`serve --workers N`, a `worker`, `sync` from
    cron) on the file lock, within 2 ms. Only programs that are not parcelwatch (the `sqlite3`
    shell) still meet the busy handler. A writer that has waited the whole busy timeout for
    its turn goes on to SQLite's own wait.

    A write never begins on the server's event loop (every write runs on a worker thread):
    a request's SQLite commit happens on the loop, so a loop waiting for its turn would wait
    for itself."""
    turn = threading.Lock()
    between_processes = _FileTurn(lock_file) if lock_file else None

    class TakingTurns(sqlite3.Connection):
        holding = False
        holding_file = False

        def wait_for_writer_turn(self) -> None:
            timeout = SQLITE_BUSY_TIMEOUT_MS / 1000
            started = time.monotonic()
            self.holding = turn.acquire(timeout=timeout)
            if self.holding and between_processes is not None:
                waited = time.monotonic() - started
                self.holding_file = between_processes.acquire(max(0.0, timeout - waited))

        def end_writer_turn(self) -> None:
            if self.holding_file and between_processes is not None:
                self.holding_file = False
                between_processes.release()
            if self.holding:
                self.holding = False
                turn.release()

        def commit(self) -> None:
            try:
                super().commit()
            finally:
                self.end_writer_turn()

        def rollback(self) -> None:
            try:
                super().rollback()
            finally:
                self.end_writer_turn()

        def close(self) -> None:
            try:
                super().close()
            finally:
                self.end_writer_turn()

    return TakingTurns


def for_reading(engine: Engine) -> Engine:
    """`engine` for sessions that only read. On PostgreSQL their statements run outside a
    transaction (AUTOCOMMIT): under READ COMMITTED each statement sees a snapshot of its own
    anyway, so a read sees what it would inside a transaction, without the BEGIN and the
    ROLLBACK. The ROLLBACK above all: psycopg forgets a connection's prepared statements at
    every rollback, so while the API's reads ended with one, no statement it ran was ever
    prepared, and PostgreSQL parsed and planned each again (0.3 ms of its CPU for a read by
    id). A write through it, which would commit statement by statement, is refused.
    Elsewhere, `engine` itself."""
    if engine.dialect.name != "postgresql":
        return engine
    reading = engine.execution_options(isolation_level="AUTOCOMMIT")
    event.listen(reading, "before_cursor_execute", _refuse_writes)
    return reading


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection for a read, outside a transaction on PostgreSQL (as `for_reading`, and for
    the same reason: closed, it rolls nothing back, so its prepared statements stay)."""
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.execution_options(isolation_level="AUTOCOMMIT")
        yield connection


def _refuse_writes(
    _connection: Connection,
    _cursor: object,
    _statement: str,
    _parameters: object,
    context: DefaultExecutionContext | None,
    _executemany: bool,
) -> None:
    if context is not None and (context.isinsert or context.isupdate or context.isdelete):
        raise RuntimeError("A read-only session was asked to write: use a writing session.")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


def begin_write(session: Session) -> None:
    """Start the session's transaction as a writer (SQLite: `BEGIN IMMEDIATE`, which waits
    for the write lock; elsewhere an ordinary BEGIN). Call before the first statement."""
    session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})


@contextmanager
def session_scope(factory: sessionmaker[Session], *, write: bool = False) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any exception. `write` when it may
    write (see the module docstring)."""
    session = factory()
    try:
        if write:
            begin_write(session)
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def insert_new(
    connection: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    unique: Sequence[str],
    returning: Sequence[Column[Any]],
) -> list[Row[Any]]:
    """Insert the rows whose `unique` columns match no stored row (ON CONFLICT DO NOTHING, on
    both supported engines); the `returning` columns of those inserted. RETURNING, not
    rowcount, says what was new: rowcount is unreliable for executemany on psycopg."""
    if not rows:
        return []
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).on_conflict_do_nothing(index_elements=list(unique))
    return list(connection.execute(statement.returning(*returning), list(rows)).all())
