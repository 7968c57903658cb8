"""DHL Shipment Tracking – Unified API: `DHL-API-Key` header, one number per `GET`.

Quirks:
- auth is the app's consumer key alone, in the `DHL-API-Key` header (the secret is unused);
- not found is a **404** `application/problem+json` ("No result found"); an invalid number a
  400 problem; 429 when the daily (250 by default) or per-second quota is spent;
- one number may match shipments of several DHL divisions: we take the shipment whose `id`
  is the number (else the first) and ignore `possibleAdditionalShipmentsUrl`;
- event `timestamp`s come with or without an offset depending on the division (read under
  the shared time policy); `statusCode` is one of pre-transit, transit, delivered,
  failure, unknown;
- proof of delivery (`details.proofOfDelivery`) gives the time and the signer's name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from parcelwatch.carriers.base import ApiKeyProvider, Credential, ProviderSpec, TrackResult
from parcelwatch.carriers.catalog import public_tracking_url
from parcelwatch.carriers.errors import BadResponseError
from parcelwatch.carriers.http import ResponseHints, api_url, send, track_results
from parcelwatch.carriers.parsing import (
    as_dict,
    as_list,
    delivered_time,
    log_skipped_event,
    newest_first,
    parse_timestamp,
    resolve_time,
    text,
    to_utc,
)
from parcelwatch.carriers.statuses import normalize_status, resolve_status, status_table
from parcelwatch.domain import Location, ShipmentStatus, TrackEvent, TrackInfo
from parcelwatch.domain import ShipmentStatus as S

__all__ = [
    "DHL_STATUS_CODES",
    "PROVIDER",
    "DhlProvider",
    "parse_event",
    "parse_shipment",
    "parse_shipments_response",
]

CODE = "dhl"
CHECK_NUMBER = "0000000000"  # any number: a 404 proves the key was accepted
HINTS = ResponseHints(refused="API key refused", auth_hint="check DHL_API_KEY")

# DHL Shipment Tracking – Unified `statusCode`.
DHL_STATUS_CODES = status_table(
    {
        "pre-transit": S.INFO_RECEIVED,
        "transit": S.IN_TRANSIT,
        "delivered": S.DELIVERED,
        "failure": S.EXCEPTION,
        "unknown": S.UNKNOWN,  # DHL itself says it does not know
    }
)


def _location(raw: Mapping[str, Any]) -> Location:
    address = as_dict(as_dict(raw.get("location")).get("address"))
    return Location(
        city=text(address.get("addressLocality")),
        postal_code=text(address.get("postalCode")),
        country=text(address.get("countryCode")),
    )


def parse_event(raw: Mapping[str, Any]) -> TrackEvent | None:
    """One `events[]` entry; None when its timestamp does not parse."""
    status_text = text(raw.get("status"))
    description = text(raw.get("description")) or status_text or ""
    when = resolve_time(parse_timestamp(raw.get("timestamp")))
    if when is None:
        log_skipped_event(CODE, raw.get("timestamp"), description)
        return None
    code = text(raw.get("statusCode"))
    return TrackEvent(
        occurred_at=when[0],
        utc_offset_minutes=when[1],
        status=normalize_status(CODE, [(DHL_STATUS_CODES, code)], text=status_text),
        description=description,
        carrier_status_code=code,
        carrier_status_text=status_text,
        location=_location(raw),
    )


def _signer(proof: Mapping[str, Any]) -> str | None:
    signed = as_dict(proof.get("signed"))
    full = " ".join(p for p in (text(signed.get("givenName")), text(signed.get("familyName"))) if p)
    return text(signed.get("name")) or full or None


def parse_shipment(tracking_number: str, shipment: Mapping[str, Any]) -> TrackInfo:
    """One `shipments[]` entry → `TrackInfo`."""
    events = newest_first(
        e for e in (parse_event(as_dict(raw)) for raw in as_list(shipment.get("events"))) if e
    )
    current = as_dict(shipment.get("status"))
    code, status_text = text(current.get("statusCode")), text(current.get("status"))
    if current:
        status = resolve_status(
            CODE,
            [(DHL_STATUS_CODES, code)],
            newest_event=events[0] if events else None,
            text=status_text,
        )
    else:
        status = events[0].status if events else ShipmentStatus.PENDING
    frame = as_dict(shipment.get("estimatedDeliveryTimeFrame"))
    proof = as_dict(as_dict(shipment.get("details")).get("proofOfDelivery"))
    delivered = status is ShipmentStatus.DELIVERED
    return TrackInfo(
        status=status,
        status_detail=text(current.get("description")) or status_text,
        events=events,
        estimated_delivery=to_utc(shipment.get("estimatedTimeOfDelivery"))
        or to_utc(frame.get("estimatedThrough")),
        delivered_at=(to_utc(proof.get("timestamp")) or delivered_time(events))
        if delivered
        else None,
        signed_by=_signer(proof) if delivered else None,
        tracking_url=public_tracking_url(CODE, tracking_number),
        carrier_status_code=code,
        carrier_status_text=status_text,
    )


def parse_shipments_response(tracking_number: str, payload: object) -> TrackResult:
    """A `GET /track/shipments` 200 body → found (or not found when it lists nothing)."""
    body = as_dict(payload)
    if not isinstance(body.get("shipments"), list):
        raise BadResponseError("response has no shipments list", provider=CODE)
    shipments = [as_dict(s) for s in body["shipments"]]
    if not shipments:
        return TrackResult.not_found(tracking_number)
    shipment = next((s for s in shipments if text(s.get("id")) == tracking_number), shipments[0])
    return TrackResult.found(tracking_number, parse_shipment(tracking_number, shipment))


def result_from_response(tracking_number: str, response: httpx.Response) -> TrackResult:
    def parse(payload: object) -> list[TrackResult]:
        return [parse_shipments_response(tracking_number, payload)]

    [result] = track_results(response, [tracking_number], provider=CODE, parse=parse, hints=HINTS)
    return result


class DhlProvider(ApiKeyProvider):
    code = CODE
    name = "DHL"
    max_batch = 1

    async def _get(self, tracking_number: str) -> httpx.Response:
        return await send(
            self.client,
            CODE,
            "GET",
            api_url(self.base_url, "/track/shipments"),
            time_limit=self.timeout,
            params={"trackingNumber": tracking_number},
            headers={"DHL-API-Key": self._api_key, "Accept": "application/json"},
        )

    async def track(self, numbers: Sequence[str], *, carrier: str = CODE) -> list[TrackResult]:
        return [result_from_response(n, await self._get(n)) for n in numbers]

    async def check(self) -> None:
        """The cheapest authenticated call DHL has: a lookup (any answer but 401/403, 429
        or 5xx proves the key). It spends one call of the daily quota."""
        result_from_response(CHECK_NUMBER, await self._get(CHECK_NUMBER))


PROVIDER = ProviderSpec(
    provider_class=DhlProvider,
    credentials=(Credential("dhl_api_key", "api_key"),),
    base_url="https://api-eu.dhl.com",
    max_concurrency=1,
    rate_limit=1.0,
    status_tables={"status codes": DHL_STATUS_CODES},
    quota="250/day@00:00Z",  # the initial plan: 250 calls a day, reset at 00:00 GMT (API-FACTS.md)
)
