"""Emulated FedEx Track API v1: `POST /oauth/token`, `POST /track/v1/trackingnumbers`.

As the real API: a form token request answering `expires_in` 3599; up to 30 numbers a
request (more, or none, is a 400); each number gets its own `completeTrackResults` entry
and an unknown one reports `TRACKING.TRACKINGNUMBER.NOTFOUND` inside the HTTP 200; scan
events are newest first with ISO times carrying the local offset; a delivery has
`ACTUAL_DELIVERY` in `dateAndTimes` and the signer in `deliveryDetails.receivedByName`.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from parcelwatch.emulator.places import Place
from parcelwatch.emulator.storylines import Event, EventKind, Timeline
from parcelwatch.emulator.wire import ErrorBody, bearer_token, json_answer, read_fields

if TYPE_CHECKING:
    from parcelwatch.emulator.state import EmulatorState

__all__ = [
    "MAX_NUMBERS",
    "internal_error",
    "quota_exceeded",
    "rate_limited",
    "render_track_result",
    "routes",
]

CARRIER = "fedex"
MAX_NUMBERS = 30

# kind -> (eventType, eventDescription, derivedStatusCode, derivedStatus, exception code/text)
CODES: dict[EventKind, tuple[str, str, str, str, str, str]] = {
    EventKind.LABEL_CREATED: (
        "OC",
        "Shipment information sent to FedEx",
        "IN",
        "Initiated",
        "",
        "",
    ),
    EventKind.ACCEPTED: ("PU", "Picked up", "PU", "Picked up", "", ""),
    EventKind.DEPARTED_FACILITY: ("DP", "Departed FedEx location", "IT", "In transit", "", ""),
    EventKind.ARRIVED_FACILITY: ("AR", "Arrived at FedEx location", "IT", "In transit", "", ""),
    EventKind.IN_TRANSIT: ("IT", "On the way", "IT", "In transit", "", ""),
    EventKind.ARRIVED_DESTINATION: ("AR", "At local FedEx facility", "IT", "In transit", "", ""),
    EventKind.OUT_FOR_DELIVERY: (
        "OD",
        "On FedEx vehicle for delivery",
        "IT",
        "In transit",
        "",
        "",
    ),
    EventKind.DELIVERED: ("DL", "Delivered", "DL", "Delivered", "", ""),
    EventKind.DELIVERY_ATTEMPTED: (
        "DE",
        "Delivery exception",
        "DE",
        "Delivery exception",
        "08",
        "Customer not available or business closed",
    ),
    EventKind.DELAYED: ("DY", "Delay", "DY", "Delay", "", "Weather delay"),
    EventKind.HELD: (
        "SE",
        "Shipment exception",
        "SE",
        "Shipment exception",
        "03",
        "Incorrect address",
    ),
    EventKind.RETURNING: ("RS", "Return to shipper", "RS", "Return to shipper", "", ""),
    EventKind.RETURNED: ("DL", "Delivered", "DL", "Delivered", "", ""),
    EventKind.AVAILABLE_FOR_PICKUP: (
        "HP",
        "Ready for recipient pickup",
        "HP",
        "Ready for pickup",
        "",
        "",
    ),
    EventKind.CANCELLED: ("CA", "Shipment cancelled by sender", "CA", "Cancelled", "", ""),
}
# What `latestStatusDetail` says for the newest event (code, derivedCode) when it differs.
LATEST_CODES = {EventKind.OUT_FOR_DELIVERY: ("OD", "OD")}


def _address(place: Place | None) -> dict[str, Any]:
    if place is None:
        return {"residential": False}
    return {
        "city": place.city,
        "stateOrProvinceCode": place.state or "",
        "postalCode": place.postal_code,
        "countryCode": place.country_code,
        "residential": False,
        "countryName": "United States" if place.country_code == "US" else place.country_code,
    }


def _scan(event: Event) -> dict[str, Any]:
    code, description, derived, derived_text, exception_code, exception_text = CODES[event.kind]
    scan: dict[str, Any] = {
        "date": event.local_at.isoformat(timespec="seconds"),
        "eventType": code,
        "eventDescription": description,
        "exceptionCode": exception_code,
        "exceptionDescription": exception_text,
        "scanLocation": {"streetLines": [""], **_address(event.place)},
        "locationType": "FEDEX_FACILITY",
        "derivedStatusCode": derived,
        "derivedStatus": derived_text,
    }
    if event.kind is EventKind.DELAYED:
        scan["delayDetail"] = {"type": "WEATHER", "subType": "SNOW", "status": "DELAYED"}
    return scan


def render_track_result(timeline: Timeline, now: datetime) -> dict[str, Any]:
    """One `trackResults[]` entry for a number the emulator knows, at emulated time `now`."""
    events = timeline.visible(now)
    latest = events[0]
    code, description, derived, _derived_text, _ec, _et = CODES[latest.kind]
    code, derived = LATEST_CODES.get(latest.kind, (code, derived))
    latest_detail: dict[str, Any] = {
        "code": code,
        "derivedCode": derived,
        "statusByLocale": description,
        "description": description,
        "scanLocation": _address(latest.place or latest.clock_place),
    }
    if latest.kind is EventKind.DELAYED:
        latest_detail["delayDetail"] = {"type": "WEATHER", "subType": "SNOW", "status": "DELAYED"}
    dates: list[dict[str, str]] = []
    final = latest.kind in (EventKind.DELIVERED, EventKind.RETURNED)
    if final:
        dates.append({"type": "ACTUAL_DELIVERY", "dateTime": latest.local_at.isoformat()})
    elif timeline.planned_delivery and latest.kind is not EventKind.LABEL_CREATED:
        eta = timeline.destination.local(timeline.planned_delivery).replace(hour=20, minute=0)
        dates.append({"type": "ESTIMATED_DELIVERY", "dateTime": eta.isoformat(timespec="seconds")})
    accepted = next((e for e in events if e.kind is EventKind.ACCEPTED), None)
    if accepted:
        dates.append({"type": "ACTUAL_PICKUP", "dateTime": accepted.local_at.isoformat()})
        ship_day = accepted.local_at.replace(hour=0, minute=0, second=0)
        dates.append({"type": "SHIP", "dateTime": ship_day.isoformat()})
    delivery: dict[str, Any] = {"deliveryAttempts": str(_attempts(events))}
    if final:
        delivery["receivedByName"] = latest.signer
        delivery["actualDeliveryAddress"] = _address(latest.place)
    return {
        "trackingNumberInfo": {
            "trackingNumber": timeline.number,
            "trackingNumberUniqueId": f"12028~{timeline.number}~FDEG",
            "carrierCode": "FDXG",
        },
        "shipperInformation": {"contact": {}, "address": _address(timeline.origin)},
        "recipientInformation": {"contact": {}, "address": _address(timeline.destination)},
        "latestStatusDetail": latest_detail,
        "dateAndTimes": dates,
        "scanEvents": [_scan(event) for event in events],
        "deliveryDetails": delivery,
        "serviceDetail": {
            "type": "FEDEX_GROUND",
            "description": "FedEx Ground",
            "shortDescription": "FG",
        },
    }


def _attempts(events: list[Event]) -> int:
    return sum(1 for event in events if event.kind is EventKind.DELIVERY_ATTEMPTED)


def not_found_result(number: str) -> dict[str, Any]:
    return {
        "trackingNumberInfo": {
            "trackingNumber": number,
            "trackingNumberUniqueId": "",
            "carrierCode": "",
        },
        "error": {
            "code": "TRACKING.TRACKINGNUMBER.NOTFOUND",
            "message": "Tracking number cannot be found. Please correct the tracking number and "
            "try again.",
        },
    }


def invalid_result(number: str) -> dict[str, Any]:
    return {
        "trackingNumberInfo": {
            "trackingNumber": number,
            "trackingNumberUniqueId": "",
            "carrierCode": "",
        },
        "error": {
            "code": "TRACKING.TRACKINGNUMBER.INVALID",
            "message": "Invalid tracking number.",
        },
    }


def _error(status: int, code: str, message: str) -> ErrorBody:
    return ErrorBody(
        status, {"transactionId": str(uuid.uuid4()), "errors": [{"code": code, "message": message}]}
    )


def rate_limited() -> ErrorBody:
    return _error(
        429,
        "RATE.LIMIT.EXCEEDED",
        "We have received too many requests in a short duration. Please wait a while to try again.",
    )


def quota_exceeded(resets_at: datetime) -> ErrorBody:
    """FedEx's answer once the daily quota is spent: no Retry-After, the time in the text."""
    moment = resets_at.astimezone(UTC).strftime("%I:%M%p").lstrip("0")
    return _error(
        429, "RATE.LIMIT.EXCEEDED", f"Daily transaction quota exceeded. Retry after {moment} GMT"
    )


def internal_error() -> ErrorBody:
    return _error(
        500,
        "INTERNAL.SERVER.ERROR",
        "We encountered an unexpected error and are "
        "working to resolve the issue. We apologize for any inconvenience.",
    )


def _numbers(raw: bytes) -> list[str] | None:
    try:
        body = json.loads(raw or b"{}")
        infos = body.get("trackingInfo") if isinstance(body, dict) else None
        if not isinstance(infos, list):
            return None
        return [str(info["trackingNumberInfo"]["trackingNumber"]).strip() for info in infos]
    except (ValueError, KeyError, TypeError):
        return None


def routes(state: EmulatorState) -> list[BaseRoute]:
    async def token(request: Request) -> Response:
        fields = await read_fields(request)
        if fields.get("grant_type") != "client_credentials":
            return _error(
                400, "BAD.REQUEST.ERROR", "The given grant_type is not supported."
            ).response()
        if not state.accepts(CARRIER, fields.get("client_id"), fields.get("client_secret")):
            state.stats.auth_failures[CARRIER] += 1
            return _error(
                401,
                "NOT.AUTHORIZED.ERROR",
                "The given client credentials were not valid. Please modify your request and "
                "try again.",
            ).response()
        lifetime = state.config.token_lifetime(CARRIER)
        state.stats.tokens_issued[CARRIER] += 1
        return json_answer(
            {
                "access_token": state.tokens.issue(CARRIER, lifetime),
                "token_type": "bearer",
                "expires_in": int(lifetime),
                "scope": "CXS-TP",
            }
        )

    async def track(request: Request) -> Response:
        check = state.tokens.check(CARRIER, bearer_token(request))
        if check != "ok":
            state.stats.auth_failures[CARRIER] += 1
            message = (
                "Access token expired. Please modify your request and try again."
                if check == "expired"
                else "Bearer token is invalid. Please modify your request and try again."
            )
            return _error(401, "NOT.AUTHORIZED.ERROR", message).response()
        numbers = _numbers(await request.body())
        if not numbers or not all(numbers):
            return _error(
                400, "TRACKING.TRACKINGNUMBER.EMPTY", "Please provide tracking number."
            ).response()
        if len(numbers) > MAX_NUMBERS:
            return _error(
                400,
                "TRACKING.TRACKINGNUMBER.LIMIT.EXCEEDED",
                f"Please provide at most {MAX_NUMBERS} tracking numbers per request.",
            ).response()
        now = state.clock.now()
        entries = []
        for number in numbers:
            state.count_number(CARRIER, number)
            timeline = state.timeline(number)
            if not number.isalnum():
                result = invalid_result(number)
            elif timeline.visible(now):
                result = render_track_result(timeline, now)
            else:
                result = not_found_result(number)
            entries.append({"trackingNumber": number, "trackResults": [result]})
        return json_answer(
            {"transactionId": str(uuid.uuid4()), "output": {"completeTrackResults": entries}}
        )

    return [
        Route("/fedex/oauth/token", token, methods=["POST"]),
        Route("/fedex/track/v1/trackingnumbers", track, methods=["POST"]),
    ]
