"""Seeded knobs: which request gets which fault, how long it waits, and the rate limiter.

Every draw hashes (seed, carrier, request index), so the same sequence of requests to one
carrier always meets the same faults and latencies, however requests to other carriers
interleave.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum

from parcelwatch.carriers.quotas import parse_quota
from parcelwatch.emulator.config import FaultRates, Latency
from parcelwatch.emulator.storylines import stable_hash

__all__ = [
    "FaultKind",
    "QuotaCounter",
    "TokenBucket",
    "pick_fault",
    "sample_latency",
    "server_error_status",
]


class FaultKind(StrEnum):
    """How each fault shows, in-process (httpx.ASGITransport) and over a real socket:

    - `server_error`: an HTTP 500 in the carrier's error envelope, or a 502/503 HTML gateway
      page; the same both ways.
    - `timeout`: the answer is held for `faults.timeout_seconds` (default 60 s) before the
      normal answer; the client's own timeout fires first (httpx.ReadTimeout over a socket;
      in-process only a client-side timeout such as `anyio.fail_after` ends the wait, because
      ASGITransport ignores httpx timeouts).
    - `malformed`: HTTP 200 `application/json` whose body is the real answer cut in half.
    - `token_expiry`: the bearer token the request carries is expired early, so the request
      gets the carrier's 401 "token expired" answer; a fresh token works again. OAuth
      carriers (USPS, UPS, FedEx) only.
    - `connection_reset`: the status line and headers go out, then part of the body, then the
      connection drops. In-process the client's `send` raises `httpx.RemoteProtocolError`;
      over a socket uvicorn closes the connection and httpx raises `RemoteProtocolError`
      ("peer closed connection without sending complete message body").
    """

    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    MALFORMED = "malformed"
    TOKEN_EXPIRY = "token_expiry"
    CONNECTION_RESET = "connection_reset"


def _fraction(seed: int, carrier: str, salt: str, index: int) -> float:
    return stable_hash(seed, carrier, salt, str(index)) / 2**64


def pick_fault(rates: FaultRates, *, seed: int, carrier: str, index: int) -> FaultKind | None:
    """At most one fault for request number `index` to `carrier`."""
    draw = _fraction(seed, carrier, "fault", index)
    for kind in FaultKind:
        draw -= getattr(rates, kind.value)
        if draw < 0:
            return kind
    return None


def server_error_status(*, seed: int, carrier: str, index: int) -> int:
    return (500, 500, 502, 503)[stable_hash(seed, carrier, "status", str(index)) % 4]


def sample_latency(latency: Latency, *, seed: int, carrier: str, index: int) -> float:
    """Seconds to wait before answering request `index`."""
    if latency.distribution == "fixed":
        milliseconds = latency.ms
    elif latency.distribution == "uniform":
        low, high = sorted((latency.min_ms, latency.max_ms))
        milliseconds = low + (high - low) * _fraction(seed, carrier, "latency", index)
    else:
        rng = random.Random(stable_hash(seed, carrier, "latency", str(index)))
        milliseconds = rng.gauss(latency.mean_ms, latency.stddev_ms)
        if latency.max_ms:
            milliseconds = min(milliseconds, latency.max_ms)
        milliseconds = max(milliseconds, latency.min_ms)
    return max(0.0, milliseconds) / 1000


class TokenBucket:
    """`rate` requests a second with bursts up to `capacity` (default max(1, rate))."""

    def __init__(
        self,
        rate: float,
        *,
        capacity: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.capacity = capacity if capacity is not None else max(1.0, rate)
        self._clock = clock
        self._tokens = self.capacity
        self._updated = clock()
        self._lock = threading.Lock()

    def take(self) -> int | None:
        """Spend one token; None when allowed, else the whole seconds to wait (Retry-After)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            if self._tokens >= 1:
                self._tokens -= 1
                return None
            if self.rate <= 0:
                return 3600
            return max(1, math.ceil((1 - self._tokens) / self.rate))


class QuotaCounter:
    """A carrier's hour and day allowances (`<CARRIER>_QUOTA` syntax), counted on the real
    clock as the carrier counts them: windows fixed on its reset time."""

    def __init__(self, quota: str, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.windows = parse_quota(quota)
        self._now = now
        self._spent: Counter[tuple[str, datetime]] = Counter()
        self._lock = threading.Lock()

    def take(self) -> datetime | None:
        """Count one call; None when allowed, else when the spent window resets."""
        now = self._now()
        with self._lock:
            keys = [(w.name, w.bounds(now)[0]) for w in self.windows]
            spent = [
                w for w, key in zip(self.windows, keys, strict=True) if self._spent[key] >= w.amount
            ]
            if spent:
                return max(w.bounds(now)[1] for w in spent)
            for key in keys:
                self._spent[key] += 1
            return None
