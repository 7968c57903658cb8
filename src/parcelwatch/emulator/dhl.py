"""Emulated DHL Shipment Tracking – Unified API: `GET /track/shipments?trackingNumber=`.

As the real API: the `DHL-API-Key` header is the only auth; answers are newest first;
`statusCode` is one of pre-transit, transit, delivered, failure; timestamps differ by
division (express: local time without offset, parcel-de: with offset and milliseconds);
a delivery has `details.proofOfDelivery.signed`; an unknown number is a 404
`application/problem+json`.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from parcelwatch.emulator.places import Place
from parcelwatch.emulator.storylines import Event, EventKind, Timeline
from parcelwatch.emulator.wire import ErrorBody, json_answer

if TYPE_CHECKING:
    from parcelwatch.emulator.state import EmulatorState

__all__ = ["internal_error", "rate_limited", "render_tracking", "routes"]

CARRIER = "dhl"
PROBLEM = "application/problem+json"

# kind -> (statusCode, status, description)
CODES: dict[EventKind, tuple[str, str, str]] = {
    EventKind.LABEL_CREATED: (
        "pre-transit",
        "SHIPMENT INFORMATION RECEIVED",
        "The instruction data for this shipment have been provided by the sender to DHL "
        "electronically",
    ),
    EventKind.ACCEPTED: ("transit", "PROCESSED AT ORIGIN", "Shipment picked up"),
    EventKind.DEPARTED_FACILITY: ("transit", "DEPARTED FACILITY", "Departed Facility"),
    EventKind.ARRIVED_FACILITY: ("transit", "ARRIVED AT SORT FACILITY", "Arrived at Sort Facility"),
    EventKind.IN_TRANSIT: ("transit", "IN TRANSIT", "Shipment is in transit to destination"),
    EventKind.ARRIVED_DESTINATION: (
        "transit",
        "ARRIVED AT DELIVERY FACILITY",
        "Arrived at Delivery Facility",
    ),
    EventKind.OUT_FOR_DELIVERY: (
        "transit",
        "WITH DELIVERY COURIER",
        "Shipment is out with courier for delivery",
    ),
    EventKind.DELIVERED: ("delivered", "DELIVERED", "Delivered"),
    EventKind.DELIVERY_ATTEMPTED: (
        "failure",
        "DELIVERY ATTEMPTED",
        "Delivery attempted; recipient not home",
    ),
    EventKind.DELAYED: ("transit", "DELAYED", "Delivery delayed due to weather conditions"),
    EventKind.HELD: ("failure", "ON HOLD", "Shipment on hold: address information needed"),
    EventKind.RETURNING: ("transit", "RETURNING", "The shipment is being returned to the sender"),
    EventKind.RETURNED: ("delivered", "RETURNED", "The shipment has been returned to the sender"),
    EventKind.AVAILABLE_FOR_PICKUP: (
        "transit",
        "READY FOR PICKUP",
        "The shipment is ready for pick-up at the DHL Service Point",
    ),
    EventKind.CANCELLED: ("failure", "CANCELLED", "The shipment has been cancelled by the sender"),
}
SERVICES = ("express", "parcel-de")


def _address(place: Place) -> dict[str, Any]:
    return {
        "address": {
            "countryCode": place.country_code,
            "postalCode": place.postal_code,
            "addressLocality": place.city,
        }
    }


def _timestamp(event: Event, service: str) -> str:
    local = event.local_at
    if service == "express":
        return local.replace(tzinfo=None).isoformat(timespec="seconds")
    return local.isoformat(timespec="milliseconds")


def _event(event: Event, service: str) -> dict[str, Any]:
    status_code, status, description = CODES[event.kind]
    body: dict[str, Any] = {"timestamp": _timestamp(event, service)}
    if event.place:
        body["location"] = _address(event.place)
    body.update({"statusCode": status_code, "status": status, "description": description})
    if event.kind is EventKind.DELIVERY_ATTEMPTED:
        body["remark"] = "The recipient was not at home."
        body["nextSteps"] = "A second delivery attempt will be made on the next working day."
    return body


def render_tracking(timeline: Timeline, now: datetime) -> dict[str, Any]:
    """The `GET /track/shipments?trackingNumber=` body at emulated time `now`."""
    service = SERVICES[timeline.variant("dhl-service", len(SERVICES))]
    events = timeline.visible(now)
    latest = events[0]
    shipment: dict[str, Any] = {
        "id": timeline.number,
        "service": service,
        "origin": _address(timeline.origin),
        "destination": _address(timeline.destination),
        "status": _event(latest, service),
    }
    final = latest.kind in (EventKind.DELIVERED, EventKind.RETURNED)
    if timeline.planned_delivery and not final and latest.kind is not EventKind.LABEL_CREATED:
        day = timeline.destination.local(timeline.planned_delivery)
        start = day.replace(hour=8, minute=0, second=0, microsecond=0)
        shipment["estimatedTimeOfDelivery"] = day.replace(hour=18, minute=0, second=0).isoformat(
            timespec="seconds"
        )
        shipment["estimatedDeliveryTimeFrame"] = {
            "estimatedFrom": start.isoformat(timespec="seconds"),
            "estimatedThrough": day.replace(hour=18, minute=0, second=0).isoformat(
                timespec="seconds"
            ),
        }
        shipment["estimatedTimeOfDeliveryRemark"] = "By End of Day"
    shipment["serviceUrl"] = (
        f"https://www.dhl.com/global-en/home/tracking.html?tracking-id={timeline.number}"
    )
    details: dict[str, Any] = {
        "carrier": {
            "@type": "Organization",
            "organizationName": "EXPRESS" if service == "express" else "DHL Paket",
        },
        "product": {"productName": "EXPRESS WORLDWIDE" if service == "express" else "DHL PAKET"},
        "totalNumberOfPieces": 1,
        "pieceIds": [f"JD01460000{timeline.number[-10:]}"],
    }
    if final and latest.signer:
        given, _, family = latest.signer.partition(" ")
        details["proofOfDelivery"] = {
            "timestamp": _timestamp(latest, service),
            "documentUrl": "https://webpod.dhl.com/webPOD/DHLePODRequest",
            "signed": {
                "@type": "Person",
                "familyName": family,
                "givenName": given,
                "name": latest.signer,
            },
        }
    shipment["details"] = details
    shipment["events"] = [_event(event, service) for event in events]
    return {"shipments": [shipment]}


def _problem(status: int, title: str, detail: str, **extra: str) -> ErrorBody:
    return ErrorBody(status, {"title": title, "status": status, "detail": detail, **extra}, PROBLEM)


def not_found(number: str) -> ErrorBody:
    return _problem(
        404,
        "No result found",
        "No shipment with given tracking number found.",
        instance=f"/shipment/{number}",
    )


def rate_limited() -> ErrorBody:
    return _problem(
        429,
        "Too Many Requests",
        "Too many requests within defined time period, please try again later.",
    )


def internal_error() -> ErrorBody:
    return _problem(500, "Internal Server Error", "An unexpected error occurred.")


def routes(state: EmulatorState) -> list[BaseRoute]:
    async def track(request: Request) -> Response:
        key = request.headers.get("dhl-api-key")
        if not state.accepts(CARRIER, key):
            state.stats.auth_failures[CARRIER] += 1
            return _problem(401, "Unauthorized", "Unauthorized for given resource.").response()
        number = (request.query_params.get("trackingNumber") or "").strip()
        if not number:
            return _problem(400, "Bad Request", "trackingNumber is required.").response()
        state.count_number(CARRIER, number)
        timeline, now = state.timeline(number, region="eu"), state.clock.now()
        if not timeline.visible(now):
            return not_found(number).response()
        return json_answer(render_tracking(timeline, now))

    return [Route("/dhl/track/shipments", track, methods=["GET"])]
