"""USPS Tracking API 3.2 (v3r2, batches) or v3 (one number a call), OAuth2 client credentials.

`USPS_API_VERSION` chooses:
- `v3r2` (default): `POST /tracking/v3r2/tracking` with a JSON array of
  `{"trackingNumber": ...}`, up to `USPS_BATCH_SIZE` (35) numbers a call. USPS's allowance is
  counted in calls (about 60 an hour), so a batch of 35 checks 35 times the parcels. The
  answer is an array with one entry per number: 200 when all were found, 207 multi-status
  when they differ (each entry a tracking body with `statusCode` "200", or an `ErrorMessage`
  with `statusCode` and `trackingNumber`), a plain `ErrorMessage` when the whole call failed
  (the 404 sample for a number not yet known). USPS has not published the cap; third-party
  clients send 35. The request takes no `expand`: v3r2 bodies carry the detail;
- `v3`: `GET /tracking/v3/tracking/{n}?expand=DETAIL`, one number a request (the path for
  an app where v3r2 misbehaves).
Both answer with the same tracking body per number, read by `parse_tracking`.

Quirks:
- the app must be granted the `tracking` scope (not in the default product); without it the
  token is issued but every tracking call answers 401, so a 401 after a fresh token names
  the scope as the likely cause;
- `eventTimestamp` is local time without an offset; `GMTTimestamp` (UTC) and `GMTOffset`
  come beside it and are preferred. USPS's own example labels a local time with `Z`, which
  is taken at its word when no GMT fields exist;
- booleans arrive as strings and `mailClass`/`services` contain HTML (both unused here);
- the Web Tools batch of 10 was retired on 2026-01-25;
- not found is a 404 with `error.errors[].code` 150006, an invalid number a 400; in a v3r2
  batch the same statuses come per entry, and count against that number only (a 429 or 5xx
  entry defers that number only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal
from urllib.parse import quote

import httpx
from pydantic import BeforeValidator, Field

from parcelwatch.carriers.base import Credential, Option, ProviderSpec, TrackResult
from parcelwatch.carriers.catalog import public_tracking_url
from parcelwatch.carriers.errors import (
    AuthError,
    BadResponseError,
    BatchRefusedError,
    CarrierError,
    InvalidNumberError,
    NumberError,
    RateLimitedError,
    UnavailableError,
)
from parcelwatch.carriers.http import (
    ResponseHints,
    decode_json,
    describe_error,
    track_results,
)
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
from parcelwatch.logs import redact

__all__ = [
    "API_VERSIONS",
    "DEFAULT_BATCH_SIZE",
    "PROVIDER",
    "USPS_EVENT_CODES",
    "USPS_STATUS_CATEGORIES",
    "UspsProvider",
    "parse_batch",
    "parse_entry",
    "parse_event",
    "parse_tracking",
    "results_from_batch",
]

CODE = "usps"
API_VERSIONS = ("v3r2", "v3")
DEFAULT_API_VERSION = "v3r2"
DEFAULT_BATCH_SIZE = 35  # what third-party clients send; USPS has not published its cap
MAX_BATCH_SIZE = 100
BATCH_PATH = "/tracking/v3r2/tracking"
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
BATCH_HINT = "if USPS refuses batches this large, lower USPS_BATCH_SIZE"

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


def _key(number: str) -> str:
    return "".join(number.split()).upper()


def _status_of(entry: Mapping[str, Any]) -> int | None:
    """An entry's HTTP status: its `statusCode`, else its error's `code`; None when neither
    is given (a tracking body without `statusCode` is a success)."""
    for raw in (entry.get("statusCode"), as_dict(entry.get("error")).get("code")):
        try:
            return int(str(raw).strip())
        except (TypeError, ValueError):
            continue
    return None


def parse_entry(tracking_number: str, entry: Mapping[str, Any]) -> TrackResult:
    """One entry of a v3r2 answer: a tracking body (found), or an `ErrorMessage` with its
    `statusCode`: 404 not found, 400 an invalid number, 429/5xx that number deferred, any
    other status that number's own failure."""
    status = _status_of(entry)
    if "error" not in entry and status in (None, 200):
        try:
            return TrackResult.found(tracking_number, parse_tracking(tracking_number, entry))
        except BadResponseError as malformed:
            return TrackResult.failed(tracking_number, malformed)
    detail = redact(describe_error(entry))[:200]
    if status == 404:
        return TrackResult.not_found(tracking_number, detail or None)
    return TrackResult.failed(tracking_number, _entry_error(status, detail))


def _entry_error(status: int | None, detail: str) -> CarrierError:
    suffix = f": {detail}" if detail else ""
    if status == 400:
        return InvalidNumberError(detail or "invalid tracking number", provider=CODE)
    if status == 429:
        return RateLimitedError(f"rate limited for this number (429){suffix}", provider=CODE)
    if status is not None and status >= 500:
        return UnavailableError(f"HTTP {status} for this number{suffix}", provider=CODE)
    return NumberError(f"HTTP {status or '?'} for this number{suffix}", provider=CODE)


def parse_batch(numbers: Sequence[str], payload: object) -> list[TrackResult]:
    """A `POST /tracking/v3r2/tracking` 200 or 207 body (an array, one entry per number)
    → one result per requested number, in order. Entries are matched by `trackingNumber`
    (ignoring case and spaces), by position when USPS reformatted the numbers."""
    if isinstance(payload, dict) and len(numbers) == 1:
        payload = [payload]  # one number may come back as a bare object
    if not isinstance(payload, list) or not payload:
        raise BadResponseError("v3r2 tracking body is not a non-empty array", provider=CODE)
    entries = [as_dict(item) for item in payload]
    by_number: dict[str, Mapping[str, Any]] = {}
    for entry in entries:
        number = text(entry.get("trackingNumber"))
        if number and _key(number) not in by_number:
            by_number[_key(number)] = entry
    if len(entries) == len(numbers) and any(_key(n) not in by_number for n in numbers):
        return [parse_entry(n, e) for n, e in zip(numbers, entries, strict=True)]
    results = []
    for number in numbers:
        found = by_number.get(_key(number))
        if found is None:
            missing = BadResponseError("USPS returned no entry for this number", provider=CODE)
            results.append(TrackResult.failed(number, missing))
        else:
            results.append(parse_entry(number, found))
    return results


def results_from_batch(numbers: Sequence[str], response: httpx.Response) -> list[TrackResult]:
    """Decide one v3r2 call's outcome per number: 200/207 per entry; a 404 `ErrorMessage`
    for the whole call means none of the numbers is known yet; the rest as every provider's
    whole-call failures (`track_results`)."""
    status = response.status_code
    if status in (200, 207):
        return parse_batch(numbers, decode_json(response, CODE))
    if status == 404 and len(numbers) > 1:
        body = _json_or_none(response)
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            detail = redact(describe_error(body))[:200] or None
            return [TrackResult.not_found(number, detail) for number in numbers]

    def parse(payload: object) -> list[TrackResult]:  # pragma: no cover - 200 is above
        return parse_batch(numbers, payload)

    try:
        return track_results(response, numbers, provider=CODE, parse=parse, hints=HINTS)
    except BatchRefusedError as refused:
        raise BatchRefusedError(
            f"{refused.message}; {BATCH_HINT}", provider=CODE, status_code=refused.status_code
        ) from None


def _json_or_none(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
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
    max_batch = DEFAULT_BATCH_SIZE
    own_batch_size = True  # USPS_BATCH_SIZE, not AUTO_UPDATE_BATCH_SIZE, sizes USPS calls
    token_path = "/oauth2/v3/token"
    credential_names = "USPS_CLIENT_ID / USPS_CLIENT_SECRET"

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        base_url: str,
        client_id: str,
        client_secret: str,
        timeout: float = 30.0,
        api_version: str = DEFAULT_API_VERSION,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        super().__init__(
            client=client,
            base_url=base_url,
            client_id=client_id,
            client_secret=client_secret,
            timeout=timeout,
        )
        if api_version not in API_VERSIONS:
            raise ValueError(f"USPS_API_VERSION must be one of {', '.join(API_VERSIONS)}")
        self.api_version = api_version
        self.max_batch = self.batch_limit({"api_version": api_version, "batch_size": batch_size})

    @classmethod
    def batch_limit(cls, options: Mapping[str, Any]) -> int:
        """v3r2: `USPS_BATCH_SIZE`; v3: one number a request."""
        if options.get("api_version", DEFAULT_API_VERSION) != "v3r2":
            return 1
        size = int(options.get("batch_size", DEFAULT_BATCH_SIZE))
        if size < 1:
            raise ValueError("USPS_BATCH_SIZE must be at least 1")
        return size

    def token_request(self, client_id: str, client_secret: str) -> dict[str, Any]:
        return {
            "data": {
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": client_secret,
            }
        }

    async def track(self, numbers: Sequence[str], *, carrier: str = CODE) -> list[TrackResult]:
        if len(numbers) > self.max_batch:
            raise ValueError(f"USPS {self.api_version} takes at most {self.max_batch} numbers")
        if not numbers:
            return []
        if self.api_version == "v3r2":
            body = [{"trackingNumber": number} for number in numbers]
            response = await self.authorized("POST", BATCH_PATH, json=body)
            return results_from_batch(numbers, response)
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


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


PROVIDER = ProviderSpec(
    provider_class=UspsProvider,
    credentials=(
        Credential("usps_client_id", "client_id", secret=False),
        Credential("usps_client_secret", "client_secret"),
    ),
    base_url="https://apis.usps.com",
    max_concurrency=2,
    rate_limit=1.0 / 60,  # about 60 calls an hour by default (a v3r2 batch is one call)
    status_tables={
        "status categories": USPS_STATUS_CATEGORIES,
        "event codes": USPS_EVENT_CODES,
    },
    options=(
        Option(
            "usps_api_version",
            "api_version",
            Annotated[Literal["v3r2", "v3"], BeforeValidator(_lower)],
            DEFAULT_API_VERSION,
        ),
        Option(
            "usps_batch_size",
            "batch_size",
            Annotated[int, Field(ge=1, le=MAX_BATCH_SIZE)],
            DEFAULT_BATCH_SIZE,
        ),
    ),
    quota="60/hour",  # about 60 calls an hour per app (API-FACTS.md)
)
