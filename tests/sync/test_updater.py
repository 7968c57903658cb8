"""The in-process updater: continuous passes, pause at a batch boundary, clean stop."""

from __future__ import annotations

import asyncio
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from parcelwatch.api.app import create_app
from parcelwatch.models import SyncRun
from parcelwatch.sync.testing import FakeProvider
from parcelwatch.sync.updater import Updater
from tests.conftest import Database
from tests.sync.conftest import Emulator, EngineFactory, ShipmentFactory, eventually, reload

pytestmark = pytest.mark.anyio


async def test_the_updater_syncs_due_shipments_soon_after_start_and_stops_cleanly(
    database: Database, make_engine: EngineFactory, add_shipment: ShipmentFactory
) -> None:
    shipment = add_shipment("ups")
    updater = Updater(make_engine(), first_delay=0.01, idle_cap=0.2, empty_pause=0.05)
    updater.start()
    await eventually(lambda: updater.sync_engine.last_summary is not None)
    await updater.stop()
    assert not updater.running
    assert reload(database, shipment.id).auto_refresh_count == 1


async def test_the_updater_picks_up_newly_due_shipments_without_a_restart(
    database: Database, make_engine: EngineFactory, add_shipment: ShipmentFactory
) -> None:
    updater = Updater(make_engine(), first_delay=0.01, idle_cap=0.1, empty_pause=0.05)
    updater.start()
    await asyncio.sleep(0.1)
    shipment = add_shipment("ups")
    await eventually(lambda: reload(database, shipment.id).auto_refresh_count == 1)
    await updater.stop()


async def test_pausing_the_updater_stops_new_batches(
    make_engine: EngineFactory, add_shipment: ShipmentFactory, ups: FakeProvider
) -> None:
    for _ in range(20):
        add_shipment("ups")
    ups.delay = 0.05
    updater = Updater(make_engine(concurrency=1), first_delay=0, idle_cap=0.1, empty_pause=0.05)
    updater.start()
    await eventually(lambda: ups.requests >= 2)
    updater.pause()
    await asyncio.sleep(0.15)
    seen = ups.requests
    await asyncio.sleep(0.3)
    assert ups.requests == seen
    assert seen < 20
    updater.resume()
    await eventually(lambda: ups.requests >= 20)
    await updater.stop()


def test_serve_starts_the_updater_when_auto_update_is_enabled(
    database: Database,
    emulator: Emulator,
    add_shipment: ShipmentFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("parcelwatch.sync.updater.FIRST_PASS_DELAY", 0.0)
    shipment = add_shipment("fedex")
    settings = emulator.settings_for(database, auto_update_enabled=True)
    with TestClient(create_app(settings)):
        for _ in range(500):
            if reload(database, shipment.id).auto_refresh_count:
                break
            time.sleep(0.01)
    assert reload(database, shipment.id).auto_refresh_count == 1
    with database.sessions() as session:
        assert session.scalars(select(SyncRun.trigger)).first() == "updater"


async def test_a_paused_updater_still_reports_its_heartbeat_as_paused(
    database: Database, make_engine: EngineFactory
) -> None:
    from parcelwatch.models import EngineHeartbeat

    updater = Updater(make_engine(), first_delay=0, idle_cap=0.1, empty_pause=0.05)
    updater.start()
    updater.pause()

    def paused_beat() -> bool:
        with database.sessions() as session:
            beat = session.get(EngineHeartbeat, updater.sync_engine.engine_id)
            return beat is not None and beat.paused

    await eventually(paused_beat)
    await updater.stop()


async def test_the_dashboard_sees_the_updaters_sync_engine_paused(
    make_engine: EngineFactory,
) -> None:
    from types import SimpleNamespace

    from parcelwatch.web.runtime import updater_state

    updater = Updater(make_engine())
    app = SimpleNamespace(state=SimpleNamespace(updater=updater))
    assert updater_state(app).paused is False  # type: ignore[arg-type]
    updater.sync_engine.pause()
    assert updater_state(app).paused is True  # type: ignore[arg-type]


async def test_a_pause_kept_in_the_database_stops_an_updater_started_later_until_cleared(
    database: Database, make_engine: EngineFactory, add_shipment: ShipmentFactory, ups: FakeProvider
) -> None:
    from parcelwatch.sync.control import set_paused

    for _ in range(5):
        add_shipment("ups")
    set_paused(database.engine, paused=True)  # as the admin API does, before this one started
    updater = Updater(make_engine(), first_delay=0, idle_cap=0.1, empty_pause=0.05, pause_poll=0.05)
    updater.start()
    await eventually(lambda: updater.sync_engine.paused)
    await asyncio.sleep(0.3)
    assert ups.requests == 0
    set_paused(database.engine, paused=False)  # another server resumed
    await eventually(lambda: ups.requests >= 5)
    assert not updater.sync_engine.paused
    await updater.stop()


async def test_a_local_pause_is_not_undone_by_the_database_having_none(
    make_engine: EngineFactory, add_shipment: ShipmentFactory, ups: FakeProvider
) -> None:
    add_shipment("ups")
    updater = Updater(
        make_engine(), first_delay=0.2, idle_cap=0.1, empty_pause=0.05, pause_poll=0.05
    )
    updater.start()
    updater.pause()
    await asyncio.sleep(0.5)
    assert updater.sync_engine.paused
    assert ups.requests == 0
    await updater.stop()
