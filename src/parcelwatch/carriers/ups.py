"""UPS Track API v1: OAuth2 client credentials with HTTP Basic, one number per `GET`.

Quirks:
- the token endpoint takes `client_id:client_secret` as HTTP Basic and answers
  `expires_in` as a **string** ("14399");
- every call needs a `transId` unique per request (a fresh one on the retry after a 401
  too) and a `transactionSrc` naming the caller;
- an unknown number is **HTTP 200** with `shipment[].warnings[{code: "TW0001"}]` (the docs
  say 404, which is handled the same way); an invalid one is a 400 with `TV1002`;
- `activity[].date`/`time` are local `YYYYMMDD`/`HHMMSS` without offset; `gmtDate`,
  `gmtTime` and `gmtOffset` are used when present;
- status comes as `type` (D, I, X, P, M, MV, RS, ...) plus a three-digit `statusCode`;
  the type decides, the code refines (e.g. 021 on vehicle for delivery). Some responses'
  `currentStatus` carries only `code` (a two-letter activity code such as `FS`) and
  `description`: the newest activity's type then decides, then the
  `simplifiedTextDescription` (`statuses.resolve_status`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from parcelwatch.carriers.base import Credential, ProviderSpec, TrackResult
from parcelwatch.carriers.catalog import public_tracking_url
from parcelwatch.carriers.errors import BadResponseError
from parcelwatch.carriers.http import ResponseHints, track_results
from parcelwatch.carriers.oauth import OAuthProvider
from parcelwatch.carriers.parsing import (
    as_dict,
    as_list,
    combine_local,
    delivered_time,
    log_skipped_event,
    newest_first,
    parse_offset,
    resolve_time,
    settle_return,
    text,
)
from parcelwatch.carriers.statuses import (
    StatusTable,
    normalize_status,
    resolve_status,
    status_table,
)
from parcelwatch.domain import Location, ShipmentStatus, TrackEvent, TrackInfo
from parcelwatch.domain import ShipmentStatus as S

__all__ = [
    "PROVIDER",
    "UPS_SIMPLIFIED_TEXTS",
    "UPS_STATUS_CODES",
    "UPS_STATUS_TYPES",
    "UpsProvider",
    "parse_activity",
    "parse_package",
    "parse_track_response",
]

CODE = "ups"
TRANSACTION_SOURCE = "parcelwatch"
TRACK_PARAMS = {
    "locale": "en_US",
    "returnSignature": "false",
    "returnMilestones": "false",
    "returnPOD": "false",
}
HINTS = ResponseHints(invalid="invalid inquiry number")

# UPS Track v1 `status.type` (currentStatus and activity): the primary table.
UPS_STATUS_TYPES = status_table(
    {
        "M": S.INFO_RECEIVED,  # Manifest pickup: label created, UPS has not the package
        "MV": S.CANCELLED,  # Manifest / billing information voided
        "P": S.IN_TRANSIT,  # Pickup
        "I": S.IN_TRANSIT,  # In transit
        "O": S.OUT_FOR_DELIVERY,  # Out for delivery
        "X": S.EXCEPTION,  # Exception
        "RS": S.RETURNED,  # Returned to shipper
        "D": S.DELIVERED,  # Delivered
        "DO": S.DELIVERED,  # Delivered origin CFS (freight)
        "DD": S.DELIVERED,  # Delivered destination CFS (freight)
        "W": S.IN_TRANSIT,  # Warehousing
        "NA": S.UNKNOWN,  # Not available (UPS itself says it does not know)
    }
)


# UPS three-digit `status.statusCode`, only the codes that say more than the type (the
# ones equal to a type, such as 003 = M or 011 = D, are left to the type table).
UPS_STATUS_CODES = status_table(
    {
        "017": S.AVAILABLE_FOR_PICKUP,  # Held for customer pickup
        "021": S.OUT_FOR_DELIVERY,  # On vehicle for delivery
        "022": S.DELIVERY_ATTEMPTED,  # First attempt made
        "023": S.DELIVERY_ATTEMPTED,  # Second attempt made
        "024": S.DELIVERY_ATTEMPTED,  # Final attempt made
        "033": S.RETURNING_TO_SENDER,  # Return to sender requested
        "034": S.RETURNED,  # Returned to sender
        "035": S.RETURNING_TO_SENDER,  # Returning to sender
        "036": S.RETURNING_TO_SENDER,  # Returning to sender: in transit
        "037": S.RETURNING_TO_SENDER,  # Returning to sender: left UPS facility
        "040": S.AVAILABLE_FOR_PICKUP,  # Delivered to UPS Access Point, awaiting pickup
    }
)


# UPS `simplifiedTextDescription`: the short milestone label UPS shows on its tracking
# page, the last resort before `unknown` (after the codes and the newest activity).
UPS_SIMPLIFIED_TEXTS = status_table(
    {
        "Label Created": S.INFO_RECEIVED,
        "Shipment Ready for UPS": S.INFO_RECEIVED,
        "Picked Up": S.IN_TRANSIT,
        "Shipped": S.IN_TRANSIT,
        "On the Way": S.IN_TRANSIT,
        "In Transit": S.IN_TRANSIT,
        "Out for Delivery": S.OUT_FOR_DELIVERY,
        "Out for Delivery Today": S.OUT_FOR_DELIVERY,
        "Delivery Attempted": S.DELIVERY_ATTEMPTED,
        "Ready for Pickup": S.AVAILABLE_FOR_PICKUP,
        "Delivered": S.DELIVERED,
        "Exception": S.EXCEPTION,
        "Delayed": S.EXCEPTION,
        "Returning to Sender": S.RETURNING_TO_SENDER,
        "Returned to Sender": S.RETURNED,
        "Voided": S.CANCELLED,
    }
)


def _status_codes(raw_status: Mapping[str, Any]) -> list[tuple[StatusTable, str | None]]:
    return [
        (UPS_STATUS_CODES, text(raw_status.get("statusCode"))),
        (UPS_STATUS_TYPES, text(raw_status.get("type"))),
    ]


def _status(raw_status: Mapping[str, Any]) -> ShipmentStatus:
    return normalize_status(
        CODE, _status_codes(raw_status), text=text(raw_status.get("description"))
    )


def parse_activity(raw: dict[str, Any]) -> TrackEvent | None:
    """One `activity[]` entry; None when it has no usable date."""
    raw_status = as_dict(raw.get("status"))
    description = text(raw_status.get("description")) or ""
    when = resolve_time(
        combine_local(raw.get("date"), raw.get("time")),
        gmt=combine_local(raw.get("gmtDate"), raw.get("gmtTime")),
        offset_minutes=parse_offset(raw.get("gmtOffset")),
    )
    if when is None:
        log_skipped_event(CODE, f"{raw.get('date')} {raw.get('time')}", description)
        return None
    address = as_dict(as_dict(raw.get("location")).get("address"))
    return TrackEvent(
        occurred_at=when[0],
        utc_offset_minutes=when[1],
        status=_status(raw_status),
        description=description,
        carrier_status_code=text(raw_status.get("code")) or text(raw_status.get("type")),
        carrier_status_text=description,
        location=Location(
            city=text(address.get("city")),
            state=text(address.get("stateProvince")),
            postal_code=text(address.get("postalCode")),
            country=text(address.get("countryCode")) or text(address.get("country")),
        ),
    )


def _delivery_date(package: Mapping[str, Any], kinds: Sequence[str]) -> Any:
    """The first `deliveryDate[]` of the given types, in the order of `kinds`."""
    dates = {
        text(as_dict(item).get("type")): as_dict(item).get("date")
        for item in as_list(package.get("deliveryDate"))
    }
    return next((dates[kind] for kind in kinds if kind in dates), None)


def parse_package(tracking_number: str, package: Mapping[str, Any]) -> TrackInfo:
    """One `shipment[].package[]` → `TrackInfo`."""
    events = newest_first(
        e for e in (parse_activity(as_dict(a)) for a in as_list(package.get("activity"))) if e
    )
    current = as_dict(package.get("currentStatus"))
    if current:
        status = resolve_status(
            CODE,
            _status_codes(current),
            newest_event=events[0] if events else None,
            simplified=(UPS_SIMPLIFIED_TEXTS, text(current.get("simplifiedTextDescription"))),
            text=text(current.get("description")),
        )
        detail = text(current.get("description")) or text(current.get("simplifiedTextDescription"))
        raw_code = text(current.get("code")) or text(current.get("type"))
    elif events:
        status, detail = events[0].status, events[0].description
        raw_code = events[0].carrier_status_code
    else:
        status, detail, raw_code = ShipmentStatus.PENDING, None, None
    status = settle_return(status, events)
    delivery_time = as_dict(package.get("deliveryTime"))
    eta_time = None if text(delivery_time.get("type")) == "DEL" else delivery_time.get("endTime")
    eta = resolve_time(combine_local(_delivery_date(package, ("RDD", "SDD")), eta_time))
    delivered = status is ShipmentStatus.DELIVERED
    delivered_at = None
    if delivered:
        delivered_at = delivered_time(events)
        if delivered_at is None:
            when = resolve_time(
                combine_local(_delivery_date(package, ("DEL",)), delivery_time.get("endTime"))
            )
            delivered_at = when[0] if when else None
    received_by = text(as_dict(package.get("deliveryInformation")).get("receivedBy"))
    return TrackInfo(
        status=status,
        status_detail=detail,
        events=events,
        estimated_delivery=eta[0] if eta else None,
        delivered_at=delivered_at,
        signed_by=received_by if delivered else None,
        tracking_url=public_tracking_url(CODE, tracking_number),
        carrier_status_code=raw_code,
        carrier_status_text=detail,
    )


def parse_track_response(tracking_number: str, payload: object) -> TrackResult:
    """A `GET /api/track/v1/details/{n}` body (HTTP 200) → found or not found."""
    shipments = as_list(as_dict(as_dict(payload).get("trackResponse")).get("shipment"))
    if not shipments:
        raise BadResponseError("response has no trackResponse.shipment", provider=CODE)
    shipment = as_dict(shipments[0])
    packages = [as_dict(p) for p in as_list(shipment.get("package"))]
    if not packages:
        warnings = [as_dict(w) for w in as_list(shipment.get("warnings"))]
        message = "; ".join(filter(None, (text(w.get("message")) for w in warnings)))
        return TrackResult.not_found(tracking_number, message or None)
    package = next(
        (p for p in packages if text(p.get("trackingNumber")) == tracking_number), packages[0]
    )
    return TrackResult.found(tracking_number, parse_package(tracking_number, package))


def result_from_response(tracking_number: str, response: httpx.Response) -> TrackResult:
    def parse(payload: object) -> list[TrackResult]:
        return [parse_track_response(tracking_number, payload)]

    [result] = track_results(response, [tracking_number], provider=CODE, parse=parse, hints=HINTS)
    return result


class UpsProvider(OAuthProvider):
    code = CODE
    name = "UPS"
    max_batch = 1
    token_path = "/security/v1/oauth/token"
    credential_names = "UPS_CLIENT_ID / UPS_CLIENT_SECRET"

    def token_request(self, client_id: str, client_secret: str) -> dict[str, Any]:
        return {
            "data": {"grant_type": "client_credentials"},
            "auth": httpx.BasicAuth(client_id, client_secret),
        }

    def request_headers(self) -> Mapping[str, str]:
        return {"transId": uuid.uuid4().hex, "transactionSrc": TRANSACTION_SOURCE}

    async def track(self, numbers: Sequence[str], *, carrier: str = CODE) -> list[TrackResult]:
        results = []
        for number in numbers:
            path = f"/api/track/v1/details/{quote(number, safe='')}"
            response = await self.authorized("GET", path, params=TRACK_PARAMS)
            results.append(result_from_response(number, response))
        return results


PROVIDER = ProviderSpec(
    provider_class=UpsProvider,
    credentials=(
        Credential("ups_client_id", "client_id", secret=False),
        Credential("ups_client_secret", "client_secret"),
    ),
    base_url="https://onlinetools.ups.com",
    max_concurrency=4,
    rate_limit=5.0,
    status_tables={
        "status types": UPS_STATUS_TYPES,
        "status codes": UPS_STATUS_CODES,
        "simplified texts": UPS_SIMPLIFIED_TEXTS,
    },
)
