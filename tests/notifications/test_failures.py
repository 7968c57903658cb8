"""What happens when a receiver fails: retries that back off and honour Retry-After, dead
letters after NOTIFY_RETRY_FOR, and a channel switched off after NOTIFY_DISABLE_AFTER
failures in a row, its owner told through their other channels."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from parcelwatch.accounts.roles import Role
from parcelwatch.domain import utcnow
from parcelwatch.models import DeliveryAttempt, Notification, NotificationDelivery
from parcelwatch.notifications.deliveries import backoff_delay
from parcelwatch.notifications.delivery_log import replay
from tests.conftest import Database
from tests.notifications.conftest import (
    NO_RETRY_SOON,
    Receiver,
    World,
    dispatching,
    notify_settings,
    until,
)

pytestmark = pytest.mark.anyio


def attempts_of(database: Database, message_id: str) -> list[DeliveryAttempt]:
    with database.sessions() as session:
        return list(
            session.query(DeliveryAttempt)
            .join(NotificationDelivery, NotificationDelivery.id == DeliveryAttempt.delivery_id)
            .filter(NotificationDelivery.message_id == message_id)
            .order_by(DeliveryAttempt.id)
        )


async def test_a_busy_receiver_is_retried_no_sooner_than_its_retry_after_with_the_same_id(
    world: World, database: Database, receiver: Receiver
) -> None:
    owner = world.person("owner", Role.OWNER)
    tracker = world.tracker(owner)
    channel = world.channel(owner, "webhook", receiver.url)
    receiver.answer((429, {"Retry-After": "1"}), 503)
    (message_id,) = world.notify(tracker, [channel])
    async with dispatching(notify_settings(database), database):
        await until(lambda: world.delivery(message_id).status == "delivered")
    first, second, third = receiver.arrivals
    assert second.at - first.at >= 1.0  # Retry-After: 1 outweighs the 0.05 s backoff
    assert third.at - second.at < 1.0
    assert receiver.ids() == [message_id] * 3
    tries = attempts_of(database, message_id)
    assert [(a.outcome, a.status_code) for a in tries] == [
        ("failed", 429),
        ("failed", 503),
        ("delivered", 200),
    ]
    assert world.delivery(message_id).attempts == 3
    assert world.channel_row(channel).consecutive_failures == 0  # busy is not broken


async def test_a_delivery_failing_past_notify_retry_for_is_dead_lettered(
    world: World, database: Database, receiver: Receiver
) -> None:
    owner = world.person("owner", Role.OWNER)
    tracker = world.tracker(owner)
    channel = world.channel(owner, "webhook", receiver.url)
    receiver.answer(*[500] * 1000)
    (message_id,) = world.notify(tracker, [channel])
    settings = notify_settings(database, notify_retry_for=timedelta(seconds=1))
    async with dispatching(settings, database):
        await until(lambda: world.delivery(message_id).status == "dead")
    delivery = world.delivery(message_id)
    assert delivery.last_status_code == 500
    assert delivery.last_error == "HTTP 500 from the receiver"
    assert delivery.next_attempt_at is None
    tries = attempts_of(database, message_id)
    assert tries[-1].outcome == "dead"
    assert all(a.outcome == "failed" for a in tries[:-1])
    assert tries[-1].attempted_at >= delivery.created_at + timedelta(seconds=1)
    assert len(tries) >= 2
    assert world.channel_row(channel).enabled  # 5xx does not count toward switching off


async def test_a_channel_refusing_notify_disable_after_times_is_switched_off_and_its_owner_told(
    world: World, database: Database, receiver: Receiver
) -> None:
    owner = world.person("owner", Role.OWNER)
    other = world.person("someone")
    tracker = world.tracker(owner)
    broken = world.channel(owner, "webhook", f"{receiver.url}/gone", name="Home Assistant")
    backup = world.channel(owner, "webhook", f"{receiver.url}/backup")
    strangers = world.channel(other, "webhook", f"{receiver.url}/stranger")
    receiver.answer(*[410] * 100, path="/gone")
    ids = [world.notify(tracker, [broken])[0] for _ in range(5)]
    settings = notify_settings(database, notify_disable_after=3)
    async with dispatching(settings, database, NO_RETRY_SOON):
        await until(lambda: any(a.path == "/backup" for a in receiver.arrivals))
        await until(lambda: all(world.delivery(i).status == "dead" for i in ids))
    channel = world.channel_row(broken)
    assert not channel.enabled
    assert channel.disabled_at is not None
    assert channel.disabled_reason is not None
    assert "deliveries in a row failed" in channel.disabled_reason
    assert "HTTP 410" in channel.disabled_reason
    # The five were claimed and sent at once; none was tried again.
    assert [a.path for a in receiver.arrivals].count("/gone") == 5
    (notice,) = [a for a in receiver.arrivals if a.path == "/backup"]
    body = notice.json()
    assert body["type"] == "channel.disabled"
    assert body["data"]["channel"] == {"id": broken, "name": "Home Assistant", "kind": "webhook"}
    assert "Home Assistant" in body["data"]["message"]
    assert not any(a.path == "/stranger" for a in receiver.arrivals)
    assert world.channel_row(strangers).enabled
    assert world.channel_row(backup).enabled
    with database.sessions() as session:
        (row,) = session.query(Notification).filter_by(event_type="channel.disabled").all()
    assert (row.user_id, row.urgent) == (owner.id, True)


async def test_success_resets_the_count_of_failures_in_a_row(
    world: World, database: Database, receiver: Receiver
) -> None:
    owner = world.person("owner", Role.OWNER)
    tracker = world.tracker(owner)
    channel = world.channel(owner, "webhook", receiver.url)
    receiver.answer(400, 400, 200)
    (message_id,) = world.notify(tracker, [channel])
    async with dispatching(notify_settings(database, notify_disable_after=3), database):
        await until(lambda: world.delivery(message_id).status == "delivered")
    row = world.channel_row(channel)
    assert (row.enabled, row.consecutive_failures, row.disabled_at) == (True, 0, None)


def test_backoff_grows_exponentially_with_jitter_up_to_its_cap() -> None:
    def low() -> float:
        return 0.0

    def high() -> float:
        return 1.0

    assert [backoff_delay(n, base=10, cap=3600, random=high) for n in (1, 2, 3, 4)] == [
        10,
        20,
        40,
        80,
    ]
    assert backoff_delay(3, base=10, cap=3600, random=low) == 20  # half of it at the least
    assert backoff_delay(30, base=10, cap=3600, random=high) == 3600


async def test_a_replayed_delivery_gets_a_new_retry_window_from_the_replay(
    world: World, database: Database, receiver: Receiver
) -> None:
    owner = world.person("owner", Role.OWNER)
    tracker = world.tracker(owner)
    channel = world.channel(owner, "webhook", receiver.url)
    (message_id,) = world.notify(tracker, [channel])
    two_days_ago = utcnow() - timedelta(days=2)
    with database.sessions.begin() as session:
        session.execute(
            update(NotificationDelivery)
            .where(NotificationDelivery.message_id == message_id)
            .values(status="dead", created_at=two_days_ago, next_attempt_at=None)
        )
        delivery_id = world.delivery(message_id).id
        replay(session, user_id=owner.id, delivery_id=delivery_id)
    receiver.answer(503)  # fails once after the replay, then arrives
    async with dispatching(notify_settings(database), database):
        await until(lambda: world.delivery(message_id).status == "delivered")
    assert receiver.ids() == [message_id, message_id]
    assert [a.outcome for a in attempts_of(database, message_id)] == ["failed", "delivered"]
