"""The engine batches USPS numbers up to `USPS_BATCH_SIZE` (v3r2), one number a call with v3,
against the carrier emulator on a real port; a per-number error in a batch counts against
that shipment only, and a whole-batch failure defers every shipment as any outage does."""

from __future__ import annotations

from datetime import timedelta

import pytest

from parcelwatch.domain import ShipmentStatus
from tests.conftest import Database
from tests.sync.conftest import Emulator, ShipmentFactory, engine_for, reload, running_emulator

pytestmark = pytest.mark.anyio

HEAD_START = timedelta(days=2)


def usps_tracking_calls(emulator: Emulator) -> int:
    stats = emulator.stats()
    return int(stats["requests"].get("usps", 0) - stats["tokens_issued"].get("usps", 0))


def add_usps(add_shipment: ShipmentFactory, count: int) -> list[int]:
    return [add_shipment("usps").id for _ in range(count)]


async def test_a_batch_of_the_cap_plus_one_numbers_goes_as_two_calls(
    database: Database, emulator: Emulator, add_shipment: ShipmentFactory
) -> None:
    ids = add_usps(add_shipment, 4)
    settings = emulator.settings_for(database, usps_batch_size=3)
    async with engine_for(settings, database) as engine:
        summary = await engine.run_pass()

    assert usps_tracking_calls(emulator) == 2
    assert summary.api_calls == 2
    assert summary.checked == 4
    assert all(reload(database, i).auto_refresh_count == 1 for i in ids)


async def test_usps_batch_size_and_not_auto_update_batch_size_sizes_usps_calls(
    database: Database, emulator: Emulator, add_shipment: ShipmentFactory
) -> None:
    add_usps(add_shipment, 5)
    fedex = [add_shipment("fedex") for _ in range(4)]
    settings = emulator.settings_for(database, auto_update_batch_size=2)
    async with engine_for(settings, database) as engine:
        summary = await engine.run_pass()

    assert usps_tracking_calls(emulator) == 1  # five numbers, USPS_BATCH_SIZE 35
    assert summary.api_calls == 1 + 2  # FedEx still in batches of AUTO_UPDATE_BATCH_SIZE
    assert all(emulator.polls("fedex", s.tracking_number) == 1 for s in fedex)


async def test_v3_asks_usps_one_number_a_request(
    database: Database, emulator: Emulator, add_shipment: ShipmentFactory
) -> None:
    ids = add_usps(add_shipment, 3)
    settings = emulator.settings_for(database, usps_api_version="v3")
    async with engine_for(settings, database) as engine:
        summary = await engine.run_pass()

    assert usps_tracking_calls(emulator) == 3
    assert summary.api_calls == 3
    assert all(reload(database, i).auto_refresh_count == 1 for i in ids)


async def test_an_error_inside_a_usps_batch_counts_against_that_shipment_only(
    database: Database, add_shipment: ShipmentFactory
) -> None:
    moving = add_shipment("usps", tracking_number="9400100000000000000001")
    unknown = add_shipment("usps", tracking_number="9400100000000000000002")
    invalid = add_shipment("usps", tracking_number="9" * 40)  # over v3r2's 34 characters
    pins = {
        moving.tracking_number: "normal",
        unknown.tracking_number: "not_found",
    }
    with running_emulator(head_start=HEAD_START, pins=pins) as emulator:
        settings = emulator.settings_for(database)
        async with engine_for(settings, database) as engine:
            summary = await engine.run_pass()
        calls = usps_tracking_calls(emulator)

    assert calls == 1  # a 207 multi-status answered the three numbers at once
    assert (summary.updated, summary.not_found, summary.failed) == (1, 1, 1)
    assert reload(database, moving.id).status is not ShipmentStatus.PENDING
    assert reload(database, unknown.id).auto_refresh_fail_count == 0
    bad = reload(database, invalid.id)
    assert bad.auto_refresh_fail_count == 1
    assert "Invalid tracking number" in (bad.last_auto_refresh_error or "")
    assert reload(database, moving.id).auto_refresh_fail_count == 0


async def test_a_failed_usps_batch_defers_every_shipment_and_counts_against_none(
    database: Database, add_shipment: ShipmentFactory
) -> None:
    ids = add_usps(add_shipment, 5)
    faults = {"carriers": {"usps": {"server_error": 1.0}}}
    with running_emulator(head_start=HEAD_START, faults=faults) as emulator:
        settings = emulator.settings_for(database)
        async with engine_for(settings, database) as engine:
            summary = await engine.run_pass()

    assert (summary.deferred, summary.failed) == (5, 0)
    assert summary.carriers_down.keys() == {"usps"}
    for shipment_id in ids:
        after = reload(database, shipment_id)
        assert after.auto_refresh_enabled
        assert after.auto_refresh_fail_count == 0
