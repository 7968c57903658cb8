"""Emulated USPS Tracking API v3: `POST /oauth2/v3/token`, `GET /tracking/v3/tracking/{n}`.

Wire format as in the shared samples: string booleans, HTML in `mailClass`/`services`,
events newest first with `eventTimestamp` local and offset-less beside `GMTTimestamp` (UTC)
and `GMTOffset`; the delivery event carries the signer in `name`. Unknown numbers get the
404 `ErrorMessage` with code 150006; a bad token the 401 `ErrorMessage`.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from parcelwatch.emulator.storylines import Event, EventKind, Timeline
from parcelwatch.emulator.wire import ErrorBody, bearer_token, iso_utc, json_answer, read_fields

if TYPE_CHECKING:
    from parcelwatch.emulator.state import EmulatorState

__all__ = ["internal_error", "rate_limited", "render_tracking", "routes"]

CARRIER = "usps"
API_VERSION = "/tracking/v3"

# kind -> (eventCode, eventType, statusCategory)
CODES: dict[EventKind, tuple[str, str, str]] = {
    EventKind.LABEL_CREATED: ("GX", "Shipping Label Created, USPS Awaiting Item", "Pre-Shipment"),
    EventKind.ACCEPTED: ("03", "USPS in possession of item", "Accepted"),
    EventKind.DEPARTED_FACILITY: ("T1", "Departed USPS Regional Facility", "In Transit"),
    EventKind.ARRIVED_FACILITY: ("A1", "Arrived at USPS Regional Facility", "In Transit"),
    EventKind.IN_TRANSIT: ("TL", "In Transit to Next Facility", "In Transit"),
    EventKind.ARRIVED_DESTINATION: ("07", "Arrived at Post Office", "In Transit"),
    EventKind.OUT_FOR_DELIVERY: ("OF", "Out for Delivery", "Out for Delivery"),
    EventKind.DELIVERED: ("01", "Delivered, Left with Individual", "Delivered"),
    EventKind.DELIVERY_ATTEMPTED: (
        "02",
        "Notice Left (No Authorized Recipient Available)",
        "Delivery Attempt",
    ),
    EventKind.HELD: ("05", "Undeliverable as Addressed", "Alert"),
    EventKind.RETURNING: ("09", "Return to Sender Processed", "Alert"),
    # USPS reports a completed return as a delivery to the original sender.
    EventKind.RETURNED: ("01", "Delivered, To Original Sender", "Delivered"),
    EventKind.AVAILABLE_FOR_PICKUP: ("16", "Available for Pickup", "Available for Pickup"),
}
# USPS tracking has no weather-delay or voided-label scan: those events are not shown (a
# cancelled USPS label simply stays "Pre-Shipment", as it does for real).
SILENT = frozenset({EventKind.DELAYED, EventKind.CANCELLED})
DEPARTED_POST_OFFICE = ("SF", "Departed Post Office", "In Transit")


def _codes(event: Event, timeline: Timeline) -> tuple[str, str, str]:
    if event.kind is EventKind.DEPARTED_FACILITY and event.place == timeline.origin:
        return DEPARTED_POST_OFFICE
    return CODES[event.kind]


def _event(event: Event, timeline: Timeline) -> dict[str, Any]:
    code, description, _category = _codes(event, timeline)
    place = event.place
    local = event.local_at
    return {
        "eventType": description,
        "eventTimestamp": local.replace(tzinfo=None).isoformat(timespec="seconds"),
        "GMTTimestamp": iso_utc(event.at),
        "GMTOffset": event.clock_place.offset_text,
        "eventCountry": None if place is None or place.country_code == "US" else place.country_code,
        "eventCity": place.city if place else None,
        "eventState": place.state if place else None,
        "eventZIP": place.postal_code if place else None,
        "firm": None,
        "name": event.signer,
        "authorizedAgent": "false",
        "eventCode": code,
        "additionalProp": None,
    }


def _summary(event: Event, description: str) -> str:
    local = event.local_at
    when = f"{local.strftime('%I:%M %p').lstrip('0').lower()} on {local.strftime('%B %d, %Y')}"
    where = ""
    if event.place:
        where = f" in {event.place.city}, {event.place.state} {event.place.postal_code}"
    return f"{description} at {when}{where}."


def render_tracking(timeline: Timeline, now: datetime, *, detail: bool = True) -> dict[str, Any]:
    """The `GET /tracking/v3/tracking/{n}?expand=DETAIL` body at emulated time `now`."""
    events = [event for event in timeline.visible(now) if event.kind not in SILENT]
    latest = events[0]
    _code, status, category = _codes(latest, timeline)
    tracking = "USPS Tracking<SUP>&#174;</SUP>"
    services: str | list[str] = tracking
    if timeline.variant("usps-services", 2):  # USPS sends a string or a list
        services = [tracking, "Up to $100 insurance included"]
    body: dict[str, Any] = {
        "destinationCity": timeline.destination.city,
        "destinationState": timeline.destination.state,
        "destinationZIP": timeline.destination.postal_code,
        "emailEnabled": "true",
        "kahalaIndicator": "false",
        "mailClass": "USPS Ground Advantage<SUP>&#153;</SUP>",
        "mailType": "DM",
        "originCity": timeline.origin.city,
        "originState": timeline.origin.state,
        "originZIP": timeline.origin.postal_code,
        "proofOfDeliveryEnabled": "false",
        "restoreEnabled": "false",
        "RRAMEnabled": "false",
        "RREEnabled": "false",
        "services": services,
        "serviceTypeCode": "001",
        "status": status,
        "statusCategory": category,
        "statusSummary": _summary(latest, f"Your item status is: {status}"),
    }
    if timeline.planned_delivery and latest.kind not in (EventKind.DELIVERED, EventKind.RETURNED):
        eta = timeline.destination.local(timeline.planned_delivery)
        body["expectedDeliveryDate"] = eta.date().isoformat()
    if detail:
        body["trackingEvents"] = [_event(event, timeline) for event in events]
    body["trackingNumber"] = timeline.number
    return body


def _error(status: int, message: str, errors: list[dict[str, str]] | None = None) -> ErrorBody:
    return ErrorBody(
        status,
        {
            "apiVersion": API_VERSION,
            "error": {"code": str(status), "message": message, "errors": errors or []},
        },
    )


def not_found() -> ErrorBody:
    return _error(
        404,
        "",
        [
            {
                "title": "",
                "detail": "A status update is not yet available for your package. It will be "
                "available when the shipper provides an update or the package is given to "
                "USPS. Check back soon.",
                "status": "404",
                "code": "150006",
            }
        ],
    )


def rate_limited() -> ErrorBody:
    return _error(429, "Too Many Requests: the quota for this API was exceeded.")


def internal_error() -> ErrorBody:
    return _error(500, "Internal Server Error")


INVALID_CLIENT = ErrorBody(
    401,
    {
        "error": "invalid_client",
        "error_description": "Client authentication failed.",
        "error_uri": "https://datatracker.ietf.org/doc/html/rfc6749#page-45",
    },
)


def routes(state: EmulatorState) -> list[BaseRoute]:
    async def token(request: Request) -> Response:
        fields = await read_fields(request)
        if fields.get("grant_type") != "client_credentials":
            return ErrorBody(
                400,
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant_type must be client_credentials.",
                },
            ).response()
        client_id = fields.get("client_id")
        if not state.accepts(CARRIER, client_id, fields.get("client_secret")):
            state.stats.auth_failures[CARRIER] += 1
            return INVALID_CLIENT.response()
        lifetime = state.config.token_lifetime(CARRIER)
        state.stats.tokens_issued[CARRIER] += 1
        return json_answer(
            {
                "access_token": state.tokens.issue(CARRIER, lifetime),
                "token_type": "Bearer",
                "issued_at": int(time.time() * 1000),
                "expires_in": int(lifetime),
                "status": "approved",
                "scope": fields.get("scope") or "addresses tracking prices labels",
                "issuer": "api.usps.com",
                "client_id": client_id,
                "application_name": "parcelwatch-emulator",
            }
        )

    async def track(request: Request) -> Response:
        check = state.tokens.check(CARRIER, bearer_token(request))
        if check != "ok":
            state.stats.auth_failures[CARRIER] += 1
            message = "Access token expired." if check == "expired" else "Unauthorized request."
            return _error(401, message).response()
        number = request.path_params["number"]
        state.count_number(CARRIER, number)
        if not number.isalnum():
            return _error(400, f"Invalid tracking number: {number}").response()
        timeline, now = state.timeline(number), state.clock.now()
        if not timeline.visible(now):
            return not_found().response()
        detail = request.query_params.get("expand", "SUMMARY").upper() == "DETAIL"
        return json_answer(render_tracking(timeline, now, detail=detail))

    return [
        Route("/usps/oauth2/v3/token", token, methods=["POST"]),
        Route("/usps/tracking/v3/tracking/{number}", track, methods=["GET"]),
    ]
