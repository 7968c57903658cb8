"""A per-provider circuit breaker: after repeated carrier-wide failures (or at once on
refused credentials) the carrier is not called for a cool-down; its shipments are deferred,
never failed. After the cool-down one probe batch decides (half-open).

A carrier that asks to wait (429 with a long Retry-After) holds the breaker open until then
(`hold`), which is not a failure.

Only a refused token request (or a refused API key) is refused credentials; a bearer token
a tracking call refuses after its renewal (`TokenRejectedError`) counts like an outage."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from parcelwatch.carriers.errors import AuthError, CarrierWideError, RateLimitedError
from parcelwatch.ops.metrics import CIRCUIT_STATE

__all__ = ["BreakerPolicy", "CircuitBreaker", "CircuitState"]


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failure_threshold: int = 3  # consecutive carrier-wide failures (after retries)
    cooldown: float = 60.0  # seconds; doubles on every failed probe
    max_cooldown: float = 900.0
    auth_cooldown: float = 900.0  # refused credentials rarely fix themselves quickly


class CircuitBreaker:
    def __init__(
        self,
        provider: str,
        policy: BreakerPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider = provider
        self.policy = policy
        self.clock = clock
        self.state = CircuitState.CLOSED
        self.failures = 0
        self.opened_until = 0.0
        self.cooldown = policy.cooldown
        self.last_error: str | None = None
        self._probing = False

    def allow(self) -> bool:
        """May a request go out now? In half-open state only one probe at a time."""
        if self.state is CircuitState.OPEN:
            if self.clock() < self.opened_until:
                return False
            self.state = CircuitState.HALF_OPEN
        if self.state is CircuitState.HALF_OPEN:
            if self._probing:
                return False
            self._probing = True
        return True

    def retry_in(self) -> float:
        """Seconds until the breaker lets a probe through (0 when closed)."""
        if self.state is CircuitState.CLOSED:
            return 0.0
        return max(0.0, self.opened_until - self.clock())

    def release_probe(self) -> None:
        """The probe ended without a verdict (abandoned): let another one through."""
        self._probing = False

    def record_success(self) -> None:
        self.failures = 0
        self._probing = False
        self.cooldown = self.policy.cooldown
        if self.state is not CircuitState.CLOSED:
            self.state = CircuitState.CLOSED
            CIRCUIT_STATE.labels(provider=self.provider).set(0)

    def record_failure(self, error: CarrierWideError) -> None:
        self.last_error = str(error)
        self.failures += 1
        probing = self._probing
        self._probing = False
        if isinstance(error, AuthError) and error.credentials_refused:
            self._open(max(self.policy.auth_cooldown, self.cooldown))
        elif probing:
            self.cooldown = min(self.cooldown * 2, self.policy.max_cooldown)
            self._open(self.cooldown)
        elif self.failures >= self.policy.failure_threshold:
            wait = self.cooldown
            if isinstance(error, RateLimitedError) and error.retry_after:
                wait = max(wait, error.retry_after)
            self._open(wait)

    def hold(self, seconds: float, reason: str) -> None:
        """The carrier asked not to be called for `seconds` (429 with a long Retry-After, a
        spent quota): open until then without counting a failure or doubling the cool-down;
        one probe follows, as after an outage."""
        self.last_error = reason
        self._probing = False
        self._open(seconds)

    def _open(self, seconds: float) -> None:
        self.state = CircuitState.OPEN
        self.opened_until = self.clock() + seconds
        CIRCUIT_STATE.labels(provider=self.provider).set(1)
