"""`kill -9` of `parcelwatch sync` and of `parcelwatch serve` mid-pass, several times, on both
databases: the database stays sound, no event is lost or duplicated against an uninterrupted
reference run, no run is left `running`, and the next engine takes over the dead one's leases
at once instead of waiting out the 10-minute lease."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from parcelwatch.db import create_db_engine, make_session_factory
from parcelwatch.models import Shipment, SyncRun, TrackingEvent
from parcelwatch.shipments.service import register_shipment
from tests.conftest import Database, free_port
from tests.sync.conftest import Emulator, running_emulator
from tests.sync.test_signals import PARCELWATCH, start

NUMBERS = [f"1ZCRASH{n:011d}" for n in range(1, 41)]
EventKey = tuple[str, str, str, str | None]


@pytest.fixture(scope="module")
def frozen_emulator() -> Iterator[Emulator]:
    """A stopped clock (every run sees the same storylines) and 150 ms per request, so that a
    pass lasts long enough to be killed in the middle."""
    with running_emulator(
        speed=0, head_start=timedelta(days=2), latency={"distribution": "fixed", "ms": 150}
    ) as emulator:
        yield emulator


def register_all(database: Database) -> None:
    with database.sessions.begin() as session:
        for number in NUMBERS:
            register_shipment(session, tracking_number=number, carrier="ups")


def events_by_number(database: Database) -> dict[str, list[EventKey]]:
    with database.sessions() as session:
        rows = session.execute(
            select(
                Shipment.tracking_number,
                TrackingEvent.occurred_at,
                TrackingEvent.status,
                TrackingEvent.description,
                TrackingEvent.city,
            ).join(TrackingEvent, TrackingEvent.shipment_id == Shipment.id)
        ).all()
    found: dict[str, list[EventKey]] = {}
    for number, occurred_at, status, description, city in rows:
        found.setdefault(number, []).append(
            (occurred_at.isoformat(), str(status), description, city)
        )
    return {number: sorted(events) for number, events in found.items()}


@pytest.fixture(scope="module")
def reference(
    frozen_emulator: Emulator, tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> dict[str, list[EventKey]]:
    """The events an uninterrupted `sync` writes for `NUMBERS`."""
    path = tmp_path_factory.mktemp("reference") / "reference.db"
    shutil.copy(sqlite_template, path)
    engine = create_db_engine(f"sqlite:///{path}")
    database = Database(
        url=f"sqlite:///{path}", engine=engine, sessions=make_session_factory(engine)
    )
    register_all(database)
    sync_to_the_end(frozen_emulator, database)
    events = events_by_number(database)
    engine.dispose()
    assert len(events) > len(NUMBERS) / 2  # some storylines are not found or have no scan yet
    return events


def env_for(emulator: Emulator, database: Database, **overrides: object) -> dict[str, str]:
    return os.environ | emulator.environment(
        database, ups_max_concurrency=2, auto_update_batch_size=1, **overrides
    )


def sync_to_the_end(emulator: Emulator, database: Database, *args: str) -> str:
    """`parcelwatch sync ARGS`, uninterrupted; it must succeed. Its standard output."""
    done = subprocess.run(
        [PARCELWATCH, "sync", *args],
        env=env_for(emulator, database),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def ups_requests(emulator: Emulator) -> int:
    return int(emulator.stats()["requests"].get("ups", 0))


def kill_when_busy(process: subprocess.Popen[str], emulator: Emulator, after: int) -> None:
    """SIGKILL `process` once the emulator has answered `after` more UPS requests."""
    goal = ups_requests(emulator) + after
    deadline = time.monotonic() + 30
    while ups_requests(emulator) < goal:
        if process.poll() is not None:
            raise AssertionError(f"it finished before it could be killed: {process.communicate()}")
        assert time.monotonic() < deadline, "the engine never got going"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=10)
    assert process.returncode == -signal.SIGKILL


def leased_to_the_dead(database: Database) -> int:
    with database.sessions() as session:
        return session.scalar(select(func.count()).where(Shipment.lease_owner.is_not(None))) or 0


def finish_and_check(
    database: Database, emulator: Emulator, reference: dict[str, list[EventKey]], kills: int
) -> None:
    """A last, uninterrupted `sync`: it takes over, finishes, and the result is the reference."""
    assert leased_to_the_dead(database) > 0
    started = time.monotonic()
    summary = json.loads(sync_to_the_end(emulator, database, "--json"))
    assert summary["taken_over"] > 0
    assert time.monotonic() - started < 60  # not the 10-minute lease
    assert leased_to_the_dead(database) == 0
    assert events_by_number(database) == reference  # nothing lost, nothing twice
    with database.sessions() as session:
        outcomes = session.scalars(select(SyncRun.outcome).order_by(SyncRun.id)).all()
        assert "running" not in outcomes
        assert outcomes.count("abandoned") == kills
        unsynced = session.scalar(select(func.count()).where(Shipment.auto_refresh_count == 0))
        assert unsynced == 0
        duplicates = session.execute(
            select(TrackingEvent.shipment_id, TrackingEvent.dedupe_key)
            .group_by(TrackingEvent.shipment_id, TrackingEvent.dedupe_key)
            .having(func.count() > 1)
        ).all()
        assert duplicates == []
        if database.dialect == "sqlite":
            assert session.execute(text("PRAGMA integrity_check")).scalar() == "ok"
            assert session.execute(text("PRAGMA foreign_key_check")).all() == []
    stats = json.loads(sync_to_the_end(emulator, database, "--stats", "--json"))
    assert "running" not in {run["outcome"] for run in stats["last_runs"]}


def test_kill_9_of_sync_mid_pass_three_times_loses_and_doubles_nothing(
    database: Database, frozen_emulator: Emulator, reference: dict[str, list[EventKey]]
) -> None:
    register_all(database)
    kills = 3
    for _ in range(kills):
        command = start(["sync"], env_for(frozen_emulator, database))
        kill_when_busy(command, frozen_emulator, after=5)
        with database.sessions() as session:
            assert "running" in session.scalars(select(SyncRun.outcome)).all()
    finish_and_check(database, frozen_emulator, reference, kills)


def test_kill_9_of_serve_mid_pass_twice_loses_and_doubles_nothing(
    database: Database, frozen_emulator: Emulator, reference: dict[str, list[EventKey]]
) -> None:
    register_all(database)
    kills = 2
    for _ in range(kills):
        server = start(
            ["serve", "--port", str(free_port())],
            env_for(frozen_emulator, database, auto_update_enabled=True),
        )
        kill_when_busy(server, frozen_emulator, after=5)
    finish_and_check(database, frozen_emulator, reference, kills)
