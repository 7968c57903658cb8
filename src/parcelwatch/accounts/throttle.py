"""Failed sign-ins are throttled per account name and per client address, with the `limits`
library's moving windows: in memory, or in Redis when REDIS_URL is set (so that every server
process counts together). In memory under `serve --workers N`, each of the N processes allows
its share of the attempts (the limit divided by N, at least 1), so that together they never
allow more than one process would.

An account name that does not exist is throttled exactly like one that does, so the answers
never tell which names exist. A throttle whose Redis is unreachable lets sign-ins through (and
says so in the log) rather than locking everyone out."""

from __future__ import annotations

import math
import time
from typing import Final

import structlog
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

__all__ = ["PER_ACCOUNT", "PER_ADDRESS", "LoginThrottle"]

log = structlog.get_logger(__name__)

PER_ACCOUNT: Final = parse("5/15 minutes")
PER_ADDRESS: Final = parse("20/15 minutes")
_NAMESPACE: Final = "parcelwatch-login"


class LoginThrottle:
    def __init__(self, redis_url: str | None = None, *, processes: int = 1) -> None:
        storage = storage_from_string(redis_url) if redis_url else MemoryStorage()
        assert isinstance(storage, Storage)  # the synchronous kind, for these URLs
        self._limiter = MovingWindowRateLimiter(storage)
        share = 1 if redis_url else processes
        self._per_account = _share_of(PER_ACCOUNT, share)
        self._per_address = _share_of(PER_ADDRESS, share)

    def wait_seconds(self, name: str, address: str) -> int:
        """0 when a sign-in as `name` from `address` may be tried now, else how many seconds
        until it may."""
        wait = 0.0
        try:
            for item, key in self._windows(name, address):
                if not self._limiter.test(item, *key):
                    reset = self._limiter.get_window_stats(item, *key).reset_time
                    wait = max(wait, reset - time.time())
        except Exception as error:  # a Redis outage must not lock everyone out
            log.warning("login throttle unavailable", error=type(error).__name__)
            return 0
        return max(1, math.ceil(wait)) if wait > 0 else 0

    def failed(self, name: str, address: str) -> None:
        try:
            for item, key in self._windows(name, address):
                self._limiter.hit(item, *key)
        except Exception as error:
            log.warning("login throttle unavailable", error=type(error).__name__)

    def succeeded(self, name: str) -> None:
        """A right password clears the account's count (the address keeps its own)."""
        try:
            self._limiter.clear(self._per_account, _NAMESPACE, "account", name)
        except Exception as error:
            log.warning("login throttle unavailable", error=type(error).__name__)

    def _windows(self, name: str, address: str) -> list[tuple[RateLimitItem, tuple[str, ...]]]:
        return [
            (self._per_account, (_NAMESPACE, "account", name)),
            (self._per_address, (_NAMESPACE, "address", address)),
        ]


def _share_of(limit: RateLimitItem, processes: int) -> RateLimitItem:
    """One of `processes` equal shares of `limit` (at least one attempt)."""
    if processes <= 1:
        return limit
    return type(limit)(max(1, limit.amount // processes), limit.multiples, limit.namespace)
