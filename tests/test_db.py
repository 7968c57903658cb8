"""UTCDateTime: aware in, aware out, stored as UTC; on SQLite as exactly the text SQLAlchemy's
own DATETIME writes, so rows written before and after the fast binding compare and sort alike;
and write sessions that queue for SQLite's one writer."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Column, Integer, MetaData, Table, event, insert, select, text
from sqlalchemy.dialects import sqlite

from parcelwatch.db import UTCDateTime, create_db_engine, make_session_factory, session_scope

naive = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))


@given(naive)
def test_sqlite_binding_writes_sqlalchemys_own_datetime_text(value: datetime) -> None:
    dialect = sqlite.dialect()
    ours = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    theirs = sqlite.DATETIME().bind_processor(dialect)
    assert ours is not None
    assert theirs is not None
    assert ours(value.replace(tzinfo=UTC)) == theirs(value)


@given(naive, st.integers(min_value=-12 * 60, max_value=14 * 60))
def test_sqlite_round_trip_is_the_same_instant_in_utc(value: datetime, offset: int) -> None:
    zone = timezone(timedelta(minutes=offset))
    aware = value.replace(tzinfo=zone)
    if not datetime(1, 1, 2, tzinfo=UTC) <= aware <= datetime(9999, 12, 30, tzinfo=UTC):
        return
    dialect = sqlite.dialect()
    column = UTCDateTime()
    bind = column.dialect_impl(dialect).bind_processor(dialect)
    result = column.dialect_impl(dialect).result_processor(dialect, None)
    assert bind is not None
    assert result is not None
    back = result(bind(aware))
    assert back == aware
    assert back.tzinfo is UTC


@given(naive, st.sampled_from(["", "+00:00", "-05:00", "+05:30"]), st.booleans())
def test_sqlite_reading_is_sqlalchemys_own_then_made_aware_in_utc(
    value: datetime, offset: str, whole_seconds: bool
) -> None:
    """Whatever text SQLAlchemy's DATETIME reads (its own, one without microseconds, one a
    person or another tool stored with an offset), the one-call reader gives the same."""
    dialect = sqlite.dialect()
    stored = (value.replace(microsecond=0) if whole_seconds else value).isoformat(" ") + offset
    column = UTCDateTime()
    ours = column.dialect_impl(dialect).result_processor(dialect, None)
    theirs = sqlite.DATETIME().result_processor(dialect, None)
    assert ours is not None
    assert theirs is not None
    try:
        expected = column.process_result_value(theirs(stored), dialect)
    except OverflowError:  # an offset that moves the instant out of datetime's range
        with pytest.raises(OverflowError):
            ours(stored)
        return
    assert ours(stored) == expected
    assert ours(stored).tzinfo is UTC
    assert ours(None) is None


def test_sqlite_stores_utc_text_that_sorts_in_time_order(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    table = Table(
        "t", MetaData(), Column("id", Integer, primary_key=True), Column("at", UTCDateTime)
    )
    table.metadata.create_all(engine)
    later = datetime(2026, 12, 2, 10, 0, tzinfo=timezone(timedelta(hours=-5)))  # 15:00 UTC
    earlier = datetime(2026, 12, 2, 14, 59, 59, 999999, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(insert(table), [{"id": 1, "at": later}, {"id": 2, "at": earlier}])
        stored = connection.execute(text("SELECT at FROM t ORDER BY at")).scalars().all()
        assert stored == ["2026-12-02 14:59:59.999999", "2026-12-02 15:00:00.000000"]
        assert connection.scalars(select(table.c.at).where(table.c.id == 1)).one() == later
    engine.dispose()


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        UTCDateTime().process_bind_param(datetime(2026, 12, 2), sqlite.dialect())


def test_a_write_session_waits_for_another_sqlite_writer_instead_of_failing(
    tmp_path: Path,
) -> None:
    """A deferred transaction that reads, lets another writer commit, then writes is refused
    at once ("database is locked"); a write session starts as the writer and waits."""
    engine = create_db_engine(f"sqlite:///{tmp_path / 'writers.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (n INTEGER)"))
    other = engine.connect().execution_options(sqlite_begin="IMMEDIATE")
    other.begin()
    other.execute(text("INSERT INTO t VALUES (1)"))
    threading.Timer(0.3, other.commit).start()
    with session_scope(make_session_factory(engine), write=True) as session:
        seen = session.scalar(text("SELECT count(*) FROM t"))
        time.sleep(0.6)  # a deferred reader's snapshot would now be older than the commit
        session.execute(text("INSERT INTO t VALUES (2)"))
    other.close()
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM t")) == 2
    assert seen == 1  # it began after the other writer committed
    engine.dispose()


def test_writers_of_one_process_take_turns_without_meeting_sqlites_busy_handler(
    tmp_path: Path,
) -> None:
    """With SQLite's busy wait switched off, writers of one engine that overlap all the time
    still never see "database is locked": each waits for its turn on the engine's lock and is
    handed it as the previous one commits or rolls back (no sleep-and-retry)."""
    engine = create_db_engine(f"sqlite:///{tmp_path / 'turns.db'}")

    @event.listens_for(engine, "connect")
    def no_busy_wait(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=0")

    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (n INTEGER)"))
    errors: list[Exception] = []

    def write(rollback_every: int) -> None:
        for n in range(40):
            try:
                writing = engine.connect().execution_options(sqlite_begin="IMMEDIATE")
                with writing as connection:
                    transaction = connection.begin()
                    connection.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
                    time.sleep(0.002)  # hold the lock while the others want it
                    if n % rollback_every == 0:
                        transaction.rollback()
                    else:
                        transaction.commit()
            except Exception as error:
                errors.append(error)

    threads = [threading.Thread(target=write, args=(every,)) for every in (3, 5, 7, 11)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with engine.connect() as connection:
        kept = connection.scalar(text("SELECT count(*) FROM t"))
    assert kept == sum(40 - len(range(0, 40, every)) for every in (3, 5, 7, 11))
    engine.dispose()


def _write_rows_without_busy_wait(url: str, first: int, start_at: float) -> int:
    """A process of its own writing 30 rows from `start_at` (a `time.time()`, when the others
    start too) with SQLite's busy wait off; the number of writes refused."""
    engine = create_db_engine(url)

    @event.listens_for(engine, "connect")
    def no_busy_wait(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=0")

    refused = 0
    time.sleep(max(0.0, start_at - time.time()))
    for n in range(first, first + 30):
        try:
            with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as connection:
                transaction = connection.begin()
                connection.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
                time.sleep(0.003)  # hold the lock while the other processes want it
                transaction.commit()
        except Exception:
            refused += 1
    engine.dispose()
    return refused


def test_writers_of_several_processes_take_turns_too(tmp_path: Path) -> None:
    """`serve --workers N`, a worker and a cron `sync` write one SQLite file: their writers
    take turns on a lock file beside it, so with SQLite's busy wait off none is refused."""
    url = f"sqlite:///{tmp_path / 'processes.db'}"
    engine = create_db_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (n INTEGER)"))
    engine.dispose()
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as pool:
        start_at = time.time() + 5  # every process started by then
        refused = pool.starmap(
            _write_rows_without_busy_wait, [(url, first, start_at) for first in (0, 100, 200)]
        )
    assert refused == [0, 0, 0]
    assert (tmp_path / "processes.db-writer").exists()
    engine = create_db_engine(url)
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM t")) == 90
    engine.dispose()
