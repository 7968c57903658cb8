"""Emulated UPS Track API v1: `POST /security/v1/oauth/token`, `GET /api/track/v1/details/{n}`.

As the real API: the token call takes HTTP Basic credentials and answers `expires_in` (and
`issued_at`) as strings; every tracking call needs `transId` and `transactionSrc` headers;
an unknown number is HTTP 200 with a `TW0001` warning and no `package`; activity is newest
first with local `date`/`time` plus `gmtDate`/`gmtTime`/`gmtOffset`; errors use the
`{"response":{"errors":[{code,message}]}}` envelope.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from parcelwatch.emulator.storylines import Event, EventKind, Timeline
from parcelwatch.emulator.wire import ErrorBody, basic_credentials, bearer_token, json_answer

if TYPE_CHECKING:
    from parcelwatch.emulator.state import EmulatorState

__all__ = ["internal_error", "rate_limited", "render_tracking", "routes"]

CARRIER = "ups"

# kind -> (type, code, description, statusCode)
CODES: dict[EventKind, tuple[str, str, str, str]] = {
    EventKind.LABEL_CREATED: (
        "M",
        "MP",
        "Shipper created a label, UPS has not received the package yet. ",
        "003",
    ),
    EventKind.ACCEPTED: ("P", "PU", "Pickup Scan ", "038"),
    EventKind.DEPARTED_FACILITY: ("I", "DP", "Departed from Facility", "005"),
    EventKind.ARRIVED_FACILITY: ("I", "AR", "Arrived at Facility", "005"),
    EventKind.IN_TRANSIT: ("I", "YP", "Processing at UPS Facility", "005"),
    EventKind.ARRIVED_DESTINATION: ("I", "DS", "Destination Scan", "005"),
    EventKind.OUT_FOR_DELIVERY: ("I", "OT", "Out For Delivery Today", "021"),
    EventKind.DELIVERED: ("D", "FS", "DELIVERED ", "011"),
    EventKind.DELIVERY_ATTEMPTED: (
        "X",
        "48",
        "The receiver was not available for delivery. We'll make a second attempt the next "
        "business day.",
        "022",
    ),
    EventKind.DELAYED: ("X", "WD", "Severe weather conditions have delayed delivery.", "007"),
    EventKind.HELD: (
        "X",
        "HA",
        "The package is being held at a UPS facility: the address needs to be corrected.",
        "007",
    ),
    EventKind.RETURNING: ("X", "RS", "Returning to Sender: In Transit to UPS Facility", "035"),
    EventKind.RETURNED: ("RS", "RT", "Returned to Sender", "034"),
    EventKind.AVAILABLE_FOR_PICKUP: (
        "I",
        "2Q",
        "Delivered to UPS Access Point™ and awaiting customer pickup.",
        "040",
    ),
    EventKind.CANCELLED: ("MV", "MV", "Shipper voided the shipping label.", "003"),
}


def _status(event: Event) -> dict[str, str]:
    kind, code, description, status_code = CODES[event.kind]
    return {
        "type": kind,
        "code": code,
        "description": description,
        "simplifiedTextDescription": description.strip().rstrip("."),
        "statusCode": status_code,
    }


def _activity(event: Event) -> dict[str, Any]:
    local = event.local_at
    address: dict[str, str] = {"countryCode": event.clock_place.country_code}
    if event.place:
        address = {
            "city": event.place.city,
            "stateProvince": event.place.state or "",
            "postalCode": event.place.postal_code,
            "countryCode": event.place.country_code,
        }
    address["country"] = address["countryCode"]
    utc = event.at
    return {
        "location": {"address": address},
        "status": _status(event),
        "date": local.strftime("%Y%m%d"),
        "time": local.strftime("%H%M%S"),
        "gmtDate": utc.strftime("%Y%m%d"),
        "gmtTime": utc.strftime("%H%M%S"),
        "gmtOffset": event.clock_place.offset_text,
    }


def render_tracking(timeline: Timeline, now: datetime) -> dict[str, Any]:
    """The `GET /api/track/v1/details/{n}` body at emulated time `now`."""
    events = timeline.visible(now)
    latest = events[0]
    package: dict[str, Any] = {"trackingNumber": timeline.number}
    final = latest.kind in (EventKind.DELIVERED, EventKind.RETURNED)
    if final:
        local = latest.local_at
        package["deliveryDate"] = [{"type": "DEL", "date": local.strftime("%Y%m%d")}]
        package["deliveryTime"] = {"type": "DEL", "endTime": local.strftime("%H%M%S")}
        package["deliveryInformation"] = {"location": "Front Door", "receivedBy": latest.signer}
    elif timeline.planned_delivery and latest.kind is not EventKind.LABEL_CREATED:
        eta = timeline.destination.local(timeline.planned_delivery)
        package["deliveryDate"] = [{"type": "SDD", "date": eta.strftime("%Y%m%d")}]
        package["deliveryTime"] = {"type": "EOD", "startTime": "090000", "endTime": "200000"}
    package["currentStatus"] = _status(latest)
    package["activity"] = [_activity(event) for event in events]
    package["packageAddress"] = [
        {"type": "ORIGIN", "address": _address(timeline, origin=True)},
        {"type": "DESTINATION", "address": _address(timeline, origin=False)},
    ]
    package["service"] = {"code": "003", "description": "UPS Ground"}
    package["packageCount"] = 1
    return {
        "trackResponse": {"shipment": [{"inquiryNumber": timeline.number, "package": [package]}]}
    }


def _address(timeline: Timeline, *, origin: bool) -> dict[str, str]:
    place = timeline.origin if origin else timeline.destination
    return {
        "city": place.city,
        "stateProvince": place.state or "",
        "postalCode": place.postal_code,
        "countryCode": place.country_code,
        "country": place.country_code,
    }


def not_found(number: str) -> dict[str, Any]:
    return {
        "trackResponse": {
            "shipment": [
                {
                    "inquiryNumber": number,
                    "warnings": [{"code": "TW0001", "message": "Tracking Information Not Found"}],
                }
            ]
        }
    }


def _error(status: int, code: str, message: str) -> ErrorBody:
    return ErrorBody(status, {"response": {"errors": [{"code": code, "message": message}]}})


def rate_limited() -> ErrorBody:
    return _error(429, "10429", "Too Many Requests")


def internal_error() -> ErrorBody:
    return _error(500, "10500", "General Failure")


def routes(state: EmulatorState) -> list[BaseRoute]:
    async def token(request: Request) -> Response:
        credentials = basic_credentials(request)
        form = (await request.body()).decode("utf-8", "replace")
        if "grant_type=client_credentials" not in form:
            return _error(400, "10400", "Invalid/Missing grant_type").response()
        client_id, secret = credentials or (None, None)
        if not state.accepts(CARRIER, client_id, secret):
            state.stats.auth_failures[CARRIER] += 1
            return _error(401, "10401", "ClientId is Invalid").response()
        lifetime = state.config.token_lifetime(CARRIER)
        state.stats.tokens_issued[CARRIER] += 1
        return json_answer(
            {
                "token_type": "Bearer",
                "issued_at": str(int(time.time() * 1000)),
                "client_id": client_id,
                "access_token": state.tokens.issue(CARRIER, lifetime),
                "expires_in": str(int(lifetime)),
                "refresh_count": "0",
                "status": "approved",
            }
        )

    async def track(request: Request) -> Response:
        check = state.tokens.check(CARRIER, bearer_token(request))
        if check == "expired":
            state.stats.auth_failures[CARRIER] += 1
            return _error(401, "251004", "Bearer token has expired.").response()
        if check != "ok":
            state.stats.auth_failures[CARRIER] += 1
            return _error(401, "UJ0001", "Invalid token or token is not present.").response()
        for header in ("transId", "transactionSrc"):
            if not request.headers.get(header):
                return _error(400, "250001", f"Missing required header: {header}").response()
        number = request.path_params["number"]
        state.count_number(CARRIER, number)
        if not (number.isalnum() and 7 <= len(number) <= 35):
            return _error(400, "TV1002", "Invalid inquiry number").response()
        timeline, now = state.timeline(number), state.clock.now()
        if not timeline.visible(now):
            return json_answer(not_found(number))
        return json_answer(render_tracking(timeline, now))

    return [
        Route("/ups/security/v1/oauth/token", token, methods=["POST"]),
        Route("/ups/api/track/v1/details/{number}", track, methods=["GET"]),
    ]
