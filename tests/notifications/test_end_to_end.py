"""From a carrier's answer to a person's receiver: a sync pass writes the milestone to the
outbox, the dispatcher delivers it, signed, to that person's webhook only; polling the same
data again sends nothing more. On SQLite and PostgreSQL, with a real HTTP receiver verifying
signatures with `svix`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from parcelwatch.carriers.base import TrackResult
from parcelwatch.domain import Location, ShipmentStatus, TrackEvent, TrackInfo, utcnow
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

pytestmark = pytest.mark.anyio


def _answer(status: ShipmentStatus) -> Callable[[str], TrackResult]:
    when = utcnow().replace(microsecond=0) - timedelta(minutes=5)
    event = TrackEvent(
        occurred_at=when, status=status, description="On the van", location=Location("Reno")
    )
    info = TrackInfo(status=status, status_detail="On the van", events=(event,))
    return lambda number: TrackResult.found(number, info)


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
