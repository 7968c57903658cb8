"""HTTP plumbing every provider shares: URLs, one timed request, Retry-After, JSON bodies,
and `track_results`, the one place an HTTP status and body become results or errors.

Only the network shell of a carrier module uses this; `parse_*` functions never do.
Error messages name the HTTP status and the carrier's own error code or text, never a
credential (credentials travel in headers and form bodies, which are never echoed).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from parcelwatch.carriers.base import TrackResult
from parcelwatch.carriers.errors import (
    AuthError,
    BadResponseError,
    BatchRefusedError,
    InvalidNumberError,
    RateLimitedError,
    TokenRejectedError,
    UnavailableError,
)
from parcelwatch.carriers.parsing import as_dict, as_list, text
from parcelwatch.logs import redact
from parcelwatch.ops.metrics import CARRIER_API_CALLS

__all__ = [
    "ResponseHints",
    "api_url",
    "decode_json",
    "describe_error",
    "error_detail",
    "parse_retry_after",
    "retry_after_from_text",
    "raise_for_carrier_wide",
    "send",
    "track_results",
]


def api_url(base_url: str, path: str) -> str:
    """The carrier's own `path` under a configured base URL (scheme, host, optional prefix):
    `http://127.0.0.1:9000/usps` + `/oauth2/v3/token`."""
    return base_url.rstrip("/") + "/" + path.lstrip("/")


def _outcome(status_code: int) -> str:
    if status_code < 400:
        return "ok"
    if status_code in (401, 403):
        return "auth"
    if status_code == 404:
        return "not_found"
    if status_code == 429:
        return "rate_limited"
    if status_code >= 500:
        return "unavailable"
    return "client_error"


async def send(
    client: httpx.AsyncClient,
    carrier: str,
    method: str,
    url: str,
    *,
    time_limit: float,
    **kwargs: Any,
) -> httpx.Response:
    """One HTTP call within `time_limit` seconds; a timeout or a broken connection becomes
    `UnavailableError`. httpx's own timeout bounds each phase (connect, each read); the
    outer deadline bounds the whole call, also over transports that ignore httpx timeouts
    (`ASGITransport`) and against a carrier that drips its answer byte by byte."""
    try:
        async with asyncio.timeout(time_limit):
            response = await client.request(method, url, timeout=time_limit, **kwargs)
    except (httpx.TransportError, TimeoutError) as error:
        if _timed_out(error):
            CARRIER_API_CALLS.labels(provider=carrier, outcome="timeout").inc()
            raise UnavailableError(f"no answer within {time_limit:g}s", provider=carrier) from None
        CARRIER_API_CALLS.labels(provider=carrier, outcome="unavailable").inc()
        cause = error.__cause__ or error  # the transport's own error names what broke
        raise UnavailableError(
            f"connection failed ({type(cause).__name__})", provider=carrier
        ) from None
    CARRIER_API_CALLS.labels(provider=carrier, outcome=_outcome(response.status_code)).inc()
    return response


def _timed_out(error: BaseException) -> bool:
    """A timeout, not a refused or broken connection. The aiohttp transport reports every
    connection error as `httpx.ConnectTimeout`; its cause tells the two apart."""
    if isinstance(error, TimeoutError):
        return True
    if not isinstance(error, httpx.TimeoutException):
        return False
    return error.__cause__ is None or isinstance(error.__cause__, TimeoutError)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds: a number of seconds or an HTTP date; None when absent."""
    if value is None or not value.strip():
        return None
    raw = value.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


# "Daily transaction quota exceeded. Retry after 12:00AM GMT" (FedEx), "retry after 00:00 UTC"
_RETRY_AT = re.compile(
    r"(?:retry|try again)\s+after\s+(?P<hour>\d{1,2})(?::(?P<minute>\d{2}))?\s*"
    r"(?P<half>[AP]\.?M\.?)?\s*(?:GMT|UTC|Z)\b",
    re.IGNORECASE,
)


def retry_after_from_text(text: str, *, now: datetime | None = None) -> float | None:
    """Seconds until the time of day a carrier's message names ("Retry after 12:00AM GMT"):
    the next such moment; None when the text names none."""
    match = _RETRY_AT.search(text)
    if match is None:
        return None
    hour, minute = int(match["hour"]), int(match["minute"] or 0)
    if match["half"]:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if match["half"].upper().startswith("P") else 0)
    if hour > 23 or minute > 59:
        return None
    now = now or datetime.now(UTC)
    moment = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if moment <= now:
        moment += timedelta(days=1)
    return (moment - now).total_seconds()


def decode_json(response: httpx.Response, carrier: str) -> Any:
    """The decoded JSON body; `BadResponseError` when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        raise BadResponseError(
            f"HTTP {response.status_code}: body is not JSON",
            provider=carrier,
            status_code=response.status_code,
        ) from None


def raise_for_carrier_wide(response: httpx.Response, carrier: str, detail: str = "") -> None:
    """Raise for a 429 (with its Retry-After, or the time its message names) or a 5xx; other
    statuses are the caller's."""
    status = response.status_code
    suffix = f": {redact(detail)}" if detail else ""
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise RateLimitedError(
            f"rate limited (HTTP 429){suffix}",
            provider=carrier,
            retry_after=retry_after if retry_after is not None else retry_after_from_text(detail),
        )
    if status >= 500:
        raise UnavailableError(f"HTTP {status}{suffix}", provider=carrier, status_code=status)


def describe_error(payload: object) -> str:
    """The carrier's own error code and text from the usual error envelopes."""
    body = as_dict(payload)
    if text(body.get("error")):  # RFC 6749: {"error": "invalid_client", ...}
        return " ".join(
            part for part in (text(body.get("error")), text(body.get("error_description"))) if part
        )
    errors = as_list(as_dict(body.get("response")).get("errors")) or as_list(body.get("errors"))
    error = as_dict(body.get("error"))
    if not errors and error:
        errors = as_list(error.get("errors")) or [error]
    parts = []
    for item in errors[:3]:
        entry = as_dict(item)
        code = text(entry.get("code")) or text(entry.get("error_code"))
        message = text(entry.get("message")) or text(entry.get("detail"))
        parts.append(" ".join(p for p in (code, message) if p))
    found = "; ".join(p for p in parts if p)
    return found or text(body.get("detail")) or text(body.get("title")) or ""


def error_detail(response: httpx.Response) -> str:
    """The carrier's error code and text from a response body, redacted, at most 200 chars."""
    try:
        payload = response.json()
    except ValueError:
        return ""
    return redact(describe_error(payload))[:200]


@dataclass(frozen=True, slots=True)
class ResponseHints:
    """How one provider words and reads its error answers, for `track_results`."""

    refused: str = "tracking call refused"  # what a 401/403 refused
    auth_hint: str | None = None  # what to check then, e.g. "check DHL_API_KEY"
    invalid: str = "invalid tracking number"  # a 400 without detail
    not_found_on_404: bool = True  # False: a 404 is unexpected (FedEx reports in a 200)


def track_results(
    response: httpx.Response,
    numbers: Sequence[str],
    *,
    provider: str,
    parse: Callable[[object], list[TrackResult]],
    hints: ResponseHints,
) -> list[TrackResult]:
    """One tracking call's outcome for `numbers`, from its status and body: a 200 body goes
    to the provider's `parse`; 429 and 5xx raise carrier-wide errors; 401/403 `AuthError`;
    404 is not found; 400 an invalid number (`BatchRefusedError` when it refused several);
    anything else `BadResponseError`."""
    status = response.status_code
    if status == 200:
        return parse(decode_json(response, provider))
    detail = error_detail(response)
    raise_for_carrier_wide(response, provider, detail)
    if status == 401 and _sent_bearer_token(response):
        raise _token_rejected(detail, provider=provider, hints=hints)
    if status in (401, 403):
        hint = f"; {hints.auth_hint}" if hints.auth_hint else ""
        raise AuthError(
            f"{hints.refused} (HTTP {status}: {detail or 'unauthorized'}){hint}",
            provider=provider,
            status_code=status,
        )
    if status == 400 and len(numbers) > 1:
        raise BatchRefusedError(
            f"request for {len(numbers)} numbers refused (HTTP 400: {detail or 'bad request'})",
            provider=provider,
            status_code=status,
        )
    if len(numbers) == 1 and status == 404 and hints.not_found_on_404:
        return [TrackResult.not_found(numbers[0], detail or None)]
    if len(numbers) == 1 and status == 400:
        error = InvalidNumberError(detail or hints.invalid, provider=provider)
        return [TrackResult.failed(numbers[0], error)]
    raise BadResponseError(f"unexpected HTTP {status}", provider=provider, status_code=status)


def _sent_bearer_token(response: httpx.Response) -> bool:
    """Did the refused call carry an OAuth bearer token? (API-key carriers send their key in
    their own header: their 401 is refused credentials.)"""
    try:
        authorization = str(response.request.headers.get("Authorization", ""))
    except RuntimeError:  # a response built without its request
        return False
    return authorization.lower().startswith("bearer ")


def _token_rejected(detail: str, *, provider: str, hints: ResponseHints) -> TokenRejectedError:
    """A 401 to a bearer token. `OAuthProvider.authorized` already renewed the token once and
    repeated the call, so the client id and secret were accepted moments ago. A token the
    carrier calls expired is not a scope problem: the hint is only given otherwise."""
    if "expired" in detail.lower():
        message = f"{hints.refused} (HTTP 401: {detail}): the token expired again when renewed"
    else:
        hint = f"; {hints.auth_hint}" if hints.auth_hint else ""
        message = f"{hints.refused} (HTTP 401: {detail or 'unauthorized'}){hint}"
    return TokenRejectedError(message, provider=provider, status_code=401)
