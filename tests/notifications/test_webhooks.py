"""Webhook deliveries reach a real HTTP server signed the Standard Webhooks way, verified by
an independent verifier (`svix`), with secret rotation, at least once and with one id."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

from parcelwatch.accounts.roles import Role
from parcelwatch.domain import utcnow
from parcelwatch.models import DeliveryAttempt
from parcelwatch.notifications.dispatcher import Dispatcher
from parcelwatch.notifications.outbox import new_message_id
from parcelwatch.notifications.senders import ChannelTarget, Outgoing, send_now
from parcelwatch.notifications.wakeup import wake_dispatchers
from tests.conftest import Database
from tests.notifications.conftest import (
    NO_RETRY_SOON,
    Receiver,
    World,
    dispatching,
    new_secret,
    notify_settings,
    until,
)

pytestmark = pytest.mark.anyio


async def test_a_webhook_arrives_signed_and_svix_verifies_it(
    world: World, database: Database, receiver: Receiver
) -> None:
    owner = world.person("owner", Role.OWNER)
    tracker = world.tracker(owner, "Running shoes")
    secret = new_secret()
    receiver.secrets["current"] = secret
    channel = world.channel(owner, "webhook", f"{receiver.url}/hook", secret=secret)
    (message_id,) = world.notify(tracker, [channel])
    async with dispatching(notify_settings(database), database):
        await until(lambda: world.delivery(message_id).status == "delivered")
    (arrival,) = receiver.arrivals
    assert arrival.path == "/hook"
    assert arrival.verified_by == ["current"]
    assert arrival.headers["webhook-id"] == message_id
    assert abs(int(arrival.headers["webhook-timestamp"]) - time.time()) < 30
    body = arrival.json()
    assert body["type"] == "shipment.out_for_delivery"
    assert body["version"] == 1
    assert body["data"]["tracker"]["description"] == "Running shoes"
    assert arrival.headers["content-type"] == "application/json"
    delivery = world.delivery(message_id)
    assert (delivery.attempts, delivery.last_status_code, delivery.lease_owner) == (1, 200, None)
    assert delivery.delivered_at is not None
    with database.sessions() as session:
        (attempt,) = session.query(DeliveryAttempt).all()
    assert (attempt.outcome, attempt.status_code, attempt.error) == ("delivered", 200, None)
    assert attempt.latency_ms is not None
    assert attempt.latency_ms > 0


async def test_during_a_rotation_both_the_old_and_the_new_secret_verify(
    world: World, database: Database, receiver: Receiver
) -> None:
    owner = world.person("owner", Role.OWNER)
    tracker = world.tracker(owner)
    old, new = new_secret(), new_secret()
    receiver.secrets.update(old=old, new=new)
    rotating = world.channel(
        owner,
        "webhook",
        f"{receiver.url}/rotating",
        secret=new,
        previous_secret=old,
        previous_secret_expires_at=utcnow() + timedelta(hours=1),
    )
    rotated = world.channel(
        owner,
        "webhook",
        f"{receiver.url}/rotated",
        secret=new,
        previous_secret=old,
        previous_secret_expires_at=utcnow() - timedelta(seconds=1),
    )
    world.notify(tracker, [rotating, rotated])
    async with dispatching(notify_settings(database), database):
        await until(lambda: len(receiver.arrivals) == 2)
    by_path = {arrival.path: arrival for arrival in receiver.arrivals}
    assert sorted(by_path["/rotating"].verified_by) == ["new", "old"]
    assert len(by_path["/rotating"].headers["webhook-signature"].split(" ")) == 2
    assert by_path["/rotated"].verified_by == ["new"]  # the overlap is over


async def test_a_nudge_after_commit_delivers_without_waiting_for_the_poll(
    world: World, database: Database, receiver: Receiver
) -> None:
    owner = world.person("owner", Role.OWNER)
    tracker = world.tracker(owner)
    channel = world.channel(owner, "webhook", receiver.url)
    slow_poll = Dispatcher(notify_settings(database), database.engine)
    slow_poll.options.poll_interval = 30.0  # only the nudge can wake it in time
    slow_poll.start()
    try:
        await until(lambda: slow_poll.running)
        await asyncio.sleep(0.2)  # idle: its first poll is over
        world.notify(tracker, [channel])
        committed = time.time()
        wake_dispatchers()  # what the enqueue does after its commit
        await until(lambda: len(receiver.arrivals) == 1, within=10)
    finally:
        await slow_poll.stop()
    # Its poll would take 30 s; the benchmark measures the real figure (p99 ~0.1 s).
    assert receiver.arrivals[0].at - committed < 3.0


async def test_redirects_are_not_followed_and_count_as_a_refusal(
    world: World, database: Database, receiver: Receiver
) -> None:
    owner = world.person("owner", Role.OWNER)
    tracker = world.tracker(owner)
    channel = world.channel(owner, "webhook", f"{receiver.url}/moved")
    receiver.answer((307, {"Location": f"{receiver.url}/elsewhere"}))
    (message_id,) = world.notify(tracker, [channel])
    async with dispatching(notify_settings(database), database, NO_RETRY_SOON):
        await until(lambda: world.delivery(message_id).attempts == 1)
    assert [arrival.path for arrival in receiver.arrivals] == ["/moved"]
    delivery = world.delivery(message_id)
    assert delivery.status == "pending"
    assert delivery.last_status_code == 307
    assert "redirect" in (delivery.last_error or "")
    assert world.channel_row(channel).consecutive_failures == 1


async def test_send_now_sends_a_test_at_once_and_says_how_it_went(
    world: World, database: Database, receiver: Receiver
) -> None:
    owner = world.person("owner", Role.OWNER)
    secret = new_secret()
    receiver.secrets["current"] = secret
    channel = ChannelTarget.of(
        world.channel_row(world.channel(owner, "webhook", receiver.url, secret=secret))
    )
    payload = {
        "type": "notification.test",
        "timestamp": utcnow().isoformat(),
        "version": 1,
        "data": {
            "channel": {"id": channel.id, "name": channel.name, "kind": "webhook"},
            "message": "It works.",
        },
    }
    settings = notify_settings(database)
    sent = await send_now(settings, channel, Outgoing(new_message_id(), payload))
    assert (sent.delivered, sent.status_code) == (True, 200)
    receiver.answer(503)
    failed = await send_now(settings, channel, Outgoing(new_message_id(), payload))
    assert (failed.delivered, failed.status_code, failed.counts_against_channel) == (
        False,
        503,
        False,
    )
    assert [a.verified_by for a in receiver.arrivals] == [["current"], ["current"]]
