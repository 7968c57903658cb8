"""The emulator's memory: when it first saw each number, issued tokens, buckets and stats."""

from __future__ import annotations

import secrets
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from parcelwatch.emulator.clock import EmulatorClock
from parcelwatch.emulator.config import EmulatorConfig
from parcelwatch.emulator.faults import QuotaCounter, TokenBucket
from parcelwatch.emulator.signing import KeySet, default_key_set
from parcelwatch.emulator.storylines import Region, Timeline, build_timeline, choose_storyline

API_KEY_CARRIERS = ("dhl", "shipengine")  # the key travels as `client_id`

__all__ = ["EmulatorState", "Stats", "TokenCheck", "TokenStore"]


@dataclass
class Stats:
    """Counters served at `GET /_emulator/stats`; cleared by `POST /_emulator/reset`."""

    requests: Counter[str] = field(default_factory=Counter)
    tracking_numbers: defaultdict[str, Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    rate_limited: Counter[str] = field(default_factory=Counter)  # quota refusals included
    quota_refused: Counter[str] = field(default_factory=Counter)
    faults: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    tokens_issued: Counter[str] = field(default_factory=Counter)
    auth_failures: Counter[str] = field(default_factory=Counter)
    webhooks_sent: int = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "requests_total": sum(self.requests.values()),
            "tracking_numbers": {c: dict(n) for c, n in self.tracking_numbers.items()},
            "rate_limited": dict(self.rate_limited),
            "rate_limited_total": sum(self.rate_limited.values()),
            "quota_refused": dict(self.quota_refused),
            "faults": {c: dict(kinds) for c, kinds in self.faults.items()},
            "faults_total": sum(sum(kinds.values()) for kinds in self.faults.values()),
            "tokens_issued": dict(self.tokens_issued),
            "auth_failures": dict(self.auth_failures),
            "webhooks_sent": self.webhooks_sent,
        }


class TokenCheck(StrEnum):
    OK = "ok"
    EXPIRED = "expired"
    INVALID = "invalid"  # never issued (or issued by another carrier), or missing


class TokenStore:
    """Bearer tokens per carrier with real-time expiry, plus early expiry on demand."""

    def __init__(self, clock: EmulatorClock) -> None:
        self._clock = clock
        self._expires: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def issue(self, carrier: str, lifetime: float) -> str:
        token = f"emu-{carrier}-{secrets.token_urlsafe(24)}"
        with self._lock:
            self._expires[(carrier, token)] = self._clock.monotonic() + lifetime
        return token

    def check(self, carrier: str, token: str | None) -> TokenCheck:
        with self._lock:
            expires = self._expires.get((carrier, token or ""))
        if expires is None:
            return TokenCheck.INVALID
        return TokenCheck.OK if self._clock.monotonic() < expires else TokenCheck.EXPIRED

    def expire(self, carrier: str | None = None, token: str | None = None) -> int:
        """Expire one token, or every token of a carrier (or of all); return how many."""
        now = self._clock.monotonic()
        with self._lock:
            keys = [
                key
                for key in self._expires
                if (carrier is None or key[0] == carrier) and (token is None or key[1] == token)
            ]
            for key in keys:
                self._expires[key] = min(self._expires[key], now)
        return len(keys)


class EmulatorState:
    """Shared by every route and the guard middleware of one emulator app."""

    def __init__(
        self, config: EmulatorConfig, clock: EmulatorClock | None = None, keys: KeySet | None = None
    ) -> None:
        self.config = config
        self.clock = clock or EmulatorClock(speed=config.speed, start=config.start)
        self.stats = Stats()
        self.tokens = TokenStore(self.clock)
        self.keys = keys or default_key_set()
        self.buckets = {
            carrier: TokenBucket(rate, clock=self.clock.monotonic)
            for carrier, rate in config.rate_limits.items()
        }
        self.quotas = {carrier: QuotaCounter(text) for carrier, text in config.quotas.items()}
        self.webhooks: list[dict[str, Any]] = []  # ShipEngine's registered webhooks
        self._first_seen: dict[str, datetime] = {}
        self._request_index: Counter[str] = Counter()
        self._lock = threading.Lock()

    def next_request_index(self, carrier: str) -> int:
        """A per-carrier request counter: fault and latency draws hash it with the seed."""
        with self._lock:
            self._request_index[carrier] += 1
            return self._request_index[carrier]

    def count_number(self, carrier: str, number: str) -> None:
        self.stats.tracking_numbers[carrier][number] += 1

    def accepts(self, carrier: str, client_id: str | None, secret: str | None = None) -> bool:
        """Configured exact credentials, else any non-empty id and secret (or API key)."""
        if self.config.reject_credentials or not client_id:
            return False
        api_key = carrier in API_KEY_CARRIERS
        expected = self.config.credentials.get(carrier)
        if expected is None:
            return api_key or bool(secret)
        same_id = secrets.compare_digest(client_id, expected.client_id)
        if api_key:
            return same_id
        return secrets.compare_digest(secret or "", expected.client_secret) and same_id

    def timeline(self, number: str, *, region: Region = "us") -> Timeline:
        """The number's storyline, anchored at the epoch or when it was first seen."""
        pin = self.config.pins.get(number)
        storyline = pin.storyline if pin else choose_storyline(number, self.config.seed)
        with self._lock:
            seen = self._first_seen.setdefault(number, self.clock.now())
        started = self.config.epoch or seen
        started -= self.config.head_start + (pin.age if pin else timedelta(0))
        return build_timeline(number, storyline, started, region=region, seed=self.config.seed)

    def forget(self) -> None:
        """Forget first sightings and tokens too (the clock keeps running)."""
        with self._lock:
            self._first_seen.clear()
        self.tokens.expire()
