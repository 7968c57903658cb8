"""The engine against fake carriers, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from parcelwatch.carriers.base import TrackResult
from parcelwatch.carriers.errors import (
    BadResponseError,
    InvalidNumberError,
    RateLimitedError,
    UnavailableError,
)
from parcelwatch.domain import ShipmentStatus, utcnow
from parcelwatch.models import SyncRun, TrackingEvent
from parcelwatch.shipments.service import update_shipment
from parcelwatch.sync.outcomes import PassTrigger
from parcelwatch.sync.selection import Selection
from parcelwatch.sync.testing import FakeProvider, scripted_info
from tests.conftest import Database
from tests.sync.conftest import EngineFactory, ShipmentFactory, eventually, reload

pytestmark = pytest.mark.anyio


def event_count(database: Database, shipment_id: int) -> int:
    with database.sessions() as session:
        query = select(func.count()).where(TrackingEvent.shipment_id == shipment_id)
        return session.scalar(query) or 0


async def test_a_due_shipment_gets_status_events_counters_and_next_check(
    database: Database, make_engine: EngineFactory, add_shipment: ShipmentFactory
) -> None:
    shipment = add_shipment("ups")
    summary = await make_engine().run_pass()
    after = reload(database, shipment.id)
    assert summary.updated == 1
    assert after.status is ShipmentStatus.IN_TRANSIT
    assert after.auto_refresh_count == 1
    assert after.provider == "ups"
    assert after.lease_owner is None
    assert after.next_check_at is not None
    assert after.next_check_at > utcnow()
    assert event_count(database, shipment.id) == 1


async def test_delivered_and_disabled_shipments_are_never_polled(
    make_engine: EngineFactory, add_shipment: ShipmentFactory, ups: FakeProvider
) -> None:
    delivered = add_shipment("ups", status=ShipmentStatus.DELIVERED)
    disabled = add_shipment("ups", auto_refresh_enabled=False)
    active = add_shipment("ups")
    await make_engine().run_pass()
    await make_engine().run_pass(Selection(force=True))
    assert ups.asked[active.tracking_number] == 2
    assert ups.asked[delivered.tracking_number] == 0
    assert ups.asked[disabled.tracking_number] == 0


async def test_cutoff_and_manual_cooldown_are_respected(
    make_engine: EngineFactory, add_shipment: ShipmentFactory, ups: FakeProvider
) -> None:
    now = utcnow()
    too_old = add_shipment("ups", created_at=now - timedelta(days=31))
    cooling = add_shipment("ups", last_manual_refresh=now - timedelta(minutes=4))
    cooled = add_shipment("ups", last_manual_refresh=now - timedelta(minutes=6))
    not_yet = add_shipment("ups", next_check_at=now + timedelta(minutes=10))
    await make_engine().run_pass()
    assert ups.asked[too_old.tracking_number] == 0
    assert ups.asked[cooling.tracking_number] == 0
    assert ups.asked[not_yet.tracking_number] == 0
    assert ups.asked[cooled.tracking_number] == 1


async def test_repolling_adds_no_duplicate_event(
    database: Database, make_engine: EngineFactory, add_shipment: ShipmentFactory
) -> None:
    shipment = add_shipment("fedex")
    first = await make_engine().run_pass(Selection(force=True))
    second = await make_engine().run_pass(Selection(force=True))
    assert (first.updated, second.unchanged) == (1, 1)
    assert event_count(database, shipment.id) == 1


async def test_batches_never_exceed_the_carrier_maximum_or_the_batch_size(
    make_engine: EngineFactory,
    add_shipment: ShipmentFactory,
    fedex: FakeProvider,
    ups: FakeProvider,
) -> None:
    for _ in range(25):
        add_shipment("fedex")
    for _ in range(3):
        add_shipment("ups")
    summary = await make_engine().run_pass()
    assert summary.updated == 28
    assert fedex.requests == 3  # AUTO_UPDATE_BATCH_SIZE=10 under FedEx's 30
    assert ups.requests == 3  # UPS tracks one number a request


async def test_a_5xx_storm_opens_the_breaker_and_defers_without_disabling(
    make_engine: EngineFactory, add_shipment: ShipmentFactory, ups: FakeProvider, database: Database
) -> None:
    shipments = [add_shipment("ups") for _ in range(6)]
    ups.fail_with = UnavailableError("HTTP 503", provider="ups", status_code=503)
    engine = make_engine(concurrency=1)
    summary = await engine.run_pass()
    assert summary.deferred == 6
    assert summary.failed == 0
    assert summary.outcome == "failed"
    assert engine.breaker_for("ups").state == "open"
    # threshold 2 batches x (1 try + 3 retries); the rest never reached the carrier
    assert ups.requests == 8
    for shipment in shipments:
        after = reload(database, shipment.id)
        assert after.auto_refresh_enabled
        assert after.auto_refresh_fail_count == 0
        assert after.next_check_at is not None
        assert after.next_check_at > utcnow()


async def test_transient_errors_are_retried_and_then_succeed(
    make_engine: EngineFactory, add_shipment: ShipmentFactory, ups: FakeProvider
) -> None:
    add_shipment("ups")
    failures = [RateLimitedError("429", retry_after=0.01), UnavailableError("502")]
    original = ups.script

    def flaky(number: str) -> TrackResult:
        if failures:
            raise failures.pop(0)
        return original(number)

    ups.script = flaky
    summary = await make_engine().run_pass()
    assert summary.updated == 1
    assert summary.retries == 2
    assert summary.api_calls == 3


async def test_a_failed_batch_is_retried_number_by_number(
    database: Database,
    make_engine: EngineFactory,
    add_shipment: ShipmentFactory,
    fedex: FakeProvider,
) -> None:
    good = add_shipment("fedex")
    bad = add_shipment("fedex")

    def script(number: str) -> TrackResult:
        if number == bad.tracking_number:
            raise BadResponseError("unparseable body", provider="fedex")
        return TrackResult.found(number, scripted_info(number))

    fedex.script = script
    summary = await make_engine().run_pass()
    assert (summary.updated, summary.failed) == (1, 1)
    assert reload(database, good.id).status is ShipmentStatus.IN_TRANSIT
    failed = reload(database, bad.id)
    assert failed.auto_refresh_fail_count == 1
    assert "unparseable" in (failed.last_auto_refresh_error or "")


async def test_own_failures_disable_after_the_threshold_and_patch_re_enables(
    database: Database, make_engine: EngineFactory, add_shipment: ShipmentFactory, ups: FakeProvider
) -> None:
    shipment = add_shipment("ups")
    ups.script = lambda n: TrackResult.failed(
        n, InvalidNumberError("invalid number", provider="ups")
    )
    for _ in range(3):  # AUTO_UPDATE_MAX_RETRIES=3 in these tests
        await make_engine().run_pass(Selection(force=True))
    disabled = reload(database, shipment.id)
    assert disabled.auto_refresh_enabled is False
    assert disabled.next_check_at is None
    assert "disabled after 3 consecutive failures" in (disabled.last_auto_refresh_error or "")
    await make_engine().run_pass(Selection(force=True))
    assert ups.asked[shipment.tracking_number] == 3

    with database.sessions.begin() as session:
        update_shipment(session, shipment.id, auto_refresh_enabled=True)
    ups.script = lambda n: TrackResult.found(n, scripted_info(n))
    summary = await make_engine().run_pass()
    enabled = reload(database, shipment.id)
    assert summary.updated == 1
    assert enabled.auto_refresh_fail_count == 0
    assert enabled.auto_refresh_enabled


async def test_final_answers_stop_polling_and_silent_shipments_expire(
    database: Database, make_engine: EngineFactory, add_shipment: ShipmentFactory, ups: FakeProvider
) -> None:
    delivered = add_shipment("ups")
    silent = add_shipment("ups", created_at=utcnow() - timedelta(days=20))

    def script(number: str) -> TrackResult:
        if number == delivered.tracking_number:
            return TrackResult.found(number, scripted_info(number, ShipmentStatus.DELIVERED))
        return TrackResult.not_found(number)

    ups.script = script
    await make_engine().run_pass()
    assert reload(database, delivered.id).next_check_at is None
    expired = reload(database, silent.id)
    assert expired.status is ShipmentStatus.EXPIRED
    assert expired.next_check_at is None
    assert "Last status: pending" in (expired.status_detail or "")


async def test_every_pass_is_recorded_as_a_sync_run(
    database: Database, make_engine: EngineFactory, add_shipment: ShipmentFactory
) -> None:
    add_shipment("ups")
    await make_engine().run_pass(trigger="sync")
    with database.sessions() as session:
        run = session.scalars(select(SyncRun)).one()
    assert (run.trigger, run.outcome, run.checked, run.updated, run.api_calls) == (
        "sync",
        "ok",
        1,
        1,
        1,
    )
    assert run.finished_at is not None


async def test_concurrency_stays_within_the_providers_budget(
    make_engine: EngineFactory, add_shipment: ShipmentFactory, ups: FakeProvider
) -> None:
    for _ in range(12):
        add_shipment("ups")
    ups.delay = 0.02
    summary = await make_engine(concurrency=3).run_pass()
    assert summary.updated == 12
    assert ups.peak_in_flight == 3


async def test_pause_stops_new_batches_until_resume(
    make_engine: EngineFactory, add_shipment: ShipmentFactory, ups: FakeProvider
) -> None:
    for _ in range(10):
        add_shipment("ups")
    ups.delay = 0.05
    engine = make_engine(concurrency=1)
    running = asyncio.create_task(engine.run_pass())
    await eventually(lambda: ups.requests >= 2)
    engine.pause()
    await asyncio.sleep(0.3)
    paused_at = ups.requests
    assert paused_at <= 3  # the batch in flight at the pause may finish
    await asyncio.sleep(0.2)
    assert ups.requests == paused_at
    engine.resume()
    summary = await asyncio.wait_for(running, 5)
    assert summary.updated == 10


async def test_stop_mid_run_leaves_no_half_written_batch(
    database: Database,
    make_engine: EngineFactory,
    add_shipment: ShipmentFactory,
    fedex: FakeProvider,
) -> None:
    shipments = [add_shipment("fedex") for _ in range(40)]
    fedex.delay = 0.5
    engine = make_engine(concurrency=2)
    running = asyncio.create_task(engine.run_pass())
    await eventually(lambda: fedex.in_flight >= 2)
    await engine.stop(deadline=0.05)  # shorter than a call: in-flight batches are dropped
    summary = await running
    assert summary.outcome == "stopped"
    for shipment in shipments:
        after = reload(database, shipment.id)
        events = event_count(database, shipment.id)
        written = after.auto_refresh_count == 1
        assert (events == 1) == written == (after.status is ShipmentStatus.IN_TRANSIT)
        assert after.lease_owner is None
    assert summary.updated == 0


async def test_stop_lets_in_flight_batches_finish_within_the_deadline(
    database: Database,
    make_engine: EngineFactory,
    add_shipment: ShipmentFactory,
    fedex: FakeProvider,
) -> None:
    for _ in range(40):
        add_shipment("fedex")
    fedex.delay = 0.1
    engine = make_engine(concurrency=2)
    running = asyncio.create_task(engine.run_pass())
    await eventually(lambda: fedex.in_flight >= 2)
    await engine.stop(deadline=5)
    summary = await running
    assert summary.updated == 20  # the two batches in flight, 10 numbers each
    assert fedex.requests == 2


async def test_a_failed_manual_refresh_leaves_auto_refresh_off_when_it_was_off(
    database: Database, make_engine: EngineFactory, add_shipment: ShipmentFactory, ups: FakeProvider
) -> None:
    shipment = add_shipment("ups", auto_refresh_enabled=False, next_check_at=None)
    ups.script = lambda n: TrackResult.failed(
        n, InvalidNumberError("invalid number", provider="ups")
    )
    summary = await make_engine().run_pass(
        Selection(manual=True, shipment_ids=[shipment.id]), trigger=PassTrigger.MANUAL
    )
    assert summary.failed == 1
    after = reload(database, shipment.id)
    assert after.auto_refresh_enabled is False  # a person switched it off: it stays off
    assert after.next_check_at is None
    assert after.auto_refresh_fail_count == 1
    assert after.last_auto_refresh_error is not None
