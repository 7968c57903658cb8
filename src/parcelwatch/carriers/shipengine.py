"""ShipEngine (ShipStation API) tracking: `API-Key` header, one number per `GET`, any carrier.

Quirks:
- `carrier_code` is ShipEngine's code for the parcel carrier (`dhl_express` for DHL; see
  `catalog.CarrierInfo.shipengine_code`); codes parcelwatch does not list are passed as-is;
- an unknown number is usually a 200 with `status_code` NY (not yet in system) or UN; NY
  without events is reported as not found, UN is kept as `unknown` (ShipEngine's own word);
- `occurred_at` is UTC and `carrier_occurred_at` the carrier's local time without offset:
  their difference is the local offset;
- events carry no normalized status in v1 (the shipment does): an event without a
  `status_code` is `unknown`, with the carrier's `event_code` kept;
- errors use `{request_id, errors[{error_source, error_type, error_code, message}]}`;
  a `validation` 400 is an invalid number;
- the push variant (webhook `track` events) carries the same object in `data`, so
  `parse_tracking` serves both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from parcelwatch.carriers.base import ApiKeyProvider, Credential, ProviderSpec, TrackResult
from parcelwatch.carriers.catalog import CARRIERS, carrier_info, public_tracking_url
from parcelwatch.carriers.errors import BadResponseError
from parcelwatch.carriers.http import (
    ResponseHints,
    api_url,
    send,
    track_results,
)
from parcelwatch.carriers.parsing import (
    as_dict,
    as_list,
    log_skipped_event,
    newest_first,
    parse_timestamp,
    resolve_time,
    text,
    to_utc,
)
from parcelwatch.carriers.statuses import (
    lookup,
    normalize_status,
    resolve_status,
    status_table,
)
from parcelwatch.domain import Location, ShipmentStatus, TrackEvent, TrackInfo
from parcelwatch.domain import ShipmentStatus as S

__all__ = [
    "PROVIDER",
    "SHIPENGINE_DETAIL_CODES",
    "SHIPENGINE_STATUS_CODES",
    "ShipEngineProvider",
    "carrier_from_shipengine_code",
    "parse_event",
    "parse_tracking",
    "shipengine_carrier_code",
]

CODE = "shipengine"
# The header ShipEngine is asked to send on every push when SHIPENGINE_WEBHOOK_SECRET is set.
CHECK_CARRIER, CHECK_NUMBER = "usps", "0000000000"
# v1 webhooks say API_TRACK; the v2 ShipStation API says TRACK_EVENT_V2 (same data shape).
HINTS = ResponseHints(refused="API key refused", auth_hint="check SHIPENGINE_API_KEY")

# ShipEngine `status_code`.
SHIPENGINE_STATUS_CODES = status_table(
    {
        "UN": S.UNKNOWN,  # Unknown (ShipEngine itself says so)
        "NY": S.PENDING,  # Not yet in system
        "AC": S.IN_TRANSIT,  # Accepted
        "IT": S.IN_TRANSIT,  # In transit
        "AT": S.DELIVERY_ATTEMPTED,  # Delivery attempt
        "EX": S.EXCEPTION,  # Exception
        "SP": S.AVAILABLE_FOR_PICKUP,  # Delivered to a collection location (service point)
        "DE": S.DELIVERED,  # Delivered
    }
)


# ShipEngine `status_detail_code`: refines a non-final `status_code` where it says more.
SHIPENGINE_DETAIL_CODES = status_table(
    {
        "SHIPMENT_CREATED": S.INFO_RECEIVED,
        "AWAITING_PICKUP_DROP_OFF": S.INFO_RECEIVED,
        "ELEC_ADVICE_RECD_BY_CARRIER": S.INFO_RECEIVED,
        "OUT_FOR_DELIVERY": S.OUT_FOR_DELIVERY,
        "ATTEMPTED_DELIVERY": S.DELIVERY_ATTEMPTED,
        "ATTEMPTED_DELIVERY_FINAL": S.DELIVERY_ATTEMPTED,
        "CUSTOMER_CARDED": S.DELIVERY_ATTEMPTED,
        "AWAITING_COLLECTION_FROM_PICKUP_POINT": S.AVAILABLE_FOR_PICKUP,
    }
)


def shipengine_carrier_code(carrier: str) -> str:
    """ShipEngine's code for a parcelwatch carrier (`dhl` → `dhl_express`)."""
    info = carrier_info(carrier)
    return info.shipengine_code if info else carrier


def carrier_from_shipengine_code(code: str) -> str:
    """The parcelwatch carrier for a ShipEngine code (`dhl_express` → `dhl`); unknown codes
    are parcelwatch codes as they are."""
    return next((info.code for info in CARRIERS.values() if info.shipengine_code == code), code)


def parse_event(raw: Mapping[str, Any]) -> TrackEvent | None:
    """One `events[]` entry; None when `occurred_at` does not parse."""
    description = text(raw.get("description")) or ""
    utc = parse_timestamp(raw.get("occurred_at"))
    local = parse_timestamp(raw.get("carrier_occurred_at"))
    if utc is not None and local is not None and local.tzinfo is not None:
        delta = local.utcoffset()
        offset = (int(delta.total_seconds() // 60) or None) if delta is not None else None
        when = resolve_time(None, gmt=utc, offset_minutes=offset)
    elif utc is not None:
        when = resolve_time(local, gmt=utc)  # the offset is local minus UTC
    else:
        when = resolve_time(local)
    if when is None:
        log_skipped_event(CODE, raw.get("occurred_at"), description)
        return None
    status_code = text(raw.get("status_code"))
    status = (
        normalize_status(CODE, [(SHIPENGINE_STATUS_CODES, status_code)], text=description)
        if status_code
        else ShipmentStatus.UNKNOWN
    )
    return TrackEvent(
        occurred_at=when[0],
        utc_offset_minutes=when[1],
        status=status,
        description=description,
        carrier_status_code=text(raw.get("event_code")) or text(raw.get("carrier_status_code")),
        carrier_status_text=description,
        location=Location(
            city=text(raw.get("city_locality")),
            state=text(raw.get("state_province")),
            postal_code=text(raw.get("postal_code")),
            country=text(raw.get("country_code")),
        ),
    )


def _status(payload: Mapping[str, Any], events: Sequence[TrackEvent]) -> ShipmentStatus:
    code = text(payload.get("status_code"))
    status = resolve_status(
        CODE,
        [(SHIPENGINE_STATUS_CODES, code)],
        newest_event=events[0] if events else None,
        text=text(payload.get("status_description")),
    )
    refined = lookup(SHIPENGINE_DETAIL_CODES, text(payload.get("status_detail_code")))
    return refined if refined is not None and not status.is_final else status


def parse_tracking(tracking_number: str, payload: object, *, carrier: str) -> TrackInfo:
    """A `GET /v1/tracking` body (or a webhook's `data`) → `TrackInfo`; `carrier` is the
    parcelwatch carrier code the number belongs to."""
    if not isinstance(payload, dict) or "status_code" not in payload:
        raise BadResponseError("tracking body has no status_code", provider=CODE)
    events = newest_first(
        e for e in (parse_event(as_dict(raw)) for raw in as_list(payload.get("events"))) if e
    )
    status = _status(payload, events)
    delivered = status is ShipmentStatus.DELIVERED
    signer = next(
        (
            text(as_dict(raw).get("signer"))
            for raw in as_list(payload.get("events"))
            if text(as_dict(raw).get("signer"))
        ),
        None,
    )
    detail = (
        text(payload.get("exception_description"))
        or text(payload.get("status_detail_description"))
        or text(payload.get("carrier_status_description"))
        or text(payload.get("status_description"))
    )
    return TrackInfo(
        status=status,
        status_detail=detail,
        events=events,
        estimated_delivery=to_utc(payload.get("estimated_delivery_date")),
        delivered_at=to_utc(payload.get("actual_delivery_date")) if delivered else None,
        signed_by=signer if delivered else None,
        tracking_url=text(payload.get("tracking_url"))
        or public_tracking_url(carrier, tracking_number),
        carrier_status_code=text(payload.get("status_code")),
        carrier_status_text=text(payload.get("status_description")),
    )


def result_from_payload(tracking_number: str, payload: object, *, carrier: str) -> TrackResult:
    info = parse_tracking(tracking_number, payload, carrier=carrier)
    if info.status is ShipmentStatus.PENDING and not info.events:
        return TrackResult.not_found(tracking_number, info.status_detail)
    return TrackResult.found(tracking_number, info)


def result_from_response(
    tracking_number: str, response: httpx.Response, *, carrier: str
) -> TrackResult:
    def parse(payload: object) -> list[TrackResult]:
        return [result_from_payload(tracking_number, payload, carrier=carrier)]

    [result] = track_results(response, [tracking_number], provider=CODE, parse=parse, hints=HINTS)
    return result


class ShipEngineProvider(ApiKeyProvider):
    code = CODE
    name = "ShipEngine"
    max_batch = 1

    async def _get(self, carrier: str, tracking_number: str) -> httpx.Response:
        return await send(
            self.client,
            CODE,
            "GET",
            api_url(self.base_url, "/v1/tracking"),
            time_limit=self.timeout,
            params={
                "carrier_code": shipengine_carrier_code(carrier),
                "tracking_number": tracking_number,
            },
            headers={"API-Key": self._api_key, "Accept": "application/json"},
        )

    async def track(self, numbers: Sequence[str], *, carrier: str) -> list[TrackResult]:
        return [
            result_from_response(n, await self._get(carrier, n), carrier=carrier) for n in numbers
        ]

    async def call(self, method: str, path: str, *, json: object | None = None) -> httpx.Response:
        """One authenticated request to the ShipEngine API (the webhooks feature registers
        its push endpoint through this)."""
        return await send(
            self.client,
            CODE,
            method,
            api_url(self.base_url, path),
            time_limit=self.timeout,
            json=json,
            headers={"API-Key": self._api_key, "Accept": "application/json"},
        )

    async def check(self) -> None:
        """One tracking lookup: any answer but 401/403, 429 or 5xx proves the key."""
        response = await self._get(CHECK_CARRIER, CHECK_NUMBER)
        if response.status_code == 200:
            return
        result_from_response(CHECK_NUMBER, response, carrier=CHECK_CARRIER)


PROVIDER = ProviderSpec(
    provider_class=ShipEngineProvider,
    credentials=(Credential("shipengine_api_key", "api_key"),),
    base_url="https://api.shipengine.com",
    max_concurrency=3,
    rate_limit=3.0,  # 200 requests a minute
    status_tables={
        "status codes": SHIPENGINE_STATUS_CODES,
        "detail codes": SHIPENGINE_DETAIL_CODES,
    },
    direct=False,  # tracks any carrier ShipEngine knows
    quota="200/minute",  # 200 requests a minute (API-FACTS.md)
)
