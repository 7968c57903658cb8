"""Deliveries are claimed with a lease: two dispatchers never send one delivery at once, and
a crashed dispatcher's deliveries are sent again, with the same webhook-id, once its lease
runs out (at least once)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event

from parcelwatch.accounts.roles import Role
from parcelwatch.domain import utcnow
from parcelwatch.notifications.dispatcher import Dispatcher, DispatcherOptions
from tests.conftest import Database
from tests.notifications.conftest import (
    FAST,
    Receiver,
    World,
    dispatching,
    notify_settings,
    until,
)

pytestmark = pytest.mark.anyio


async def test_a_delivery_claimed_by_a_crashed_dispatcher_is_sent_again_after_its_lease(
    world: World, database: Database, receiver: Receiver
) -> None:
    owner = world.person("owner", Role.OWNER)
    tracker = world.tracker(owner)
    channel = world.channel(owner, "webhook", receiver.url)
    (message_id,) = world.notify(tracker, [channel])
    settings = notify_settings(database)
    lease = timedelta(seconds=1)
    crashed = Dispatcher(
        settings, database.engine, options=DispatcherOptions(lease=lease), owner="crashed"
    )
    # It claims and sends, then dies before writing down what happened.
    claimed_at = time.monotonic()
    (unit,) = await asyncio.to_thread(crashed._claim, 10)  # noqa: SLF001 - a crash mid-way
    await crashed.senders.send(unit.channel, [d.outgoing for d in unit.deliveries])
    await crashed.senders.aclose()
    assert world.delivery(message_id).lease_owner == "crashed"
    async with dispatching(settings, database, owner="survivor"):
        await until(lambda: world.delivery(message_id).status == "delivered")
        taken_over_at = time.monotonic()
    assert taken_over_at - claimed_at >= lease.total_seconds()  # not before the lease ran out
    assert receiver.ids() == [message_id, message_id]  # at least once, one id
    delivery = world.delivery(message_id)
    assert (delivery.attempts, delivery.lease_owner) == (1, None)


async def test_two_dispatchers_share_the_outbox_without_sending_anything_twice(
    world: World, database: Database, receiver: Receiver
) -> None:
    owner = world.person("owner", Role.OWNER)
    tracker = world.tracker(owner)
    channels = [world.channel(owner, "webhook", f"{receiver.url}/{n}") for n in range(4)]
    ids = [i for _ in range(25) for i in world.notify(tracker, channels)]
    settings = notify_settings(database)
    options = DispatcherOptions(poll_interval=0.02, claim_batch=7, max_in_flight=7)
    async with (
        dispatching(settings, database, options, owner="one"),
        dispatching(settings, database, options, owner="two"),
    ):
        await until(lambda: len(receiver.arrivals) >= len(ids), within=30)
        await until(lambda: all(d.status == "delivered" for d in world.deliveries()))
    assert sorted(receiver.ids()) == sorted(ids)  # each once: none lost, none doubled


async def test_a_worker_can_run_the_dispatcher_in_its_own_task_and_stop_it(
    world: World, database: Database, receiver: Receiver
) -> None:
    owner = world.person("owner", Role.OWNER)
    tracker = world.tracker(owner)
    channel = world.channel(owner, "webhook", receiver.url)
    (message_id,) = world.notify(tracker, [channel])
    dispatcher = Dispatcher(notify_settings(database), database.engine, options=FAST)
    running = asyncio.create_task(dispatcher.run())
    await until(lambda: world.delivery(message_id).status == "delivered")
    await dispatcher.stop()
    assert running.done()
    assert running.exception() is None


async def test_an_idle_dispatcher_only_reads_until_something_is_due(
    world: World, database: Database, receiver: Receiver
) -> None:
    """On SQLite a claim holds the one writer's lock: taken when nothing is due, it made other
    connections' read-then-write transactions fail with "database is locked"."""
    owner = world.person("owner", Role.OWNER)
    tracker = world.tracker(owner)
    channel = world.channel(owner, "webhook", receiver.url)
    world.notify(tracker, [channel], due=utcnow() + timedelta(hours=8))  # quiet hours
    writes: list[object] = []

    def on_begin(connection: Any) -> None:
        if connection.get_execution_options().get("sqlite_begin") == "IMMEDIATE":
            writes.append(connection)

    event.listen(database.engine, "begin", on_begin)
    try:
        async with dispatching(notify_settings(database), database):
            await asyncio.sleep(0.5)  # ten polls
            assert writes == []
            (message_id,) = world.notify(tracker, [channel])
            await until(lambda: world.delivery(message_id).status == "delivered")
    finally:
        event.remove(database.engine, "begin", on_begin)
    assert writes  # the claim and the record
