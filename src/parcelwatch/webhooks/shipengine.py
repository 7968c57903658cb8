"""ShipEngine's push webhooks, the part of the webhooks feature that speaks ShipEngine: what a
`track` push says (`parse_track_event`), and subscribing parcelwatch's endpoint to them
(`register_webhook`, behind `parcelwatch carriers register-webhook`). Tracking itself is the
provider client's, `parcelwatch.carriers.shipengine`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from parcelwatch.carriers.errors import BadResponseError
from parcelwatch.carriers.http import decode_json, error_detail
from parcelwatch.carriers.parsing import as_dict, text
from parcelwatch.carriers.shipengine import (
    CHECK_CARRIER,
    CODE,
    ShipEngineProvider,
    carrier_from_shipengine_code,
    parse_tracking,
    result_from_response,
)
from parcelwatch.domain import TrackInfo

__all__ = [
    "WEBHOOK_SECRET_HEADER",
    "TrackEventPush",
    "WebhookRegistration",
    "parse_track_event",
    "register_webhook",
    "webhook_request",
]

# Optional shared secret (SHIPENGINE_WEBHOOK_SECRET), sent as a custom header configured on
# the ShipEngine webhook, checked on top of the RSA signature.
WEBHOOK_SECRET_HEADER = "x-parcelwatch-webhook-secret"
TRACK_RESOURCE_TYPES = frozenset({"API_TRACK", "TRACK_EVENT_V2"})
WEBHOOKS_PATH = "/v1/environment/webhooks"


@dataclass(frozen=True, slots=True)
class TrackEventPush:
    """A webhook `track` event: which number of which carrier, and what it says now."""

    tracking_number: str
    carrier: str  # parcelwatch carrier code
    info: TrackInfo


def parse_track_event(body: object) -> TrackEventPush:
    """A webhook body `{resource_url, resource_type: API_TRACK, data}` → `TrackEventPush`.
    The number and carrier come from `resource_url` (falling back to `data`)."""
    envelope = as_dict(body)
    if text(envelope.get("resource_type")) not in TRACK_RESOURCE_TYPES:
        raise BadResponseError("not a track event", provider=CODE)
    data = envelope.get("data")
    query = parse_qs(urlsplit(text(envelope.get("resource_url")) or "").query)
    number = text(next(iter(query.get("tracking_number", [])), None)) or text(
        as_dict(data).get("tracking_number")
    )
    code = text(next(iter(query.get("carrier_code", [])), None)) or text(
        as_dict(data).get("carrier_code")
    )
    if not number or not code:
        raise BadResponseError("track event names no tracking number or carrier", provider=CODE)
    carrier = carrier_from_shipengine_code(code)
    return TrackEventPush(number, carrier, parse_tracking(number, data, carrier=carrier))


def webhook_request(url: str, secret: str | None = None) -> dict[str, Any]:
    """The body of `POST /v1/environment/webhooks` subscribing `url` to `track` events; with
    `secret`, ShipEngine is asked to send it back in WEBHOOK_SECRET_HEADER on every push."""
    body: dict[str, Any] = {"event": "track", "url": url}
    if secret:
        body["headers"] = [{"key": WEBHOOK_SECRET_HEADER, "value": secret}]
    return body


@dataclass(frozen=True, slots=True)
class WebhookRegistration:
    webhook_id: str
    url: str
    created: bool  # False: this exact webhook was already registered


async def register_webhook(
    provider: ShipEngineProvider, url: str, secret: str | None = None
) -> WebhookRegistration:
    """Subscribe `url` to ShipEngine's `track` pushes; registering the same URL again is a
    no-op. A `track` webhook already pointing elsewhere is refused (ShipEngine's 409)."""
    response = await provider.call("POST", WEBHOOKS_PATH, json=webhook_request(url, secret))
    if response.status_code in (200, 201):
        payload = decode_json(response, CODE)
        return WebhookRegistration(str(payload["webhook_id"]), str(payload["url"]), True)
    if response.status_code == 409:
        listed = await provider.call("GET", WEBHOOKS_PATH)
        existing = decode_json(listed, CODE) if listed.status_code == 200 else []
        for hook in existing if isinstance(existing, list) else []:
            if hook.get("event") == "track" and hook.get("url") == url:
                return WebhookRegistration(str(hook["webhook_id"]), url, False)
        others = [h.get("url") for h in existing if isinstance(h, dict)]
        raise BadResponseError(
            f"ShipEngine already has a track webhook ({', '.join(map(str, others))}); "
            "delete it in ShipEngine first",
            provider=CODE,
            status_code=409,
        )
    result_from_response("", response, carrier=CHECK_CARRIER)  # raises auth, 429, 5xx
    raise BadResponseError(
        f"webhook registration refused (HTTP {response.status_code}: "
        f"{error_detail(response) or 'no detail'})",
        provider=CODE,
        status_code=response.status_code,
    )
