"""What a crashed engine leaves (a run `running`, leases, its heartbeat row) is cleaned up by the
next engine as soon as the crashed one is known to be gone, not when its leases run out."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from parcelwatch.config import Settings
from parcelwatch.domain import utcnow
from parcelwatch.lifecycle import Lifecycle
from parcelwatch.models import EngineHeartbeat, Shipment, SyncRun
from parcelwatch.ops.health import health_report
from parcelwatch.sync import report
from parcelwatch.sync.claims import claim
from parcelwatch.sync.outcomes import PassOutcome, PassTrigger
from parcelwatch.sync.recovery import gone_engine_ids, process_alive
from parcelwatch.sync.runs import PassSummary, beat, start_run
from parcelwatch.sync.selection import Selection, claimable_filter
from parcelwatch.sync.testing import FakeProvider
from tests.conftest import Database
from tests.sync.conftest import EngineFactory, ShipmentFactory, eventually

pytestmark = pytest.mark.anyio

LEASE = timedelta(minutes=10)


def dead_pid() -> int:
    """The id of a process of this host that has exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    assert not process_alive(process.pid)
    return process.pid


def crashed_engine(
    database: Database, settings: Settings, *, engine_id: str, pid: int, silent_for: timedelta
) -> int:
    """What `kill -9` mid-pass leaves: a run `running`, a heartbeat row last refreshed
    `silent_for` ago by process `pid`, and every due UPS shipment leased to it. Returns the
    run id."""
    summary = PassSummary(trigger=PassTrigger.SYNC, engine_id=engine_id)
    run_id = start_run(database.engine, summary)
    beat(database.engine, engine_id=engine_id, kind="sync", started_at=utcnow(), paused=False)
    now = utcnow()
    lifecycle = Lifecycle.from_settings(settings, tracked=["ups"])
    where = claimable_filter(Selection(), now=now, lifecycle=lifecycle, carriers=["ups"])
    claimed = claim(database.engine, owner=engine_id, where=where, limit=100, lease=LEASE, now=now)
    assert claimed
    with database.sessions.begin() as session:
        session.execute(
            update(EngineHeartbeat)
            .where(EngineHeartbeat.engine_id == engine_id)
            .values(pid=pid, heartbeat_at=now - silent_for)
        )
        session.execute(
            update(SyncRun).where(SyncRun.id == run_id).values(started_at=now - silent_for)
        )
    return run_id


def run_outcome(database: Database, run_id: int) -> str:
    with database.sessions() as session:
        return str(session.get_one(SyncRun, run_id).outcome)


def leased(database: Database) -> int:
    with database.sessions() as session:
        return len(
            session.scalars(select(Shipment.id).where(Shipment.lease_owner.is_not(None))).all()
        )


def heartbeat_ids(database: Database) -> set[str]:
    with database.sessions() as session:
        return set(session.scalars(select(EngineHeartbeat.engine_id)))


async def test_a_dead_process_on_this_host_is_taken_over_at_once(
    database: Database,
    sync_settings: Settings,
    make_engine: EngineFactory,
    add_shipment: ShipmentFactory,
) -> None:
    for _ in range(5):
        add_shipment("ups")
    run_id = crashed_engine(
        database, sync_settings, engine_id="crashed", pid=dead_pid(), silent_for=timedelta(0)
    )

    summary = await make_engine().run_pass()

    assert summary.taken_over == 5
    assert summary.updated == 5  # synced in this pass, not in 10 minutes
    assert run_outcome(database, run_id) == PassOutcome.ABANDONED
    assert leased(database) == 0
    assert "crashed" not in heartbeat_ids(database)


async def test_a_silent_heartbeat_on_another_host_is_taken_over_before_the_lease_ends(
    database: Database,
    sync_settings: Settings,
    make_engine: EngineFactory,
    add_shipment: ShipmentFactory,
) -> None:
    for _ in range(3):
        add_shipment("ups")
    run_id = crashed_engine(
        database, sync_settings, engine_id="elsewhere", pid=1, silent_for=timedelta(minutes=2)
    )
    with database.sessions.begin() as session:
        session.execute(update(EngineHeartbeat).values(hostname="another-host"))

    summary = await make_engine().run_pass()

    assert summary.taken_over == 3
    assert summary.updated == 3
    assert run_outcome(database, run_id) == PassOutcome.ABANDONED
    with database.sessions() as session:
        run = session.get_one(SyncRun, run_id)
        assert run.finished_at is not None
        assert run.finished_at < utcnow() - timedelta(minutes=1)


async def test_a_live_engine_keeps_its_leases_and_its_run(
    database: Database,
    sync_settings: Settings,
    make_engine: EngineFactory,
    add_shipment: ShipmentFactory,
) -> None:
    for _ in range(3):
        add_shipment("ups")
    alive_elsewhere = crashed_engine(
        database,
        sync_settings,
        engine_id="busy",
        pid=os.getppid(),
        silent_for=timedelta(seconds=20),
    )

    summary = await make_engine().run_pass()

    assert summary.taken_over == 0
    assert summary.checked == 0  # every shipment is leased to the live engine
    assert run_outcome(database, alive_elsewhere) == PassOutcome.RUNNING
    assert leased(database) == 3
    assert "busy" in heartbeat_ids(database)


async def test_stats_and_health_show_a_gone_engines_run_as_abandoned_before_any_cleanup(
    database: Database, sync_settings: Settings, add_shipment: ShipmentFactory
) -> None:
    add_shipment("ups")
    run_id = crashed_engine(
        database, sync_settings, engine_id="crashed", pid=dead_pid(), silent_for=timedelta(0)
    )
    with database.sessions() as session:
        assert gone_engine_ids(session, now=utcnow()) == {"crashed"}
        stats = report.stats(session, sync_settings, ["ups"])
        health = health_report(session, sync_settings)
    assert [run["outcome"] for run in stats["last_runs"]] == ["abandoned"]
    activity = next(check for check in health.checks if check.name == "sync_activity")
    assert activity.figures["latest_outcome"] == "abandoned"
    assert run_outcome(database, run_id) == PassOutcome.RUNNING  # readers do not write


async def test_a_long_pass_keeps_beating_and_a_clean_close_removes_the_row(
    database: Database, make_engine: EngineFactory, add_shipment: ShipmentFactory, ups: FakeProvider
) -> None:
    add_shipment("ups")
    ups.delay = 1.0
    engine = make_engine(heartbeat_every=0.2)

    def last_beat() -> float:
        with database.sessions() as session:
            row = session.get(EngineHeartbeat, engine.engine_id)
            return row.heartbeat_at.timestamp() if row else 0.0

    running = asyncio.create_task(engine.run_pass())
    await eventually(lambda: ups.in_flight == 1)
    first = last_beat()
    await eventually(lambda: last_beat() > first + 0.3, seconds=2)
    await running
    await engine.aclose()
    assert engine.engine_id not in heartbeat_ids(database)


def test_hostnames_are_what_the_process_check_relies_on() -> None:
    assert socket.gethostname()
    assert process_alive(os.getpid())
    assert not process_alive(0)
