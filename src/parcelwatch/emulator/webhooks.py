"""Pushing ShipEngine `track` webhooks from the emulator: the body (what `GET /v1/tracking`
answers now) signed with the emulator's key set (`emulator/signing.py`)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx

from parcelwatch.emulator import shipengine
from parcelwatch.emulator.signing import sign_webhook

if TYPE_CHECKING:
    from parcelwatch.emulator.state import EmulatorState

__all__ = ["send_shipengine_webhook", "track_event"]


def track_event(state: EmulatorState, tracking_number: str, carrier_code: str) -> dict[str, Any]:
    """The `API_TRACK` webhook body: the same `data` as `GET /v1/tracking` returns now."""
    query = urlencode({"carrier_code": carrier_code, "tracking_number": tracking_number})
    return {
        "resource_url": f"{state.config.public_base_url}/shipengine/v1/tracking?{query}",
        "resource_type": "API_TRACK",
        "data": shipengine.tracking_body(state, tracking_number, carrier_code),
    }


async def send_shipengine_webhook(
    client: httpx.AsyncClient,
    url: str,
    tracking_number: str,
    carrier_code: str,
    *,
    state: EmulatorState,
    timestamp: datetime | None = None,
    extra_headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST a correctly signed `track` webhook for the number's current state to `url`.

    `timestamp` defaults to the real time now (receivers compare it with their clock, not the
    emulated one)."""
    body = json.dumps(track_event(state, tracking_number, carrier_code)).encode()
    headers = sign_webhook(state.keys, body, timestamp or datetime.now().astimezone())
    headers["content-type"] = "application/json"
    response = await client.post(url, content=body, headers={**headers, **(extra_headers or {})})
    state.stats.webhooks_sent += 1
    return response
