"""The outbox: a committed sync write leaves exactly the notifications its milestones make
for each tracker's own channels; a rolled-back one leaves none; the same data found again
adds nothing. Through the real writer (manual refresh / push path and a sync pass), on
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from parcelwatch.carriers.base import TrackResult
from parcelwatch.config import Settings
from parcelwatch.domain import Location, ShipmentStatus, TrackEvent, TrackInfo, utcnow
from parcelwatch.models import (
    Notification,
    NotificationDelivery,
    Tracker,
    User,
)
from parcelwatch.notifications.outbox import NotifyPolicy, in_quiet_hours_until
from parcelwatch.sync.engine import EngineOptions, SyncEngine
from parcelwatch.sync.scheduling import SchedulePolicy
from parcelwatch.sync.selection import Selection
from parcelwatch.sync.testing import FakeProvider, StaticProviders
from parcelwatch.sync.writer import apply_track_info
from tests.conftest import Database
from tests.notifications.conftest import ChannelFactory

UPS = "1Z5R89390357567127"
S = ShipmentStatus
POLICY = SchedulePolicy(notify=NotifyPolicy(public_url="https://parcels.example.com"))


def _info(status: ShipmentStatus, *, hours_ago: float = 1, text: str = "scan") -> TrackInfo:
    event = TrackEvent(
        occurred_at=utcnow().replace(microsecond=0) - timedelta(hours=hours_ago),
        status=status,
        description=text,
        location=Location(city="Reno", state="NV", country="US"),
    )
    return TrackInfo(status=status, status_detail=text, events=(event,))


def _apply(database: Database, shipment_id: int, info: TrackInfo) -> int:
    with database.sessions.begin() as session:
        summary = apply_track_info(session, shipment_id, info, "ups", policy=POLICY)
        return summary.notifications.total()


def _notifications(database: Database) -> list[Notification]:
    with database.sessions() as session:
        rows = list(session.scalars(select(Notification).order_by(Notification.id)))
        session.expunge_all()
        return rows


def _deliveries(database: Database) -> list[NotificationDelivery]:
    with database.sessions() as session:
        rows = list(session.scalars(select(NotificationDelivery).order_by(NotificationDelivery.id)))
        session.expunge_all()
        return rows


def test_a_delivered_write_leaves_one_notification_per_channel_with_the_versioned_body(
    database: Database,
    people: dict[str, int],
    track: Callable[..., int],
    add_channel: ChannelFactory,
) -> None:
    shipment_id = track(people["ann"], UPS, "Running shoes")
    hook = add_channel(people["ann"], "webhook")
    mail = add_channel(people["ann"], "email")
    assert _apply(database, shipment_id, _info(S.DELIVERED, text="Front porch")) == 2
    (notification,) = _notifications(database)
    assert notification.event_type == "shipment.delivered"
    body = notification.payload
    assert body["type"] == "shipment.delivered"
    assert body["version"] == 1
    assert body["data"]["shipment"]["status"] == "delivered"
    assert body["data"]["shipment"]["tracking_number"] == UPS
    assert body["data"]["shipment"]["url"] == f"https://parcels.example.com/shipments/{shipment_id}"
    assert body["data"]["tracker"]["description"] == "Running shoes"
    assert body["data"]["previous_status"] == "pending"
    assert [e["description"] for e in body["data"]["events"]] == ["Front porch"]
    deliveries = _deliveries(database)
    assert {d.channel_id for d in deliveries} == {hook, mail}
    assert all(d.status == "pending" and d.attempts == 0 for d in deliveries)
    assert all(d.message_id.startswith("msg_") for d in deliveries)
    assert len({d.message_id for d in deliveries}) == 2


def test_the_same_data_found_again_adds_nothing(
    database: Database,
    people: dict[str, int],
    track: Callable[..., int],
    add_channel: ChannelFactory,
) -> None:
    shipment_id = track(people["ann"], UPS)
    add_channel(people["ann"])
    info = _info(S.OUT_FOR_DELIVERY)
    assert _apply(database, shipment_id, info) == 1
    assert _apply(database, shipment_id, info) == 0
    # flapping: back to in transit, then the same out-for-delivery scan again
    _apply(database, shipment_id, _info(S.IN_TRANSIT, hours_ago=0.5))
    assert _apply(database, shipment_id, info) == 0
    assert [n.event_type for n in _notifications(database)] == ["shipment.out_for_delivery"]


def test_a_rolled_back_write_tells_nobody(
    database: Database,
    people: dict[str, int],
    track: Callable[..., int],
    add_channel: ChannelFactory,
) -> None:
    shipment_id = track(people["ann"], UPS)
    add_channel(people["ann"])
    with database.sessions() as session:
        apply_track_info(session, shipment_id, _info(S.DELIVERED), "ups", policy=POLICY)
        session.rollback()
    assert _notifications(database) == []
    assert _deliveries(database) == []


def test_two_people_on_one_shipment_each_hear_through_their_own_channels_only(
    database: Database,
    people: dict[str, int],
    track: Callable[..., int],
    add_channel: ChannelFactory,
) -> None:
    shipment_id = track(people["ann"], UPS, "Ann's shoes")
    assert track(people["bob"], UPS, "Bob's gift") == shipment_id
    ann_hook = add_channel(people["ann"])
    bob_hook = add_channel(people["bob"])
    _apply(database, shipment_id, _info(S.DELIVERED))
    by_user = {n.user_id: n for n in _notifications(database)}
    assert by_user[people["ann"]].payload["data"]["tracker"]["description"] == "Ann's shoes"
    assert by_user[people["bob"]].payload["data"]["tracker"]["description"] == "Bob's gift"
    to_channel = {d.channel_id: d.notification_id for d in _deliveries(database)}
    assert to_channel == {
        ann_hook: by_user[people["ann"]].id,
        bob_hook: by_user[people["bob"]].id,
    }


def test_a_person_without_a_tracker_hears_nothing_of_someone_elses_shipment(
    database: Database,
    people: dict[str, int],
    track: Callable[..., int],
    add_channel: ChannelFactory,
) -> None:
    shipment_id = track(people["ann"], UPS)
    add_channel(people["bob"])
    _apply(database, shipment_id, _info(S.DELIVERED))
    assert _notifications(database) == []


def test_an_admins_instance_wide_webhook_hears_every_tracker(
    database: Database,
    people: dict[str, int],
    track: Callable[..., int],
    add_channel: ChannelFactory,
) -> None:
    shipment_id = track(people["ann"], UPS)
    wide = add_channel(people["owner"], instance_wide=True)
    _apply(database, shipment_id, _info(S.DELIVERED))
    assert [d.channel_id for d in _deliveries(database)] == [wide]


def test_a_muted_tracker_gets_nothing_and_delivered_only_gets_only_delivered(
    database: Database,
    people: dict[str, int],
    track: Callable[..., int],
    add_channel: ChannelFactory,
) -> None:
    muted = track(people["ann"], UPS)
    quiet = track(people["ann"], "1Z5R89390357567128")
    add_channel(people["ann"])
    with database.sessions.begin() as session:
        session.execute(update(Tracker).where(Tracker.shipment_id == muted).values(notify="muted"))
        session.execute(
            update(Tracker).where(Tracker.shipment_id == quiet).values(notify="delivered_only")
        )
    _apply(database, muted, _info(S.DELIVERED))
    _apply(database, quiet, _info(S.OUT_FOR_DELIVERY, hours_ago=2))
    _apply(database, quiet, _info(S.DELIVERED))
    assert [(n.shipment_id, n.event_type) for n in _notifications(database)] == [
        (quiet, "shipment.delivered")
    ]


def test_a_channel_gets_only_the_event_types_it_wants_and_a_disabled_one_nothing(
    database: Database,
    people: dict[str, int],
    track: Callable[..., int],
    add_channel: ChannelFactory,
) -> None:
    shipment_id = track(people["ann"], UPS)
    delivered_only = add_channel(people["ann"], event_types=("shipment.delivered",))
    add_channel(people["ann"], disabled_at=datetime(2026, 1, 1, tzinfo=UTC))
    add_channel(people["ann"], enabled=False)
    _apply(database, shipment_id, _info(S.OUT_FOR_DELIVERY, hours_ago=2))
    assert _deliveries(database) == []
    _apply(database, shipment_id, _info(S.DELIVERED))
    assert [d.channel_id for d in _deliveries(database)] == [delivered_only]


def test_quiet_hours_hold_email_until_morning_but_not_webhooks_or_urgent_news(
    database: Database,
    people: dict[str, int],
    track: Callable[..., int],
    add_channel: ChannelFactory,
) -> None:
    now = utcnow()
    # quiet from an hour ago to two hours ahead, in the person's own zone
    zone = "America/Denver"
    local = now.astimezone(ZoneInfo(zone))
    start = (local.hour * 60 + local.minute - 60) % 1440
    end = (local.hour * 60 + local.minute + 120) % 1440
    with database.sessions.begin() as session:
        session.execute(
            update(User)
            .where(User.id == people["ann"])
            .values(timezone=zone, quiet_start_minute=start, quiet_end_minute=end)
        )
    shipment_id = track(people["ann"], UPS)
    every = ("shipment.out_for_delivery", "shipment.exception")
    mail = add_channel(people["ann"], "email", event_types=every)
    hook = add_channel(people["ann"], "webhook", event_types=every)
    _apply(database, shipment_id, _info(S.OUT_FOR_DELIVERY, hours_ago=2))
    _apply(database, shipment_id, _info(S.EXCEPTION))
    due = {
        (d.channel_id, d.notification_id): d.next_attempt_at or now for d in _deliveries(database)
    }
    ofd, exception = (n.id for n in _notifications(database))
    assert due[(hook, ofd)] <= utcnow()  # webhooks at once
    assert due[(mail, ofd)] >= now + timedelta(minutes=110)  # email: after the quiet hours
    assert due[(mail, exception)] <= utcnow() + timedelta(minutes=3)  # urgent: the group window


def test_quiet_hours_across_midnight_end_the_next_morning_in_the_persons_zone() -> None:
    late_evening = datetime(2026, 12, 7, 5, 30, tzinfo=UTC)  # 22:30 in Denver (UTC-7)
    until = in_quiet_hours_until(
        late_evening, timezone="America/Denver", start_minute=22 * 60, end_minute=7 * 60
    )
    assert until == datetime(2026, 12, 7, 14, 0, tzinfo=UTC)  # 07:00 in Denver
    noon = datetime(2026, 12, 7, 19, 0, tzinfo=UTC)
    assert (
        in_quiet_hours_until(
            noon, timezone="America/Denver", start_minute=22 * 60, end_minute=7 * 60
        )
        is None
    )


@pytest.mark.anyio
async def test_a_sync_pass_writes_the_outbox_in_its_batch_transaction(
    database: Database,
    settings: Settings,
    people: dict[str, int],
    track: Callable[..., int],
    add_channel: ChannelFactory,
) -> None:
    numbers = [f"1ZOUTBOX{n:010d}" for n in range(5)]
    ids = [track(people["ann"], number) for number in numbers]
    add_channel(people["ann"], event_types=("shipment.in_transit", "shipment.delivered"))
    ups = FakeProvider(code="ups", max_batch=1)
    ups.script = lambda n: TrackResult.found(n, _info(S.DELIVERED))
    engine = SyncEngine(
        settings=settings.model_copy(update={"ups_rate_limit": 1000.0}),
        db=database.engine,
        providers=StaticProviders({"ups": ups}),
        options=EngineOptions(),
    )
    try:
        await engine.run_pass()
        assert sorted(n.shipment_id for n in _notifications(database)) == sorted(ids)
        assert len(_deliveries(database)) == 5
        await engine.run_pass(Selection(force=True))  # the same data again: nothing new
    finally:
        engine.close()
    with database.sessions() as session:
        assert session.scalar(select(func.count()).select_from(NotificationDelivery)) == 5
