"""`POST /api/webhooks/shipengine` against pushes signed by the emulator's own key set."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from parcelwatch.api.app import create_app
from parcelwatch.config import Settings
from parcelwatch.domain import ShipmentStatus
from parcelwatch.emulator.app import create_emulator_app, emulator_state
from parcelwatch.emulator.config import EmulatorConfig
from parcelwatch.emulator.state import EmulatorState
from parcelwatch.emulator.storylines import Storyline, find_number
from parcelwatch.emulator.webhooks import send_shipengine_webhook
from parcelwatch.models import Shipment, TrackingEvent
from parcelwatch.shipments.service import register_shipment
from parcelwatch.webhooks.signatures import JwksCache
from tests.conftest import Database

DELIVERED_NUMBER = find_number(Storyline.NORMAL)
URL = "http://localhost/api/webhooks/shipengine"  # a name in ALLOWED_HOSTS


@dataclass
class Harness:
    app: FastAPI
    client: httpx.AsyncClient
    emulator: EmulatorState
    database: Database

    async def push(
        self, number: str, carrier_code: str = "ups", **kwargs: object
    ) -> httpx.Response:
        return await send_shipengine_webhook(
            self.client,
            URL,
            number,
            carrier_code,
            state=self.emulator,
            **kwargs,  # type: ignore[arg-type]
        )

    def shipment(self, number: str) -> Shipment:
        with self.database.sessions() as session:
            found = session.query(Shipment).filter_by(tracking_number=number).one()
            session.expunge(found)
            return found

    def event_count(self) -> int:
        with self.database.sessions() as session:
            return session.query(TrackingEvent).count()


async def _harness(settings: Settings, database: Database) -> AsyncIterator[Harness]:
    # Every number started ten days ago: every storyline has played out.
    epoch = datetime.now(UTC) - timedelta(days=10)
    emulator_app = create_emulator_app(EmulatorConfig(speed=0, epoch=epoch))
    emulator = emulator_state(emulator_app)
    app = create_app(settings)
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator_app)) as jwks_client,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client,
    ):
        app.state.shipengine_jwks = JwksCache(
            url="http://emulator/shipengine/jwks", client=jwks_client
        )
        with database.sessions.begin() as session:
            register_shipment(session, tracking_number=DELIVERED_NUMBER, carrier="ups")
        try:
            yield Harness(app, client, emulator, database)
        finally:
            app.state.database.dispose()  # no lifespan runs over ASGITransport


@pytest.fixture
async def harness(settings: Settings, database: Database) -> AsyncIterator[Harness]:
    async for harness in _harness(settings, database):
        yield harness


@pytest.mark.anyio
async def test_a_signed_track_event_updates_its_shipment_at_once(harness: Harness) -> None:
    response = await harness.push(DELIVERED_NUMBER)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["applied"] is True
    assert body["events_added"] > 0
    shipment = harness.shipment(DELIVERED_NUMBER)
    assert shipment.status is ShipmentStatus.DELIVERED
    assert shipment.provider == "shipengine"
    assert harness.event_count() == body["events_added"]


@pytest.mark.anyio
async def test_the_same_push_twice_adds_no_duplicate_events(harness: Harness) -> None:
    first = (await harness.push(DELIVERED_NUMBER)).json()
    second = (await harness.push(DELIVERED_NUMBER)).json()
    assert second["events_added"] == 0
    assert harness.event_count() == first["events_added"]


@pytest.mark.anyio
async def test_a_tampered_body_is_refused_and_nothing_is_written(harness: Harness) -> None:
    original = harness.client.post

    async def tamper(url: str, *, content: bytes, headers: dict[str, str]) -> httpx.Response:
        return await original(
            url, content=content.replace(b"Delivered", b"Xelivered"), headers=headers
        )

    harness.client.post = tamper  # type: ignore[method-assign]
    response = await harness.push(DELIVERED_NUMBER)
    assert response.status_code == 401
    assert harness.event_count() == 0
    assert harness.shipment(DELIVERED_NUMBER).status is ShipmentStatus.PENDING


@pytest.mark.anyio
async def test_an_old_timestamp_is_refused_with_400(harness: Harness) -> None:
    stale = datetime.now(UTC) - timedelta(minutes=10)
    response = await harness.push(DELIVERED_NUMBER, timestamp=stale)
    assert response.status_code == 400
    assert harness.event_count() == 0


@pytest.mark.anyio
async def test_an_unsigned_request_is_refused(harness: Harness) -> None:
    response = await harness.client.post(URL, json={"resource_type": "API_TRACK", "data": {}})
    assert response.status_code == 404
    assert harness.event_count() == 0


@pytest.mark.anyio
async def test_a_push_for_an_untracked_number_is_acknowledged_and_not_applied(
    harness: Harness,
) -> None:
    stranger = find_number(Storyline.NORMAL, prefix="OTHER")
    response = await harness.push(stranger)
    assert response.status_code == 200
    assert response.json()["applied"] is False
    assert harness.event_count() == 0


@pytest.mark.anyio
async def test_the_same_number_at_another_carrier_is_not_touched(harness: Harness) -> None:
    response = await harness.push(DELIVERED_NUMBER, carrier_code="fedex")
    assert response.json()["applied"] is False
    assert harness.shipment(DELIVERED_NUMBER).status is ShipmentStatus.PENDING


@pytest.mark.anyio
async def test_the_shared_secret_header_is_required_when_configured(
    settings: Settings, database: Database
) -> None:
    secured = settings.model_copy(update={"shipengine_webhook_secret": SecretStr("hook-secret")})
    async for harness in _harness(secured, database):
        refused = await harness.push(DELIVERED_NUMBER)
        assert refused.status_code == 401
        accepted = await harness.push(
            DELIVERED_NUMBER, extra_headers={"X-Parcelwatch-Webhook-Secret": "hook-secret"}
        )
        assert accepted.status_code == 200
        assert accepted.json()["applied"] is True
