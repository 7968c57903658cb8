"""Per-provider budgets: at most `<CARRIER>_MAX_CONCURRENCY` requests in flight and at most
`<CARRIER>_RATE_LIMIT` requests a second (aiolimiter, spaced so no burst exceeds it), so the
engine stays under a carrier's limit instead of learning it from 429s.

With REDIS_URL set the request rate is shared by every engine using that Redis (scale-out):
each request reserves the next free slot of a per-provider schedule kept in Redis (a GCRA
in one Lua script, on Redis's clock). When Redis cannot be reached the engine falls back to
its own limiter and says so in the log.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiolimiter import AsyncLimiter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from parcelwatch.config import Settings
from parcelwatch.logs import get_logger

__all__ = ["Budget", "BudgetSpec", "SharedRate", "budget_spec"]

log = get_logger(__name__)

# Reserve the next slot of KEYS[1]'s schedule, ARGV[1] seconds apart; return the wait.
_RESERVE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local interval = tonumber(ARGV[1])
local next_free = tonumber(redis.call('GET', KEYS[1]) or '0')
local start = math.max(next_free, now)
local ttl = math.ceil((start - now + interval) * 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.6f', start + interval), 'PX', ttl)
return string.format('%.6f', start - now)
"""

DEFAULT_CONCURRENCY = 2
DEFAULT_RATE = 1.0
# Requests leave this much wider apart than `<CARRIER>_RATE_LIMIT` allows: network and
# scheduling jitter bunch evenly spaced requests up on arrival, and a carrier that meters
# with a small bucket (DHL: 1 call/s) answers the early one with 429 and a whole second of
# Retry-After, which costs far more than the margin.
HEADROOM = 1.05


@dataclass(frozen=True, slots=True)
class BudgetSpec:
    concurrency: int
    rate: float  # requests per second


def budget_spec(
    settings: Settings, provider_code: str, *, concurrency: int | None = None
) -> BudgetSpec:
    """The provider's budget from the settings; `concurrency` (the `--concurrency` option)
    lowers or raises the in-flight cap, never the request rate."""
    configured = getattr(settings, f"{provider_code}_max_concurrency", DEFAULT_CONCURRENCY)
    rate = getattr(settings, f"{provider_code}_rate_limit", DEFAULT_RATE)
    return BudgetSpec(concurrency=concurrency or int(configured), rate=float(rate))


class SharedRate:
    """A request schedule per provider shared through Redis."""

    def __init__(self, client: Redis, *, prefix: str = "parcelwatch:rate:") -> None:
        self.client = client
        self.prefix = prefix
        self._script = client.register_script(_RESERVE)
        self.failed = False

    @classmethod
    def from_url(cls, url: str) -> SharedRate:
        return cls(Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2))

    async def reserve(self, provider: str, interval: float) -> float | None:
        """Seconds to wait before this request may go, or None when Redis failed."""
        try:
            wait = await self._script(keys=[self.prefix + provider], args=[interval])
        except RedisError as error:
            if not self.failed:
                log.warning("shared rate limit unavailable, limiting locally", error=str(error))
            self.failed = True
            return None
        self.failed = False
        return float(wait)

    async def close(self) -> None:
        await self.client.aclose()


class Budget:
    """Acquire before every request (every retry too)."""

    def __init__(
        self, spec: BudgetSpec, *, provider: str = "", shared: SharedRate | None = None
    ) -> None:
        self.spec = spec
        self.provider = provider
        self.shared = shared
        self._semaphore = asyncio.Semaphore(spec.concurrency)
        # One token at a time, refilled every 1/rate seconds: requests are spaced evenly.
        self.interval = HEADROOM / spec.rate
        self._limiter = AsyncLimiter(1, self.interval)
        self.in_flight = 0

    async def _wait_for_rate(self) -> None:
        if self.shared is not None:
            wait = await self.shared.reserve(self.provider, self.interval)
            if wait is not None:
                if wait > 0:
                    await asyncio.sleep(wait)
                return
        await self._limiter.acquire()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._semaphore:
            await self._wait_for_rate()
            self.in_flight += 1
            try:
                yield
            finally:
                self.in_flight -= 1
