"""Real processes: SIGTERM to `parcelwatch serve` and SIGINT to `parcelwatch sync` mid-run
stop cleanly (exit 0 for the server), with no half-written batch and no lease left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from parcelwatch.models import Shipment, SyncRun, TrackingEvent
from tests.conftest import Database, free_port
from tests.sync.conftest import Emulator, ShipmentFactory, running_emulator

PARCELWATCH = str(Path(sys.executable).with_name("parcelwatch"))


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PARCELWATCH, *args],
        env=os.environ | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_requests(emulator: Emulator, count: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while emulator.stats()["requests"].get("ups", 0) < count:
        if process.poll() is not None:
            raise AssertionError(process.communicate())
        assert time.monotonic() < deadline, "the engine never got going"
        time.sleep(0.05)


def assert_nothing_half_written(database: Database) -> tuple[int, int]:
    """Every shipment is either fully written (counter, status, events) or untouched."""
    with database.sessions() as session:
        events = dict(
            session.execute(
                select(TrackingEvent.shipment_id, func.count()).group_by(TrackingEvent.shipment_id)
            ).all()
        )
        shipments = session.scalars(select(Shipment)).all()
        written = 0
        for shipment in shipments:
            assert shipment.lease_owner is None
            if shipment.auto_refresh_count:
                written += 1
                assert shipment.last_auto_refresh is not None
            else:
                assert shipment.id not in events
                assert shipment.status == "pending"
        return written, len(shipments)


@pytest.fixture
def slow_emulator() -> Emulator:  # type: ignore[misc]
    with running_emulator(latency={"distribution": "fixed", "ms": 300}) as emulator:
        yield emulator


def test_sigterm_to_serve_mid_run_exits_0_and_leaves_no_half_written_batch(
    database: Database, slow_emulator: Emulator, add_shipment: ShipmentFactory
) -> None:
    for _ in range(60):
        add_shipment("ups")
    env = slow_emulator.environment(database, auto_update_enabled=True, ups_max_concurrency=2)
    server = start(["serve", "--port", str(free_port())], env)
    try:
        wait_for_requests(slow_emulator, 4, server)
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, stderr
    written, total = assert_nothing_half_written(database)
    assert 0 < written < total
    with database.sessions() as session:
        assert session.scalars(select(SyncRun.outcome)).first() == "stopped"


def test_sigint_to_sync_stops_cleanly_with_a_summary(
    database: Database, slow_emulator: Emulator, add_shipment: ShipmentFactory
) -> None:
    for _ in range(60):
        add_shipment("ups")
    env = slow_emulator.environment(database, ups_max_concurrency=2)
    command = start(["sync"], env)
    try:
        wait_for_requests(slow_emulator, 4, command)
        command.send_signal(signal.SIGINT)
        stdout, stderr = command.communicate(timeout=30)
    finally:
        if command.poll() is None:
            command.kill()
            command.communicate()
    assert command.returncode == 1, stderr
    assert "sync stopped" in stdout
    written, total = assert_nothing_half_written(database)
    assert 0 < written < total
