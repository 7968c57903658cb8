"""The engine with the real carrier clients against the carrier emulator (on a real port),
on SQLite and PostgreSQL; the emulator's per-number request counts are the witness."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import func, select, update

from parcelwatch.api.app import create_app
from parcelwatch.domain import ShipmentStatus, utcnow
from parcelwatch.models import Shipment, TrackingEvent
from parcelwatch.sync.limits import Budget
from parcelwatch.sync.selection import Selection
from tests.conftest import Database, account_token
from tests.sync.conftest import (
    Emulator,
    ShipmentFactory,
    engine_for,
    reload,
    running_emulator,
)

pytestmark = pytest.mark.anyio

INVALID_AT_UPS = "1Z" + "9" * 36  # 38 characters: UPS answers TV1002 "Invalid inquiry number"


def events_of(database: Database, shipment_id: int) -> int:
    with database.sessions() as session:
        query = select(func.count()).where(TrackingEvent.shipment_id == shipment_id)
        return session.scalar(query) or 0


async def test_delivered_and_disabled_shipments_are_never_polled(
    database: Database, emulator: Emulator, add_shipment: ShipmentFactory
) -> None:
    settings = emulator.settings_for(database)
    delivered = add_shipment("ups", status=ShipmentStatus.DELIVERED)
    disabled = add_shipment("fedex", auto_refresh_enabled=False)
    active = add_shipment("fedex")
    async with engine_for(settings, database) as engine:
        await engine.run_pass()
        await engine.run_pass(Selection(force=True))
    assert emulator.polls("ups", delivered.tracking_number) == 0
    assert emulator.polls("fedex", disabled.tracking_number) == 0
    assert emulator.polls("fedex", active.tracking_number) == 2


async def test_cutoff_and_cooldown_are_respected(
    database: Database, emulator: Emulator, add_shipment: ShipmentFactory
) -> None:
    settings = emulator.settings_for(database)
    now = utcnow()
    old = add_shipment("ups", created_at=now - timedelta(days=31))
    cooling = add_shipment("ups", last_manual_refresh=now - timedelta(minutes=2))
    due = add_shipment("ups")
    async with engine_for(settings, database) as engine:
        summary = await engine.run_pass()
    assert summary.checked == 1
    assert emulator.polls("ups", old.tracking_number) == 0
    assert emulator.polls("ups", cooling.tracking_number) == 0
    assert emulator.polls("ups", due.tracking_number) == 1


async def test_repolling_adds_no_duplicate_event(
    database: Database, emulator: Emulator, add_shipment: ShipmentFactory
) -> None:
    settings = emulator.settings_for(database)
    shipments = [add_shipment(carrier) for carrier in ("ups", "fedex", "fedex")]
    async with engine_for(settings, database) as engine:
        first = await engine.run_pass()
        counts = [events_of(database, s.id) for s in shipments]
        second = await engine.run_pass(Selection(force=True))
    assert first.updated == 3
    assert all(count > 0 for count in counts)
    assert second.events_added == 0
    assert [events_of(database, s.id) for s in shipments] == counts


async def test_a_5xx_storm_opens_the_breaker_and_does_not_disable_shipments(
    database: Database, add_shipment: ShipmentFactory
) -> None:
    with running_emulator(faults={"carriers": {"ups": {"server_error": 1.0}}}) as emulator:
        settings = emulator.settings_for(database, ups_max_concurrency=1)
        shipments = [add_shipment("ups") for _ in range(8)]
        fine = add_shipment("fedex")
        async with engine_for(settings, database) as engine:
            summary = await engine.run_pass()
            assert engine.breaker_for("ups").state == "open"
        ups_requests = emulator.stats()["requests"].get("ups", 0)
    assert summary.deferred == 8
    assert summary.failed == 0
    assert summary.synced == 1  # FedEx, unaffected
    assert summary.carriers_down.keys() == {"ups"}
    assert ups_requests < 8 * 4  # the open breaker spared most numbers their retries
    for shipment in shipments:
        after = reload(database, shipment.id)
        assert after.auto_refresh_enabled
        assert after.auto_refresh_fail_count == 0
        assert after.next_check_at is not None
    assert reload(database, fine.id).auto_refresh_count == 1


async def test_a_shipment_failing_on_its_own_is_disabled_and_patch_re_enables_it(
    database: Database, emulator: Emulator, add_shipment: ShipmentFactory
) -> None:
    settings = emulator.settings_for(database)
    bad = add_shipment("ups", tracking_number=INVALID_AT_UPS)
    good = add_shipment("ups")
    async with engine_for(settings, database) as engine:
        for _ in range(3):  # AUTO_UPDATE_MAX_RETRIES=3
            await engine.run_pass(Selection(force=True))
        disabled = reload(database, bad.id)
        assert disabled.auto_refresh_enabled is False
        assert disabled.next_check_at is None
        assert "Invalid inquiry number" in (disabled.last_auto_refresh_error or "")
        assert reload(database, good.id).auto_refresh_enabled

        with TestClient(create_app(settings), headers=account_token(settings)) as client:
            response = client.patch(f"/api/shipments/{bad.id}", json={"auto_refresh_enabled": True})
        assert response.status_code == 200
        assert response.json()["auto_refresh_fail_count"] == 0

        await engine.run_pass()
    assert emulator.polls("ups", INVALID_AT_UPS) == 4
    again = reload(database, bad.id)
    assert again.auto_refresh_enabled
    assert again.auto_refresh_fail_count == 1


async def test_a_fedex_batch_refused_for_one_empty_number_is_split_within_the_budget(
    database: Database, emulator: Emulator, add_shipment: ShipmentFactory, monkeypatch: Any
) -> None:
    """FedEx answers a batch holding one empty number with a 400 for the whole request. The
    engine, not the client, tracks the numbers one by one: every request the emulator
    receives took a budget slot and is counted as an API call."""
    settings = emulator.settings_for(database)
    good = [add_shipment("fedex") for _ in range(2)]
    empty = add_shipment("fedex")
    with database.sessions.begin() as session:  # data from before numbers were validated
        session.execute(update(Shipment).where(Shipment.id == empty.id).values(tracking_number=""))
    slots = 0
    real_slot = Budget.slot

    def counted_slot(budget: Budget) -> AbstractAsyncContextManager[None]:
        nonlocal slots
        if budget.provider == "fedex":
            slots += 1
        return real_slot(budget)

    monkeypatch.setattr(Budget, "slot", counted_slot)
    calls_before = api_calls("fedex")
    async with engine_for(settings, database) as engine:
        summary = await engine.run_pass()
    stats = emulator.stats()
    tracking_requests = stats["requests"]["fedex"] - stats["tokens_issued"]["fedex"]
    assert tracking_requests == 4  # the refused batch, then each number on its own
    assert slots == tracking_requests
    assert summary.api_calls == tracking_requests
    assert api_calls("fedex") - calls_before == stats["requests"]["fedex"]
    assert summary.updated == 2
    assert summary.failed == 1
    assert summary.carriers_down == {}
    for shipment in good:
        assert reload(database, shipment.id).auto_refresh_count == 1
    refused = reload(database, empty.id).last_auto_refresh_error or ""
    assert "TRACKING.TRACKINGNUMBER.EMPTY" in refused


def api_calls(provider: str) -> float:
    """Every HTTP call to the provider, tokens included (`parcelwatch_carrier_api_calls_total`)."""
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "parcelwatch_carrier_api_calls"
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels.get("provider") == provider
    )


async def test_two_engines_never_poll_one_number_at_once(
    database: Database, add_shipment: ShipmentFactory
) -> None:
    with running_emulator(latency={"distribution": "fixed", "ms": 20}) as emulator:
        settings = emulator.settings_for(database)
        shipments = [add_shipment(carrier) for carrier in ("ups", "usps", "dhl") * 20]
        async with engine_for(settings, database) as one, engine_for(settings, database) as two:
            first, second = await asyncio.gather(one.run_pass(), two.run_pass())
        polls = emulator.stats()["tracking_numbers"]
    assert first.checked > 0
    assert second.checked > 0
    assert first.checked + second.checked == len(shipments)
    for shipment in shipments:
        assert polls[shipment.carrier][shipment.tracking_number] == 1
