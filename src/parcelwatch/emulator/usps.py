"""Emulated USPS Tracking API: `POST /oauth2/v3/token`, v3 `GET /tracking/v3/tracking/{n}` and
Tracking 3.2 `POST /tracking/v3r2/tracking` (a JSON array of `{"trackingNumber": ...}`).

Wire format as in the shared samples: string booleans, HTML in `mailClass`/`services`,
events newest first with `eventTimestamp` local and offset-less beside `GMTTimestamp` (UTC)
and `GMTOffset`; the delivery event carries the signer in `name`. Unknown numbers get the
404 `ErrorMessage` with code 150006; a bad token the 401 `ErrorMessage`.

v3r2 answers one entry per number, in request order: 200 with the tracking bodies when all
were found; when every number failed alike, that failure as one `ErrorMessage` (404 for
numbers not known yet, as in the shared v3r2 sample; 400 for invalid ones); otherwise 207
multi-status, each entry a tracking body with `statusCode` "200" or an `ErrorMessage` with
`statusCode` and `trackingNumber`. More than `MAX_BATCH` numbers (35, what third-party
clients send; USPS has not published its cap) is a 400 for the whole request.
"""

from __future__ import annotations

import json
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
V3R2 = "/tracking/v3r2"
MAX_BATCH = 35

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


def _error(
    status: int,
    message: str,
    errors: list[dict[str, str]] | None = None,
    *,
    api_version: str = API_VERSION,
) -> ErrorBody:
    return ErrorBody(
        status,
        {
            "apiVersion": api_version,
            "error": {"code": str(status), "message": message, "errors": errors or []},
        },
    )


def not_found(api_version: str = API_VERSION) -> ErrorBody:
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
        api_version=api_version,
    )


def invalid_number(number: str, api_version: str = API_VERSION) -> ErrorBody:
    return _error(400, f"Invalid tracking number: {number}", api_version=api_version)


def _valid(number: str) -> bool:
    """USPS: alphanumeric, 4 to 34 characters."""
    return number.isalnum() and 4 <= len(number) <= 34


def _requested_numbers(raw: bytes) -> list[str] | None:
    """The `trackingNumber`s of a v3r2 request body; None when it is not that shape."""
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        return None
    if not isinstance(body, list) or not body:
        return None
    numbers = []
    for item in body:
        number = item.get("trackingNumber") if isinstance(item, dict) else None
        if not isinstance(number, str):
            return None
        numbers.append(number.strip())
    return numbers


def batch_answer(entries: list[tuple[str, ErrorBody | dict[str, Any]]]) -> Response:
    """The v3r2 answer for (number, tracking body or error) pairs, in request order."""
    errors = [answer for _, answer in entries if isinstance(answer, ErrorBody)]
    if not errors:
        return json_answer([answer for _, answer in entries])
    if len(errors) == len(entries) and len({e.status for e in errors}) == 1:
        return errors[0].response()  # every number failed alike: one ErrorMessage
    multi = []
    for number, answer in entries:
        if isinstance(answer, ErrorBody):
            multi.append(
                {**answer.body, "statusCode": str(answer.status), "trackingNumber": number}
            )
        else:
            multi.append({**answer, "statusCode": "200"})
    return json_answer(multi, 207)


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
            return invalid_number(number).response()
        timeline, now = state.timeline(number), state.clock.now()
        if not timeline.visible(now):
            return not_found().response()
        detail = request.query_params.get("expand", "SUMMARY").upper() == "DETAIL"
        return json_answer(render_tracking(timeline, now, detail=detail))

    async def track_batch(request: Request) -> Response:
        check = state.tokens.check(CARRIER, bearer_token(request))
        if check != "ok":
            state.stats.auth_failures[CARRIER] += 1
            message = "Access token expired." if check == "expired" else "Unauthorized request."
            return _error(401, message, api_version=V3R2).response()
        numbers = _requested_numbers(await request.body())
        if numbers is None:
            message = "The request body must be an array of {trackingNumber} objects."
            return _error(400, message, api_version=V3R2).response()
        if len(numbers) > MAX_BATCH:
            message = f"A request may contain at most {MAX_BATCH} tracking numbers."
            return _error(400, message, api_version=V3R2).response()
        now = state.clock.now()
        entries: list[tuple[str, ErrorBody | dict[str, Any]]] = []
        for number in numbers:
            state.count_number(CARRIER, number)
            timeline = state.timeline(number) if _valid(number) else None
            if timeline is None:
                entries.append((number, invalid_number(number, V3R2)))
            elif not timeline.visible(now):
                entries.append((number, not_found(V3R2)))
            else:
                entries.append((number, render_tracking(timeline, now)))
        return batch_answer(entries)

    return [
        Route("/usps/oauth2/v3/token", token, methods=["POST"]),
        Route("/usps/tracking/v3/tracking/{number}", track, methods=["GET"]),
        Route("/usps/tracking/v3r2/tracking", track_batch, methods=["POST"]),
    ]
