"""USPS Tracking API v3: OAuth2 client credentials, one number per `GET` (`expand=DETAIL`).

Quirks:
- the app must be granted the `tracking` scope (not in the default product); without it the
  token is issued but every tracking call answers 401, so a 401 after a fresh token names
  the scope as the likely cause;
- `eventTimestamp` is local time without an offset; `GMTTimestamp` (UTC) and `GMTOffset`
  come beside it and are preferred. USPS's own example labels a local time with `Z`, which
  is taken at its word when no GMT fields exist;
- booleans arrive as strings and `mailClass`/`services` contain HTML (both unused here);
- v3 takes one number per request (the Web Tools batch of 10 was retired on 2026-01-25);
- not found is a 404 with `error.errors[].code` 150006, an invalid number a 400.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from parcelwatch.carriers.base import Credential, ProviderSpec, TrackResult
from parcelwatch.carriers.catalog import public_tracking_url
from parcelwatch.carriers.errors import AuthError, BadResponseError
from parcelwatch.carriers.http import ResponseHints, track_results
from parcelwatch.carriers.oauth import OAuthProvider
from parcelwatch.carriers.parsing import (
    as_dict,
    as_list,
    delivered_time,
    log_skipped_event,
    newest_first,
    parse_offset,
    parse_timestamp,
    resolve_time,
    settle_return,
    text,
    to_utc,
)
from parcelwatch.carriers.statuses import lookup, normalize_status, status_table
from parcelwatch.domain import Location, ShipmentStatus, TrackEvent, TrackInfo
from parcelwatch.domain import ShipmentStatus as S

__all__ = [
    "PROVIDER",
    "USPS_EVENT_CODES",
    "USPS_STATUS_CATEGORIES",
    "UspsProvider",
    "parse_event",
    "parse_tracking",
]

CODE = "usps"
SCOPE_HINT = (
    "the USPS app may lack the `tracking` scope (not in the default product; request it "
    "through USPS API support)"
)
ETA_FIELDS = (
    "expectedDeliveryTimeStamp",
    "expectedDeliveryDate",
    "predictedDeliveryDate",
    "guaranteedDeliveryDate",
)
HINTS = ResponseHints(auth_hint=SCOPE_HINT)

# USPS Tracking v3 `statusCategory` (the category usps.com shows above the scan list).
USPS_STATUS_CATEGORIES = status_table(
    {
        "Pre-Shipment": S.INFO_RECEIVED,
        "Accepted": S.IN_TRANSIT,
        "In Transit": S.IN_TRANSIT,
        "In-Transit": S.IN_TRANSIT,
        "Out for Delivery": S.OUT_FOR_DELIVERY,
        "Delivered": S.DELIVERED,
        "Available for Pickup": S.AVAILABLE_FOR_PICKUP,
        "Delivery Attempt": S.DELIVERY_ATTEMPTED,
        "Delivery Attempt: Action Needed": S.DELIVERY_ATTEMPTED,
        "Alert": S.EXCEPTION,
    }
)


# USPS Product Tracking & Reporting event codes (`trackingEvents[].eventCode`).
USPS_EVENT_CODES = status_table(
    {
        "01": S.DELIVERED,  # Delivered
        "02": S.DELIVERY_ATTEMPTED,  # Notice Left
        "03": S.IN_TRANSIT,  # Accepted / USPS in possession of item
        "04": S.EXCEPTION,  # Refused
        "05": S.EXCEPTION,  # Undeliverable as Addressed
        "06": S.IN_TRANSIT,  # Forwarded
        "07": S.IN_TRANSIT,  # Arrival at Unit / Arrived at Post Office
        "08": S.IN_TRANSIT,  # Missent (re-routed by USPS)
        "09": S.RETURNING_TO_SENDER,  # Return to Sender
        "10": S.IN_TRANSIT,  # Processed / Arrived at Regional Origin Facility
        "11": S.EXCEPTION,  # Dead Letter
        "14": S.AVAILABLE_FOR_PICKUP,  # Arrival at Pickup Point
        "15": S.IN_TRANSIT,  # Mis-shipped
        "16": S.AVAILABLE_FOR_PICKUP,  # Available for Pickup
        "17": S.DELIVERED,  # Picked Up by Agent
        "21": S.RETURNING_TO_SENDER,  # No Such Number
        "22": S.RETURNING_TO_SENDER,  # Insufficient Address
        "23": S.RETURNING_TO_SENDER,  # Moved, Left No Address
        "24": S.RETURNING_TO_SENDER,  # Forward Expired
        "25": S.RETURNING_TO_SENDER,  # Addressee Unknown
        "26": S.RETURNING_TO_SENDER,  # Vacant
        "27": S.RETURNING_TO_SENDER,  # Unclaimed
        "28": S.RETURNING_TO_SENDER,  # Deceased
        "29": S.RETURNING_TO_SENDER,  # Return to Sender, other
        "31": S.RETURNING_TO_SENDER,  # Return to Sender, not picked up
        "43": S.DELIVERED,  # Picked Up (at the Post Office)
        "44": S.RETURNING_TO_SENDER,  # Customer Recall
        "51": S.DELIVERY_ATTEMPTED,  # Business Closed
        "52": S.DELIVERY_ATTEMPTED,  # Notice Left (subset)
        "53": S.DELIVERY_ATTEMPTED,  # Receptacle Blocked
        "54": S.DELIVERY_ATTEMPTED,  # Notice Left (subset)
        "55": S.DELIVERY_ATTEMPTED,  # Receptacle Full / Item Oversized
        "56": S.DELIVERY_ATTEMPTED,  # No Secure Location Available
        "57": S.DELIVERY_ATTEMPTED,  # No Authorized Recipient Available
        "A1": S.IN_TRANSIT,  # Arrived at USPS Regional Facility
        "T1": S.IN_TRANSIT,  # Departed USPS Regional Facility
        "TL": S.IN_TRANSIT,  # In Transit to Next Facility
        "SF": S.IN_TRANSIT,  # Departed Post Office
        "OA": S.IN_TRANSIT,  # Origin Acceptance
        "OF": S.OUT_FOR_DELIVERY,  # Out for Delivery
        "GX": S.INFO_RECEIVED,  # Shipping Label Created, USPS Awaiting Item
        "MA": S.INFO_RECEIVED,  # Pre-Shipment Info Sent to USPS
        "80": S.IN_TRANSIT,  # Picked Up by Shipping Partner
        "81": S.IN_TRANSIT,  # Arrived at Shipping Partner Facility
        "82": S.IN_TRANSIT,  # Departed Shipping Partner Facility
    }
)


def parse_event(raw: dict[str, Any]) -> TrackEvent | None:
    """One `trackingEvents[]` entry; None when it has no usable time."""
    description = text(raw.get("eventType")) or ""
    when = resolve_time(
        parse_timestamp(raw.get("eventTimestamp")),
        gmt=parse_timestamp(raw.get("GMTTimestamp")),
        offset_minutes=parse_offset(raw.get("GMTOffset")),
    )
    if when is None:
        log_skipped_event(CODE, raw.get("eventTimestamp"), description)
        return None
    code = text(raw.get("eventCode"))
    return TrackEvent(
        occurred_at=when[0],
        utc_offset_minutes=when[1],
        status=normalize_status(CODE, [(USPS_EVENT_CODES, code)], text=description),
        description=description,
        carrier_status_code=code,
        carrier_status_text=description,
        location=Location(
            city=text(raw.get("eventCity")),
            state=text(raw.get("eventState")),
            postal_code=text(raw.get("eventZIP")),
            country=text(raw.get("eventCountry")),
        ),
    )


def parse_tracking(tracking_number: str, payload: object) -> TrackInfo:
    """A `GET /tracking/v3/tracking/{n}?expand=DETAIL` body → `TrackInfo`."""
    if not isinstance(payload, dict) or "error" in payload:
        raise BadResponseError("tracking body is not a tracking object", provider=CODE)
    raw_events = [as_dict(item) for item in as_list(payload.get("trackingEvents"))]
    events = newest_first(e for e in map(parse_event, raw_events) if e is not None)
    category = text(payload.get("statusCategory"))
    latest_code = events[0].carrier_status_code if events else None
    specific = lookup(USPS_EVENT_CODES, latest_code)
    status = settle_return(
        specific
        or normalize_status(
            CODE, [(USPS_STATUS_CATEGORIES, category)], text=text(payload.get("status"))
        ),
        events,
    )
    delivered = status is ShipmentStatus.DELIVERED
    return TrackInfo(
        status=status,
        status_detail=text(payload.get("status")) or text(payload.get("statusSummary")),
        events=events,
        estimated_delivery=next(
            (eta for eta in (to_utc(payload.get(f)) for f in ETA_FIELDS) if eta), None
        ),
        delivered_at=delivered_time(events) if delivered else None,
        signed_by=_signer(raw_events) if delivered else None,
        tracking_url=public_tracking_url(CODE, tracking_number),
        carrier_status_code=category,
        carrier_status_text=text(payload.get("status")),
    )


def _signer(raw_events: Sequence[dict[str, Any]]) -> str | None:
    """The `name` on the delivery scan (USPS puts the signer there)."""
    for raw in raw_events:
        if lookup(USPS_EVENT_CODES, text(raw.get("eventCode"))) is ShipmentStatus.DELIVERED:
            return text(raw.get("name"))
    return None


def result_from_response(tracking_number: str, response: httpx.Response) -> TrackResult:
    """Decide one tracking call's outcome from its status code and body."""

    def parse(payload: object) -> list[TrackResult]:
        return [TrackResult.found(tracking_number, parse_tracking(tracking_number, payload))]

    [result] = track_results(response, [tracking_number], provider=CODE, parse=parse, hints=HINTS)
    return result


class UspsProvider(OAuthProvider):
    code = CODE
    name = "USPS"
    max_batch = 1
    token_path = "/oauth2/v3/token"
    credential_names = "USPS_CLIENT_ID / USPS_CLIENT_SECRET"

    def token_request(self, client_id: str, client_secret: str) -> dict[str, Any]:
        return {
            "data": {
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": client_secret,
            }
        }

    async def track(self, numbers: Sequence[str], *, carrier: str = CODE) -> list[TrackResult]:
        results = []
        for number in numbers:
            path = f"/tracking/v3/tracking/{quote(number, safe='')}"
            response = await self.authorized("GET", path, params={"expand": "DETAIL"})
            results.append(result_from_response(number, response))
        return results

    async def check(self) -> None:
        """A token fetch; a token whose scopes are listed but lack `tracking` fails too."""
        token = await self.tokens.get()
        if token.scope is not None and "tracking" not in token.scope.split():
            raise AuthError(f"token issued without the tracking scope; {SCOPE_HINT}", provider=CODE)


PROVIDER = ProviderSpec(
    provider_class=UspsProvider,
    credentials=(
        Credential("usps_client_id", "client_id", secret=False),
        Credential("usps_client_secret", "client_secret"),
    ),
    base_url="https://apis.usps.com",
    max_concurrency=2,
    rate_limit=1.0 / 60,  # about 60 calls an hour by default
    status_tables={
        "status categories": USPS_STATUS_CATEGORIES,
        "event codes": USPS_EVENT_CODES,
    },
    quota="60/hour",  # about 60 calls an hour per app (API-FACTS.md)
)
