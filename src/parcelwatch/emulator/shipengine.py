"""Emulated ShipEngine: `GET /v1/tracking?carrier_code=&tracking_number=` and `GET /jwks`.

As the real API: the `API-Key` header is the only auth; one number a request; events are
newest first with `occurred_at` in UTC and `carrier_occurred_at` local without offset;
`status_code` is one of AC, IT, DE, EX, AT, SP (NY when the carrier has nothing yet, still
HTTP 200); the delivery event names the `signer`; errors use the `{request_id, errors[]}`
envelope. The underlying carrier's own codes go in `carrier_status_code`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from parcelwatch.emulator import fedex, ups, usps
from parcelwatch.emulator.storylines import Event, EventKind, Region, Timeline
from parcelwatch.emulator.wire import ErrorBody, iso_utc, json_answer

if TYPE_CHECKING:
    from parcelwatch.emulator.state import EmulatorState

__all__ = ["internal_error", "rate_limited", "render_tracking", "routes", "tracking_body"]

CARRIER = "shipengine"

# kind -> (status_code, status_description, status_detail_code)
CODES: dict[EventKind, tuple[str, str, str]] = {
    EventKind.LABEL_CREATED: ("AC", "Accepted", "SHIPMENT_CREATED"),
    EventKind.ACCEPTED: ("AC", "Accepted", "IN_TRANSIT"),
    EventKind.DEPARTED_FACILITY: ("IT", "In Transit", "IN_TRANSIT"),
    EventKind.ARRIVED_FACILITY: ("IT", "In Transit", "IN_TRANSIT"),
    EventKind.IN_TRANSIT: ("IT", "In Transit", "IN_TRANSIT"),
    EventKind.ARRIVED_DESTINATION: ("IT", "In Transit", "IN_TRANSIT"),
    EventKind.OUT_FOR_DELIVERY: ("IT", "In Transit", "OUT_FOR_DELIVERY"),
    EventKind.DELIVERED: ("DE", "Delivered", "DELIVERED"),
    EventKind.DELIVERY_ATTEMPTED: ("AT", "Delivery Attempt", "ATTEMPTED_DELIVERY"),
    EventKind.DELAYED: ("EX", "Exception", "DELAYED"),
    EventKind.HELD: ("EX", "Exception", "ADDRESS_ISSUE"),
    EventKind.RETURNING: ("EX", "Exception", "RETURNING_TO_SENDER"),
    EventKind.RETURNED: ("EX", "Exception", "RETURNED_TO_SENDER"),
    EventKind.AVAILABLE_FOR_PICKUP: (
        "SP",
        "Delivered To Collection Location",
        "AWAITING_COLLECTION_FROM_PICKUP_POINT",
    ),
    EventKind.CANCELLED: ("EX", "Exception", "SHIPMENT_CANCELLED"),
}


def _carrier_code(event: Event, carrier_code: str) -> tuple[str, str]:
    """The underlying carrier's own (code, text) for the event, as ShipEngine passes it on."""
    if carrier_code == "ups":
        _type, code, text, _status = ups.CODES[event.kind]
        return code, text.strip()
    if carrier_code == "usps" and event.kind in usps.CODES:
        code, text, _category = usps.CODES[event.kind]
        return code, text
    if carrier_code == "fedex":
        code, text, *_rest = fedex.CODES[event.kind]
        return code, text
    return event.kind.value.upper(), CODES[event.kind][1]


def _event(event: Event, carrier_code: str) -> dict[str, Any]:
    code, text = _carrier_code(event, carrier_code)
    place = event.place
    return {
        "occurred_at": iso_utc(event.at),
        "carrier_occurred_at": event.local_at.replace(tzinfo=None).isoformat(timespec="seconds"),
        "description": text,
        "city_locality": place.city if place else None,
        "state_province": place.state if place else None,
        "postal_code": place.postal_code if place else None,
        "country_code": place.country_code if place else None,
        "company_name": None,
        "signer": event.signer or "",
        "event_code": code,
        "carrier_detail_code": None,
        "status_code": CODES[event.kind][0],
        "carrier_status_code": code,
        "latitude": None,
        "longitude": None,
    }


def render_tracking(timeline: Timeline, now: datetime, carrier_code: str) -> dict[str, Any]:
    """The `GET /v1/tracking` body at emulated time `now` (also a webhook's `data`)."""
    events = timeline.visible(now)
    if not events:
        return {
            "tracking_number": timeline.number,
            "status_code": "NY",
            "status_description": "Not Yet In System",
            "carrier_status_code": None,
            "carrier_status_description": None,
            "ship_date": None,
            "estimated_delivery_date": None,
            "actual_delivery_date": None,
            "exception_description": None,
            "events": [],
        }
    latest = events[0]
    status_code, description, detail = CODES[latest.kind]
    carrier_status, carrier_text = _carrier_code(latest, carrier_code)
    accepted = next((e for e in events if e.kind is EventKind.ACCEPTED), None)
    final = latest.kind in (EventKind.DELIVERED, EventKind.RETURNED)
    eta = timeline.planned_delivery if not final else None
    return {
        "tracking_number": timeline.number,
        "status_code": status_code,
        "status_description": description,
        "status_detail_code": detail,
        "carrier_status_code": carrier_status,
        "carrier_status_description": carrier_text,
        "ship_date": iso_utc(accepted.at, millis=True) if accepted else None,
        "estimated_delivery_date": iso_utc(eta, millis=True) if eta else None,
        "actual_delivery_date": iso_utc(latest.at, millis=True) if final else None,
        "exception_description": description if status_code == "EX" else None,
        "events": [_event(event, carrier_code) for event in events],
    }


def tracking_body(state: EmulatorState, number: str, carrier_code: str) -> dict[str, Any]:
    region: Region = "eu" if carrier_code.startswith("dhl") else "us"
    return render_tracking(state.timeline(number, region=region), state.clock.now(), carrier_code)


# ShipEngine's webhook events (its docs list these; parcelwatch only uses "track").
WEBHOOK_EVENTS = frozenset(
    {
        "batch",
        "carrier_connected",
        "order_source_refresh_complete",
        "rate",
        "report_complete",
        "sales_orders_imported",
        "track",
    }
)


def _error(status: int, error_type: str, code: str, message: str) -> ErrorBody:
    return ErrorBody(
        status,
        {
            "request_id": str(uuid.uuid4()),
            "errors": [
                {
                    "error_source": "shipengine",
                    "error_type": error_type,
                    "error_code": code,
                    "message": message,
                }
            ],
        },
    )


def rate_limited() -> ErrorBody:
    return _error(
        429,
        "system",
        "rate_limit_exceeded",
        "You have exceeded the rate limit. Please see https://www.shipengine.com/docs/rate-limits",
    )


def internal_error() -> ErrorBody:
    return _error(500, "system", "unspecified", "An unexpected error occurred.")


def routes(state: EmulatorState) -> list[BaseRoute]:
    async def track(request: Request) -> Response:
        if not state.accepts(CARRIER, request.headers.get("api-key")):
            state.stats.auth_failures[CARRIER] += 1
            return _error(
                401,
                "security",
                "unauthorized",
                "The API key is invalid. Please see https://www.shipengine.com/docs/auth",
            ).response()
        carrier_code = (request.query_params.get("carrier_code") or "").strip()
        number = (request.query_params.get("tracking_number") or "").strip()
        for name, value in (("carrier_code", carrier_code), ("tracking_number", number)):
            if not value:
                return _error(
                    400, "validation", "field_value_required", f"{name} is required."
                ).response()
        state.count_number(CARRIER, number)
        return json_answer(tracking_body(state, number, carrier_code))

    async def jwks(request: Request) -> Response:
        return json_answer(state.keys.jwks())

    def unauthorized(request: Request) -> Response | None:
        if state.accepts(CARRIER, request.headers.get("api-key")):
            return None
        state.stats.auth_failures[CARRIER] += 1
        return _error(401, "security", "unauthorized", "The API key is invalid.").response()

    async def create_webhook(request: Request) -> Response:
        """`POST /v1/environment/webhooks`: one webhook per event; 409 on a second."""
        if (refused := unauthorized(request)) is not None:
            return refused
        try:
            body = await request.json()
        except ValueError:
            body = None
        event = body.get("event") if isinstance(body, dict) else None
        url = body.get("url") if isinstance(body, dict) else None
        if event not in WEBHOOK_EVENTS or not isinstance(url, str) or "://" not in url:
            return _error(
                400, "validation", "invalid_field_value", "event and url are required."
            ).response()
        if any(hook["event"] == event for hook in state.webhooks):
            return _error(
                409, "validation", "webhook_exists", f"A {event} webhook already exists."
            ).response()
        hook = {
            "webhook_id": f"se-{len(state.webhooks) + 1}",
            "url": url,
            "event": event,
            "headers": body.get("headers") or [],
        }
        state.webhooks.append(hook)
        return json_answer(hook)

    async def list_webhooks(request: Request) -> Response:
        if (refused := unauthorized(request)) is not None:
            return refused
        return json_answer(list(state.webhooks))

    return [
        Route("/shipengine/v1/tracking", track, methods=["GET"]),
        Route("/shipengine/v1/environment/webhooks", create_webhook, methods=["POST"]),
        Route("/shipengine/v1/environment/webhooks", list_webhooks, methods=["GET"]),
        Route("/shipengine/jwks", jwks, methods=["GET"]),
    ]
