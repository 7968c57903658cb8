"""Writing carrier answers: `apply_track_info` (webhook, manual refresh) and leases."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from parcelwatch.domain import Location, ShipmentStatus, TrackEvent, TrackInfo, utcnow
from parcelwatch.lifecycle import Lifecycle
from parcelwatch.models import Shipment, TrackingEvent
from parcelwatch.shipments.service import update_shipment
from parcelwatch.sync.claims import claim, release
from parcelwatch.sync.selection import Selection, claimable_filter
from parcelwatch.sync.writer import apply_track_info
from tests.conftest import Database
from tests.sync.conftest import EngineFactory, ShipmentFactory, reload

pytestmark = pytest.mark.anyio

UPS_ONLY = Lifecycle(tracked_carriers=frozenset({"ups"}), max_failures=3)


# One instant for every call: two calls straddling a second would describe different events.
DELIVERED_AT = utcnow().replace(microsecond=0) - timedelta(hours=1)


def delivered_info() -> TrackInfo:
    when = DELIVERED_AT
    events = (
        TrackEvent(
            when,
            ShipmentStatus.DELIVERED,
            "Delivered, front door",
            "DL",
            location=Location(city="Austin", state="TX", country="US"),
        ),
        TrackEvent(when - timedelta(hours=5), ShipmentStatus.OUT_FOR_DELIVERY, "On vehicle", "OD"),
    )
    return TrackInfo(
        status=ShipmentStatus.DELIVERED,
        status_detail="Delivered, front door",
        events=events,
        delivered_at=when,
        signed_by="J SMITH",
    )


async def test_apply_track_info_writes_at_once_in_the_callers_transaction(
    database: Database, add_shipment: ShipmentFactory
) -> None:
    shipment = add_shipment("ups")
    with database.sessions.begin() as session:
        loaded = session.get(Shipment, shipment.id)
        assert loaded is not None
        summary = apply_track_info(session, shipment.id, delivered_info(), "shipengine")
        assert loaded.status is ShipmentStatus.DELIVERED  # the cached object was refreshed
    assert summary.updated == 1
    after = reload(database, shipment.id)
    assert after.status is ShipmentStatus.DELIVERED
    assert after.signed_by == "J SMITH"
    assert after.provider == "shipengine"
    assert after.next_check_at is None
    with database.sessions.begin() as session:
        again = apply_track_info(session, shipment.id, delivered_info(), "shipengine")
        count = session.scalar(select(func.count()).select_from(TrackingEvent))
    assert again.events_added == 0
    assert count == 2


def stored_events(database: Database, shipment_id: int) -> list[str]:
    with database.sessions() as session:
        query = select(TrackingEvent.description).where(TrackingEvent.shipment_id == shipment_id)
        return sorted(session.scalars(query))


async def test_an_older_event_that_turns_up_late_is_still_stored(
    database: Database, add_shipment: ShipmentFactory
) -> None:
    shipment = add_shipment("ups")
    first = delivered_info()
    with database.sessions.begin() as session:
        apply_track_info(session, shipment.id, first, "ups")
    late = TrackEvent(DELIVERED_AT - timedelta(days=1), ShipmentStatus.IN_TRANSIT, "Departed hub")
    with database.sessions.begin() as session:
        again = apply_track_info(
            session, shipment.id, replace(first, events=(*first.events, late)), "ups"
        )
    assert again.events_added == 1
    assert stored_events(database, shipment.id) == [
        "Delivered, front door",
        "Departed hub",
        "On vehicle",
    ]


async def test_events_come_back_after_a_carrier_correction_cleared_them(
    database: Database, add_shipment: ShipmentFactory
) -> None:
    shipment = add_shipment("ups")
    info = replace(delivered_info(), status=ShipmentStatus.IN_TRANSIT, delivered_at=None)
    with database.sessions.begin() as session:
        apply_track_info(session, shipment.id, info, "ups")
    with database.sessions.begin() as session:
        update_shipment(session, shipment.id, carrier="fedex")
        update_shipment(session, shipment.id, carrier="ups")
    assert stored_events(database, shipment.id) == []
    with database.sessions.begin() as session:
        back = apply_track_info(session, shipment.id, info, "ups")
    assert back.events_added == 2
    assert stored_events(database, shipment.id) == ["Delivered, front door", "On vehicle"]


async def test_apply_track_info_rolls_back_with_the_callers_transaction(
    database: Database, add_shipment: ShipmentFactory
) -> None:
    shipment = add_shipment("ups")
    with database.sessions() as session:
        apply_track_info(session, shipment.id, delivered_info(), "shipengine")
        session.rollback()  # the webhook handler failed after applying
    assert reload(database, shipment.id).status is ShipmentStatus.PENDING


async def test_a_crashed_engines_leases_expire_and_another_engine_takes_over(
    database: Database, add_shipment: ShipmentFactory, make_engine: EngineFactory
) -> None:
    shipment = add_shipment("ups")
    now = utcnow()
    where = claimable_filter(Selection(), now=now, lifecycle=UPS_ONLY)
    crashed = claim(
        database.engine,
        owner="crashed",
        where=where,
        limit=10,
        lease=timedelta(minutes=10),
        now=now,
    )
    assert [c.id for c in crashed] == [shipment.id]
    leased = reload(database, shipment.id)
    assert leased.lease_expires_at == now + timedelta(minutes=10)
    assert leased.next_check_at == leased.lease_expires_at  # not due while the lease holds
    blocked = await make_engine().run_pass()
    assert blocked.checked == 0
    blocked_forced = await make_engine().run_pass(Selection(force=True))
    assert blocked_forced.checked == 0
    with database.sessions.begin() as session:  # ten minutes pass
        row = session.get(Shipment, shipment.id)
        assert row is not None
        row.lease_expires_at = row.next_check_at = utcnow() - timedelta(seconds=1)
    taken = await make_engine().run_pass()
    assert taken.updated == 1
    assert reload(database, shipment.id).lease_owner is None


async def test_a_released_lease_gives_back_the_due_time_the_claim_read(
    database: Database, add_shipment: ShipmentFactory
) -> None:
    shipment = add_shipment("ups")
    due = reload(database, shipment.id).next_check_at
    now = utcnow()
    where = claimable_filter(Selection(), now=now, lifecycle=UPS_ONLY)
    claimed = claim(
        database.engine, owner="me", where=where, limit=10, lease=timedelta(minutes=10), now=now
    )
    assert [c.next_check_at for c in claimed] == [due]
    release(database.engine, owner="someone else", shipments=claimed)
    assert reload(database, shipment.id).lease_owner == "me"  # not theirs to release
    release(database.engine, owner="me", shipments=claimed)
    after = reload(database, shipment.id)
    assert (after.lease_owner, after.lease_expires_at, after.next_check_at) == (None, None, due)


async def test_a_write_for_a_lease_taken_over_by_another_engine_is_dropped(
    database: Database, add_shipment: ShipmentFactory, make_engine: EngineFactory
) -> None:
    from parcelwatch.sync.scheduling import SchedulePolicy
    from parcelwatch.sync.writer import ShipmentResult, ShipmentResultKind, write_results

    shipment = add_shipment("ups")
    now = utcnow()
    where = claimable_filter(Selection(), now=now, lifecycle=UPS_ONLY)
    [mine] = claim(database.engine, owner="slow", where=where, limit=1, lease=timedelta(0), now=now)
    later = now + timedelta(seconds=1)
    where_later = claimable_filter(Selection(), now=later, lifecycle=UPS_ONLY)
    [theirs] = claim(
        database.engine,
        owner="other",
        where=where_later,
        limit=1,
        lease=timedelta(minutes=5),
        now=later,
    )
    assert theirs.id == mine.id
    result = ShipmentResult(mine, ShipmentResultKind.FOUND, "ups", info=delivered_info())
    with database.engine.begin() as connection:
        summary = write_results(connection, [result], owner="slow", policy=SchedulePolicy())
    assert summary.lost == 1
    assert reload(database, shipment.id).status is ShipmentStatus.PENDING


async def test_a_late_push_adds_its_event_but_never_reopens_a_final_shipment(
    database: Database, add_shipment: ShipmentFactory
) -> None:
    shipment = add_shipment("ups")
    with database.sessions.begin() as session:
        apply_track_info(session, shipment.id, delivered_info(), "shipengine")
    late = TrackInfo(
        status=ShipmentStatus.IN_TRANSIT,
        status_detail="Departed facility",
        events=(
            TrackEvent(
                utcnow() - timedelta(days=1), ShipmentStatus.IN_TRANSIT, "Departed facility", "DP"
            ),
        ),
    )
    with database.sessions.begin() as session:
        apply_track_info(session, shipment.id, late, "shipengine")
        count = session.scalar(select(func.count()).select_from(TrackingEvent))
    after = reload(database, shipment.id)
    assert after.status is ShipmentStatus.DELIVERED
    assert after.status_detail == "Delivered, front door"
    assert after.next_check_at is None
    assert count == 3
