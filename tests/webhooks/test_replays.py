"""A replayed ShipEngine push is a duplicate that changes nothing; an older push after a newer
status says "no change"; push ids are forgotten once their signature would be refused."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from parcelwatch.config import Settings
from parcelwatch.emulator.signing import sign_webhook
from parcelwatch.emulator.webhooks import track_event
from parcelwatch.models import Shipment, WebhookPush
from tests.conftest import Database
from tests.webhooks.test_shipengine_webhook import DELIVERED_NUMBER, URL, Harness, _harness


@pytest.fixture
async def harness(settings: Settings, database: Database) -> AsyncIterator[Harness]:
    async for harness in _harness(settings, database):
        yield harness


def _pushes(harness: Harness) -> list[WebhookPush]:
    with harness.database.sessions() as session:
        return list(session.scalars(select(WebhookPush)))


def _row(harness: Harness) -> dict[str, Any]:
    with harness.database.sessions() as session:
        shipment = session.scalars(
            select(Shipment).where(Shipment.tracking_number == DELIVERED_NUMBER)
        ).one()
        return {
            column: getattr(shipment, column)
            for column in (
                "status",
                "status_detail",
                "last_event_at",
                "auto_refresh_count",
                "last_auto_refresh",
                "updated_at",
            )
        }


async def _send(
    harness: Harness, body: dict[str, Any], when: datetime | None = None
) -> httpx.Response:
    raw = json.dumps(body).encode()
    headers = sign_webhook(harness.emulator.keys, raw, when or datetime.now(UTC))
    headers["content-type"] = "application/json"
    return await harness.client.post(URL, content=raw, headers=headers)


def _as_of(body: dict[str, Any], *, dropped: int) -> dict[str, Any]:
    """The push ShipEngine sent earlier: without the `dropped` newest events, and the
    status the newest remaining event gave."""
    earlier = copy.deepcopy(body)
    data = earlier["data"]
    data["events"] = data["events"][dropped:]
    newest = data["events"][0]
    data["status_code"] = newest["status_code"]
    data["status_description"] = newest["description"]
    data["carrier_status_code"] = newest["carrier_status_code"]
    data["carrier_status_description"] = newest["description"]
    data["actual_delivery_date"] = None
    return earlier


@pytest.mark.anyio
async def test_a_replayed_push_is_a_duplicate_and_changes_nothing(harness: Harness) -> None:
    sent: list[tuple[bytes, dict[str, str]]] = []
    original = harness.client.post

    async def capture(url: str, *, content: bytes, headers: dict[str, str]) -> httpx.Response:
        sent.append((content, headers))
        return await original(url, content=content, headers=headers)

    harness.client.post = capture  # type: ignore[method-assign]
    first = await harness.push(DELIVERED_NUMBER)
    assert first.json()["outcome"] == "updated"
    after_first = _row(harness)
    events = harness.event_count()

    content, headers = sent[0]
    for _ in range(3):  # an attacker replaying the captured request within the window
        replay = await original(URL, content=content, headers=headers)
        assert replay.status_code == 200
        assert replay.json()["outcome"] == "duplicate"
        assert replay.json()["applied"] is False
        assert "duplicate" in replay.json()["detail"].lower()
    assert _row(harness) == after_first
    assert harness.event_count() == events
    assert len(_pushes(harness)) == 1


@pytest.mark.anyio
async def test_the_same_news_signed_again_is_not_a_duplicate_but_no_change(
    harness: Harness,
) -> None:
    first = await harness.push(DELIVERED_NUMBER)
    again = await harness.push(DELIVERED_NUMBER, timestamp=datetime.now(UTC) + timedelta(seconds=1))
    assert first.json()["outcome"] == "updated"
    assert again.json()["outcome"] == "unchanged"
    assert again.json()["applied"] is False
    assert again.json()["detail"].startswith("No change")
    assert len(_pushes(harness)) == 2


@pytest.mark.anyio
@pytest.mark.parametrize("newer_dropped", [0, 1])  # newest: delivered (final) / out for delivery
async def test_an_older_push_after_a_newer_status_answers_no_change(
    harness: Harness, newer_dropped: int
) -> None:
    current = track_event(harness.emulator, DELIVERED_NUMBER, "ups")
    newer = await _send(
        harness, _as_of(current, dropped=newer_dropped) if newer_dropped else current
    )
    assert newer.json()["outcome"] == "updated", newer.text
    shown = _row(harness)
    events = harness.event_count()

    older = await _send(harness, _as_of(current, dropped=newer_dropped + 3))
    assert older.status_code == 200
    body = older.json()
    assert body["outcome"] == "unchanged"
    assert body["applied"] is False
    assert body["events_added"] == 0
    assert "older" in body["detail"]
    assert _row(harness) == shown
    assert harness.event_count() == events


@pytest.mark.anyio
async def test_expired_push_ids_are_pruned_as_pushes_arrive(harness: Harness) -> None:
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    with harness.database.sessions.begin() as session:
        session.add(
            WebhookPush(
                push_id="0" * 64,
                provider="shipengine",
                received_at=long_ago,
                expires_at=long_ago + timedelta(minutes=5),
            )
        )
    await harness.push(DELIVERED_NUMBER)
    remembered = _pushes(harness)
    assert [push.push_id for push in remembered] != ["0" * 64]
    assert len(remembered) == 1
    assert remembered[0].expires_at > datetime.now(UTC)
    assert remembered[0].expires_at <= datetime.now(UTC) + timedelta(minutes=5, seconds=5)


@pytest.mark.anyio
async def test_a_refused_push_is_not_remembered(harness: Harness) -> None:
    stale = datetime.now(UTC) - timedelta(minutes=10)
    assert (await harness.push(DELIVERED_NUMBER, timestamp=stale)).status_code == 400
    with harness.database.sessions() as session:
        assert session.scalar(select(func.count()).select_from(WebhookPush)) == 0


@pytest.mark.anyio
async def test_the_same_push_sent_concurrently_is_applied_once(harness: Harness) -> None:
    raw = json.dumps(track_event(harness.emulator, DELIVERED_NUMBER, "ups")).encode()
    headers = sign_webhook(harness.emulator.keys, raw, datetime.now(UTC))
    headers["content-type"] = "application/json"
    answers = await asyncio.gather(
        *(harness.client.post(URL, content=raw, headers=headers) for _ in range(8))
    )
    assert [answer.status_code for answer in answers] == [200] * 8
    outcomes = sorted(answer.json()["outcome"] for answer in answers)
    assert outcomes == ["duplicate"] * 7 + ["updated"]
    assert len(_pushes(harness)) == 1
    assert _row(harness)["auto_refresh_count"] == 1
