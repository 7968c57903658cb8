"""FedEx Track API v1: OAuth2 client credentials, up to 30 numbers per `POST`.

Quirks:
- per-number outcomes come inside an HTTP 200: `completeTrackResults[].trackResults[].error`
  with `TRACKING.TRACKINGNUMBER.NOTFOUND` (not found) or `.INVALID` (invalid);
- FedEx reuses numbers, so one number may have **several `trackResults`**. We keep the
  newest shipment: the one shipped last (`SHIP`, `ACTUAL_PICKUP` or `ACTUAL_TENDER` in
  `dateAndTimes`), ties broken by the newest scan. An older shipment under a reused number is
  history; the parcel a user registers now is the recent one. Results carrying an `error`
  and no status at all lose to results with data;
- scan times carry their offset (`2024-08-20T12:41:57-04:00`); a rare naive one falls under
  the shared time policy (read as UTC, offset unknown);
- the status is `latestStatusDetail.code` (detailed) with `derivedCode` as fallback;
- a 400 for a whole multi-number request (e.g. one empty number) raises
  `BatchRefusedError`: the sync engine then tracks the numbers one by one, each request
  within the provider's budget, so one bad number cannot fail the other 29;
- tokens last 60 minutes and token requests are throttled per IP: the cache matters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from parcelwatch.carriers.base import Credential, ProviderSpec, TrackResult
from parcelwatch.carriers.catalog import public_tracking_url
from parcelwatch.carriers.errors import BadResponseError, InvalidNumberError
from parcelwatch.carriers.http import ResponseHints, track_results
from parcelwatch.carriers.oauth import OAuthProvider
from parcelwatch.carriers.parsing import (
    as_dict,
    as_list,
    delivered_time,
    log_skipped_event,
    newest_first,
    parse_timestamp,
    resolve_time,
    settle_return,
    text,
    to_utc,
)
from parcelwatch.carriers.statuses import normalize_status, resolve_status, status_table
from parcelwatch.domain import Location, ShipmentStatus, TrackEvent, TrackInfo
from parcelwatch.domain import ShipmentStatus as S

__all__ = [
    "FEDEX_DERIVED_CODES",
    "FEDEX_STATUS_CODES",
    "PROVIDER",
    "FedexProvider",
    "choose_track_result",
    "parse_scan_event",
    "parse_track_result",
    "parse_track_response",
    "results_from_response",
]

CODE = "fedex"
MAX_BATCH = 30
NOT_FOUND_CODES = frozenset({"TRACKING.TRACKINGNUMBER.NOTFOUND"})
INVALID_CODES = frozenset({"TRACKING.TRACKINGNUMBER.INVALID", "TRACKING.TRACKINGNUMBER.EMPTY"})
SHIP_TYPES = ("SHIP", "ACTUAL_PICKUP", "ACTUAL_TENDER")
_OLDEST = datetime.min.replace(tzinfo=UTC)
HINTS = ResponseHints(not_found_on_404=False)  # unknown numbers come inside a 200

# FedEx Track v1 `latestStatusDetail.code` and `scanEvents[].eventType`.
FEDEX_STATUS_CODES = status_table(
    {
        "AA": S.IN_TRANSIT,  # At airport
        "AC": S.IN_TRANSIT,  # At Canada Post facility
        "AD": S.IN_TRANSIT,  # At delivery
        "AE": S.IN_TRANSIT,  # Shipment arriving early
        "AF": S.IN_TRANSIT,  # At local FedEx facility
        "AO": S.IN_TRANSIT,  # Shipment arriving on time
        "AP": S.IN_TRANSIT,  # At pickup
        "AR": S.IN_TRANSIT,  # Arrived at FedEx location
        "AX": S.IN_TRANSIT,  # At USPS facility
        "CA": S.CANCELLED,  # Shipment cancelled
        "CC": S.IN_TRANSIT,  # Cleared customs
        "CD": S.EXCEPTION,  # Clearance delay
        "CH": S.IN_TRANSIT,  # Location changed
        "CP": S.IN_TRANSIT,  # Clearance in progress
        "DD": S.EXCEPTION,  # Delivery delay
        "DE": S.EXCEPTION,  # Delivery exception
        "DL": S.DELIVERED,  # Delivered
        "DP": S.IN_TRANSIT,  # Departed FedEx location
        "DR": S.IN_TRANSIT,  # Vehicle furnished but not used
        "DS": S.IN_TRANSIT,  # Vehicle dispatched
        "DY": S.EXCEPTION,  # Delay
        "EA": S.IN_TRANSIT,  # Enroute to airport
        "ED": S.IN_TRANSIT,  # Enroute to delivery
        "EO": S.IN_TRANSIT,  # Enroute to origin airport
        "EP": S.IN_TRANSIT,  # Enroute to pickup
        "FD": S.IN_TRANSIT,  # At FedEx destination
        "HL": S.AVAILABLE_FOR_PICKUP,  # Hold at location
        "HP": S.AVAILABLE_FOR_PICKUP,  # Ready for recipient pickup
        "IN": S.INFO_RECEIVED,  # Initiated
        "IT": S.IN_TRANSIT,  # In transit
        "IX": S.IN_TRANSIT,  # In transit (see details)
        "LO": S.IN_TRANSIT,  # Left origin
        "OC": S.INFO_RECEIVED,  # Shipment information sent to FedEx
        "OD": S.OUT_FOR_DELIVERY,  # On FedEx vehicle for delivery
        "OF": S.IN_TRANSIT,  # At FedEx origin facility
        "PD": S.EXCEPTION,  # Pickup delay
        "PF": S.IN_TRANSIT,  # Plane in flight
        "PL": S.IN_TRANSIT,  # Plane landed
        "PM": S.IN_TRANSIT,  # In progress
        "PU": S.IN_TRANSIT,  # Picked up
        "PX": S.IN_TRANSIT,  # Picked up (see details)
        "RS": S.RETURNING_TO_SENDER,  # Return to shipper
        "SE": S.EXCEPTION,  # Shipment exception
        "SF": S.IN_TRANSIT,  # At sort facility
        "SP": S.IN_TRANSIT,  # Split status
        "TR": S.IN_TRANSIT,  # Transfer
    }
)


# FedEx `derivedCode` / `derivedStatusCode`: the simplified status, used when the detailed
# code is not in the table above.
FEDEX_DERIVED_CODES = status_table(
    {
        "IN": S.INFO_RECEIVED,  # Initiated (label created)
        "PU": S.IN_TRANSIT,  # Picked up
        "IT": S.IN_TRANSIT,  # In transit
        "RL": S.IN_TRANSIT,  # Running late (still moving; the detail says so)
        "OD": S.OUT_FOR_DELIVERY,  # Out for delivery
        "HP": S.AVAILABLE_FOR_PICKUP,  # Ready for pickup
        "DE": S.EXCEPTION,  # Delivery exception
        "DY": S.EXCEPTION,  # Delay
        "SE": S.EXCEPTION,  # Shipment exception
        "DL": S.DELIVERED,  # Delivered
        "RS": S.RETURNING_TO_SENDER,  # Return to shipper
        "CA": S.CANCELLED,  # Cancelled
    }
)


def parse_scan_event(raw: Mapping[str, Any]) -> TrackEvent | None:
    """One `scanEvents[]` entry; None when its date does not parse."""
    description = text(raw.get("eventDescription")) or ""
    exception = text(raw.get("exceptionDescription"))
    when = resolve_time(parse_timestamp(raw.get("date")))
    if when is None:
        log_skipped_event(CODE, raw.get("date"), description)
        return None
    code = text(raw.get("eventType"))
    location = as_dict(raw.get("scanLocation"))
    return TrackEvent(
        occurred_at=when[0],
        utc_offset_minutes=when[1],
        status=normalize_status(
            CODE,
            [(FEDEX_STATUS_CODES, code), (FEDEX_DERIVED_CODES, text(raw.get("derivedStatusCode")))],
            text=description,
        ),
        description=f"{description}: {exception}" if exception else description,
        carrier_status_code=code,
        carrier_status_text=description,
        location=Location(
            city=text(location.get("city")),
            state=text(location.get("stateOrProvinceCode")),
            postal_code=text(location.get("postalCode")),
            country=text(location.get("countryCode")),
        ),
    )


def _dates(result: Mapping[str, Any]) -> dict[str, datetime]:
    found: dict[str, datetime] = {}
    for item in as_list(result.get("dateAndTimes")):
        entry = as_dict(item)
        kind, when = text(entry.get("type")), to_utc(entry.get("dateTime"))
        if kind and when and kind not in found:
            found[kind] = when
    return found


def _window_end(result: Mapping[str, Any], field: str) -> datetime | None:
    return to_utc(as_dict(as_dict(result.get(field)).get("window")).get("ends"))


def parse_track_result(tracking_number: str, result: Mapping[str, Any]) -> TrackInfo:
    """One `trackResults[]` entry (without error) → `TrackInfo`."""
    events = newest_first(
        e for e in (parse_scan_event(as_dict(s)) for s in as_list(result.get("scanEvents"))) if e
    )
    latest = as_dict(result.get("latestStatusDetail"))
    code, derived = text(latest.get("code")), text(latest.get("derivedCode"))
    description, by_locale = text(latest.get("description")), text(latest.get("statusByLocale"))
    if latest:
        status = resolve_status(
            CODE,
            [(FEDEX_STATUS_CODES, code), (FEDEX_DERIVED_CODES, derived)],
            newest_event=events[0] if events else None,
            text=description,
        )
    else:
        status = events[0].status if events else ShipmentStatus.PENDING
    status = settle_return(status, events)
    detail = description or by_locale
    if description and by_locale and by_locale.casefold() != description.casefold():
        detail = f"{by_locale}: {description}"
    dates = _dates(result)
    delivered = status is ShipmentStatus.DELIVERED
    delivery = as_dict(result.get("deliveryDetails"))
    signer = text(delivery.get("receivedByName")) or text(delivery.get("signedByName"))
    return TrackInfo(
        status=status,
        status_detail=detail,
        events=events,
        estimated_delivery=dates.get("ESTIMATED_DELIVERY")
        or _window_end(result, "estimatedDeliveryTimeWindow")
        or _window_end(result, "standardTransitTimeWindow"),
        delivered_at=(dates.get("ACTUAL_DELIVERY") or delivered_time(events))
        if delivered
        else None,
        signed_by=signer if delivered else None,
        tracking_url=public_tracking_url(CODE, tracking_number),
        carrier_status_code=code or derived,
        carrier_status_text=by_locale or description,
    )


def _has_data(result: Mapping[str, Any]) -> bool:
    return bool(result.get("latestStatusDetail") or result.get("scanEvents"))


def _recency(result: Mapping[str, Any]) -> tuple[datetime, datetime]:
    dates = _dates(result)
    shipped = next((dates[kind] for kind in SHIP_TYPES if kind in dates), _OLDEST)
    scans = [
        when[0]
        for when in (
            resolve_time(parse_timestamp(as_dict(s).get("date")))
            for s in as_list(result.get("scanEvents"))
        )
        if when
    ]
    return shipped, max(scans, default=_OLDEST)


def choose_track_result(results: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The `trackResults[]` entry to report (see the module docstring for why)."""
    with_data = [r for r in results if _has_data(r)]
    if with_data:
        return max(with_data, key=_recency)  # max keeps the first of equals
    return results[0] if results else None


def _entry_result(tracking_number: str, entry: Mapping[str, Any]) -> TrackResult:
    chosen = choose_track_result([as_dict(r) for r in as_list(entry.get("trackResults"))])
    if chosen is None:
        error = BadResponseError("completeTrackResults entry has no trackResults", provider=CODE)
        return TrackResult.failed(tracking_number, error)
    error_body = as_dict(chosen.get("error"))
    if error_body and not _has_data(chosen):
        code = text(error_body.get("code")) or ""
        message = text(error_body.get("message")) or code
        if code in NOT_FOUND_CODES:
            return TrackResult.not_found(tracking_number, message)
        if code in INVALID_CODES:
            return TrackResult.failed(tracking_number, InvalidNumberError(message, provider=CODE))
        return TrackResult.failed(
            tracking_number, BadResponseError(f"{code}: {message}", provider=CODE)
        )
    return TrackResult.found(tracking_number, parse_track_result(tracking_number, chosen))


def parse_track_response(numbers: Sequence[str], payload: object) -> list[TrackResult]:
    """A `POST /track/v1/trackingnumbers` 200 body → one result per requested number."""
    output = as_dict(as_dict(payload).get("output"))
    entries = as_list(output.get("completeTrackResults"))
    if not isinstance(as_dict(payload).get("output"), dict) or not entries:
        raise BadResponseError("response has no output.completeTrackResults", provider=CODE)
    by_number: dict[str, Mapping[str, Any]] = {}
    for item in entries:
        entry = as_dict(item)
        number = text(entry.get("trackingNumber"))
        if number and number not in by_number:
            by_number[number] = entry
    results = []
    for number in numbers:
        found = by_number.get(number)
        if found is None:
            missing = BadResponseError("FedEx returned no result for this number", provider=CODE)
            results.append(TrackResult.failed(number, missing))
        else:
            results.append(_entry_result(number, found))
    return results


def results_from_response(numbers: Sequence[str], response: httpx.Response) -> list[TrackResult]:
    """Decide one tracking call's outcome per number from its status code and body."""

    def parse(payload: object) -> list[TrackResult]:
        return parse_track_response(numbers, payload)

    return track_results(response, numbers, provider=CODE, parse=parse, hints=HINTS)


class FedexProvider(OAuthProvider):
    code = CODE
    name = "FedEx"
    max_batch = MAX_BATCH
    token_path = "/oauth/token"
    credential_names = "FEDEX_API_KEY / FEDEX_SECRET_KEY"

    def token_request(self, client_id: str, client_secret: str) -> dict[str, Any]:
        return {
            "data": {
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": client_secret,
            }
        }

    def request_headers(self) -> Mapping[str, str]:
        return {"X-locale": "en_US"}

    async def track(self, numbers: Sequence[str], *, carrier: str = CODE) -> list[TrackResult]:
        if len(numbers) > MAX_BATCH:
            raise ValueError(f"FedEx takes at most {MAX_BATCH} numbers per request")
        if not numbers:
            return []
        body = {
            "includeDetailedScans": True,
            "trackingInfo": [{"trackingNumberInfo": {"trackingNumber": n}} for n in numbers],
        }
        response = await self.authorized("POST", "/track/v1/trackingnumbers", json=body)
        return results_from_response(numbers, response)


PROVIDER = ProviderSpec(
    provider_class=FedexProvider,
    credentials=(
        Credential("fedex_api_key", "client_id", secret=False),
        Credential("fedex_secret_key", "client_secret"),
    ),
    base_url="https://apis.fedex.com",
    # In flight to keep 20 calls/s going: rate x latency (200 ms on the emulator gives 4,
    # with nothing to spare for parsing; FedEx's own answers take longer).
    max_concurrency=8,
    rate_limit=20.0,
    status_tables={"status codes": FEDEX_STATUS_CODES, "derived codes": FEDEX_DERIVED_CODES},
    # 1,400 per 10 s; Track 100,000 a day, "retry after 12:00AM GMT" (API-FACTS.md)
    quota="1400/10s,100000/day@00:00Z",
)
