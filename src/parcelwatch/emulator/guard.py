"""ASGI middleware in front of the carrier routes: stats, latency, rate limits and faults."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio
import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parcelwatch.emulator.faults import FaultKind, pick_fault, sample_latency, server_error_status
from parcelwatch.emulator.state import EmulatorState
from parcelwatch.emulator.wire import ErrorBody, gateway_error

__all__ = ["CarrierErrors", "CarrierGuard", "EmulatedConnectionReset", "classify"]

OAUTH_CARRIERS = frozenset({"usps", "ups", "fedex"})

# path prefix -> (carrier, endpoint kind); the JWKS and admin paths are not guarded.
PREFIXES = (
    ("/usps/oauth2/", "usps", "token"),
    ("/usps/tracking/", "usps", "tracking"),
    ("/ups/security/", "ups", "token"),
    ("/ups/api/", "ups", "tracking"),
    ("/fedex/oauth/", "fedex", "token"),
    ("/fedex/track/", "fedex", "tracking"),
    ("/dhl/track/", "dhl", "tracking"),
    ("/shipengine/v1/", "shipengine", "tracking"),
)


class EmulatedConnectionReset(httpx.RemoteProtocolError):
    """Raised mid-response to drop the connection (what a client sees in-process)."""


@dataclass(frozen=True, slots=True)
class CarrierErrors:
    """A carrier's 429 and 500 bodies, for answers the guard gives without the route;
    `quota_exceeded` its answer once a daily (or hourly) allowance is spent, when it words
    that apart (else the 429 with `Retry-After` until the reset)."""

    rate_limited: Callable[[], ErrorBody]
    internal_error: Callable[[], ErrorBody]
    quota_exceeded: Callable[[datetime], ErrorBody] | None = None


def classify(path: str) -> tuple[str, str] | None:
    for prefix, carrier, kind in PREFIXES:
        if path.startswith(prefix):
            return carrier, kind
    return None


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


class CarrierGuard:
    def __init__(
        self, app: ASGIApp, *, state: EmulatorState, errors: Mapping[str, CarrierErrors]
    ) -> None:
        self.app = app
        self.state = state
        self.errors = errors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = classify(scope["path"]) if scope["type"] == "http" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        carrier, kind = match
        state, config = self.state, self.state.config
        state.stats.requests[carrier] += 1
        index = state.next_request_index(carrier)
        delay = sample_latency(config.latency, seed=config.seed, carrier=carrier, index=index)
        if delay > 0:
            await anyio.sleep(delay)
        if kind != "tracking" and not config.faults.on_token_endpoints:
            await self.app(scope, receive, send)
            return
        bucket = state.buckets.get(carrier)
        retry_after = bucket.take() if bucket else None
        if retry_after is not None:
            state.stats.rate_limited[carrier] += 1
            answer = (
                self.errors[carrier].rate_limited().response(**{"Retry-After": str(retry_after)})
            )
            await answer(scope, receive, send)
            return
        quota = state.quotas.get(carrier)
        resets_at = quota.take() if quota else None
        if resets_at is not None:
            state.stats.rate_limited[carrier] += 1
            state.stats.quota_refused[carrier] += 1
            await self._quota_exceeded(carrier, resets_at)(scope, receive, send)
            return
        rates = config.faults.for_carrier(carrier)
        fault = pick_fault(rates, seed=config.seed, carrier=carrier, index=index)
        if fault is FaultKind.TOKEN_EXPIRY and (
            carrier not in OAUTH_CARRIERS or kind != "tracking"
        ):
            fault = None
        if fault is not None:
            state.stats.faults[carrier][fault.value] += 1
        await self._answer(fault, carrier, index, scope, receive, send)

    def _quota_exceeded(self, carrier: str, resets_at: datetime) -> ASGIApp:
        errors = self.errors[carrier]
        if errors.quota_exceeded is not None:
            return errors.quota_exceeded(resets_at).response()
        wait = max(1, math.ceil((resets_at - datetime.now(UTC)).total_seconds()))
        return errors.rate_limited().response(**{"Retry-After": str(wait)})

    async def _answer(
        self,
        fault: FaultKind | None,
        carrier: str,
        index: int,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        config = self.state.config
        if fault is FaultKind.SERVER_ERROR:
            status = server_error_status(seed=config.seed, carrier=carrier, index=index)
            body = self.errors[carrier].internal_error() if status == 500 else gateway_error(status)
            await body.response()(scope, receive, send)
        elif fault is FaultKind.TIMEOUT:
            await anyio.sleep(config.faults.timeout_seconds)
            await self.app(scope, receive, send)
        elif fault is FaultKind.MALFORMED:
            await self._malformed(scope, receive, send)
        elif fault is FaultKind.CONNECTION_RESET:
            await _reset(send)
        else:
            if fault is FaultKind.TOKEN_EXPIRY:
                self.state.tokens.expire(carrier, _bearer(scope) or "")
            bad_numbers = config.faults.malformed_numbers
            if bad_numbers:
                await self._malformed(scope, receive, send, only_naming=bad_numbers)
                return
            await self.app(scope, receive, send)

    async def _malformed(
        self, scope: Scope, receive: Receive, send: Send, *, only_naming: list[str] | None = None
    ) -> None:
        """The real answer's status, with its JSON body cut in half (with `only_naming`: only
        when the answer names one of those tracking numbers)."""
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        if only_naming is not None and not any(n.encode() in body for n in only_naming):
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return
        cut = body[: max(1, len(body) // 2)]
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(cut)).encode()))
        await send(
            {"type": "http.response.start", "status": start.get("status", 200), "headers": headers}
        )
        await send({"type": "http.response.body", "body": cut})


async def _reset(send: Send) -> None:
    """Start a 200 answer, send a little of it, then drop the connection."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"', "more_body": True})
    raise EmulatedConnectionReset("connection reset by the carrier emulator")
