"""From a carrier's answer to a person's receiver: a sync pass writes the milestone to the
outbox, the dispatcher delivers it, signed, to that person's webhook only; polling the same
data again sends nothing more; a `parcelwatch worker` process runs both the engine and the
dispatcher. On SQLite and PostgreSQL, with a real HTTP receiver verifying signatures with
`svix`."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from parcelwatch.carriers.base import TrackResult
from parcelwatch.domain import Location, ShipmentStatus, TrackEvent, TrackInfo, utcnow
from parcelwatch.models import NotificationDelivery, Shipment
from parcelwatch.notifications.events import MILESTONE_TYPES
from parcelwatch.sync.engine import EngineOptions, SyncEngine
from parcelwatch.sync.selection import Selection
from parcelwatch.sync.testing import FakeProvider, StaticProviders
from tests.conftest import Database
from tests.notifications.conftest import (
    ChannelFactory,
    Receiver,
    dispatching,
    new_secret,
    notify_settings,
    until,
)
from tests.sync.conftest import running_emulator
from tests.sync.test_signals import start


def _answer(status: ShipmentStatus) -> Callable[[str], TrackResult]:
    when = utcnow().replace(microsecond=0) - timedelta(minutes=5)
    event = TrackEvent(
        occurred_at=when, status=status, description="On the van", location=Location("Reno")
    )
    info = TrackInfo(status=status, status_detail="On the van", events=(event,))
    return lambda number: TrackResult.found(number, info)


def _synced(database: Database) -> int:
    with database.sessions() as session:
        return session.scalar(select(func.count()).where(Shipment.auto_refresh_count > 0)) or 0


def _all_delivered(database: Database, receiver: Receiver) -> bool:
    with database.sessions() as session:
        pending = session.scalar(
            select(func.count()).where(NotificationDelivery.status != "delivered")
        )
    return pending == 0 and _delivered(database) == set(receiver.ids())


def _delivered(database: Database) -> set[str]:
    with database.sessions() as session:
        query = select(NotificationDelivery.message_id).where(
            NotificationDelivery.status == "delivered"
        )
        return set(session.scalars(query))


@pytest.mark.anyio
async def test_a_sync_pass_reaches_only_the_trackers_own_webhook_signed_and_once(
    database: Database,
    people: dict[str, int],
    track: Callable[..., int],
    add_channel: ChannelFactory,
    receiver: Receiver,
) -> None:
    secret = new_secret()
    receiver.secrets["ann"] = secret
    shipment_id = track(people["ann"], "1Z5R89390357567127", "Running shoes")
    add_channel(people["ann"], target=f"{receiver.url}/ann", secret=secret)
    add_channel(people["bob"], target=f"{receiver.url}/bob", secret=new_secret())
    settings = notify_settings(database, ups_rate_limit=1000.0)
    ups = FakeProvider(code="ups", max_batch=1, script=_answer(ShipmentStatus.OUT_FOR_DELIVERY))
    engine = SyncEngine(
        settings=settings,
        db=database.engine,
        providers=StaticProviders({"ups": ups}),
        options=EngineOptions(),
    )
    try:
        async with dispatching(settings, database):
            await engine.run_pass()
            await until(lambda: len(receiver.arrivals) == 1)
            await engine.run_pass(Selection(force=True))  # the same answer again
            await engine.run_pass(Selection(force=True))
    finally:
        engine.close()
    (arrival,) = receiver.arrivals
    assert arrival.path == "/ann"
    assert arrival.verified_by == ["ann"]
    body = arrival.json()
    assert body["type"] == "shipment.out_for_delivery"
    assert body["data"]["shipment"]["id"] == shipment_id
    assert body["data"]["tracker"]["description"] == "Running shoes"
    assert [event["description"] for event in body["data"]["events"]] == ["On the van"]


def test_a_worker_process_delivers_what_its_sync_passes_enqueue(
    database: Database,
    people: dict[str, int],
    track: Callable[..., int],
    add_channel: ChannelFactory,
    receiver: Receiver,
) -> None:
    numbers = [f"1ZNOTIFY{n:010d}" for n in range(1, 6)]
    for number in numbers:
        track(people["ann"], number)
    secret = new_secret()
    receiver.secrets["ann"] = secret
    every = tuple(event_type.value for event_type in MILESTONE_TYPES)
    add_channel(people["ann"], target=f"{receiver.url}/ann", secret=secret, event_types=every)
    with running_emulator(head_start=timedelta(days=2)) as emulator:
        env = emulator.environment(database, notify_allow_private_networks=True)
        worker = start(["worker", "--heartbeat-every", "0.5"], env)
        deadline = time.monotonic() + 60
        while not (
            _synced(database) == len(numbers) and _delivered(database) == set(receiver.ids())
        ):
            if worker.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        worker.send_signal(signal.SIGTERM)
        output = worker.communicate(timeout=30)
    assert worker.returncode == 0, output
    assert _synced(database) == len(numbers), output
    assert _delivered(database), "the storylines moved no shipment to a milestone"
    assert set(receiver.ids()) == _delivered(database), output
    assert all(arrival.verified_by == ["ann"] for arrival in receiver.arrivals)
    assert len(set(receiver.ids())) == len(receiver.ids())  # each milestone once
