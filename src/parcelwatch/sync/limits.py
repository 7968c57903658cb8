"""Per-provider budgets: at most `<CARRIER>_MAX_CONCURRENCY` requests in flight, requests
spaced to the per-second rate (`<CARRIER>_RATE_LIMIT`, or the `N/s` window of
`<CARRIER>_QUOTA`) and every quota window shorter than an hour (a schedule of evenly spaced
slots, so no burst exceeds it), and the hour and day windows counted in a shared store
(`sync/budgets.py`), so the engine stays under a carrier's allowance instead of learning it
from 429s.

What the carrier says still counts:
- a 429 asking to wait longer than the retry policy waits (`Retry-After`, or "retry after
  12:00AM GMT") blocks the provider until then, in the store, for every engine: its
  shipments are deferred to that moment (`OutOfBudget`), neither failed nor held against
  the circuit breaker;
- a carrier that keeps answering 429 although the engine keeps to the configured rate has a
  lower limit than configured: after `RateLearning.signals` such answers within `within`
  seconds the rate the engine uses is cut by `factor` (logged, `/metrics`, health), and
  after `quiet` seconds without one it rises again by `step`, up to the configured rate.

With REDIS_URL set the request rate is shared by every engine using that Redis (scale-out):
each request reserves the next free slot of a per-provider schedule kept in Redis (a GCRA
in one Lua script, on Redis's clock). When Redis cannot be reached the engine falls back to
its own limiter and says so in the log.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis.asyncio import Redis
from redis.exceptions import RedisError

from parcelwatch.carriers.errors import RateLimitedError
from parcelwatch.carriers.quotas import QuotaWindow, parse_quota
from parcelwatch.config import Settings
from parcelwatch.domain import utcnow
from parcelwatch.logs import get_logger
from parcelwatch.ops.metrics import CARRIER_RATE
from parcelwatch.sync.budgets import BudgetStore

__all__ = [
    "Budget",
    "BudgetSpec",
    "OutOfBudget",
    "RateLearning",
    "SharedRate",
    "budget_spec",
    "rates_in_use",
    "request_interval",
]

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
# Requests leave a little wider apart than `<CARRIER>_RATE_LIMIT` allows: network and
# scheduling jitter bunch evenly spaced requests up on arrival. What that can cost depends on
# how the carrier counts: a window of one second holding N calls (FedEx's 1,400 per 10 s,
# ShipEngine's 200 a minute, the emulator's bucket of a second's calls) absorbs a request
# early by the jitter as long as the window's N are not exceeded, so the margin is the
# jitter spread over the N calls of a second; a carrier metering 1 call at a time (DHL:
# 1/s) answers a request early by the jitter with 429 and a whole second of Retry-After,
# so at rates of 1/s and below the whole jitter is added to every interval.
JITTER = 0.025  # seconds: arrival jitter allowed for (loopback: a few ms; 25 ms to spare)


def request_interval(rate: float) -> float:
    """Seconds between two requests at `rate` a second, with the jitter margin above."""
    return 1 / rate + JITTER / max(1.0, rate)


# A counted window is reserved from the store this many seconds of requests at a time, so
# the store is asked about once every two seconds, not per request; but never more than
# MAX_CHUNK, nor more than 1/CHUNK_SHARE of the smallest counted window: calls one engine
# holds are calls another cannot make until they are given back.
CHUNK_SECONDS = 2.0
MAX_CHUNK = 50
CHUNK_SHARE = 100
STORE_RETRY = timedelta(minutes=1)  # a provider with counted windows waits out a store outage


# provider -> the request rate its newest budget in this process uses (health reads it)
_IN_USE: dict[str, float] = {}


def rates_in_use() -> dict[str, float]:
    """The request rate each provider's budget in this process uses now (lower than
    configured after 429s); empty where no engine ran."""
    return dict(_IN_USE)


@dataclass(frozen=True, slots=True)
class BudgetSpec:
    concurrency: int
    rate: float  # requests per second: the per-second rate and every shorter window's pace
    windows: tuple[QuotaWindow, ...] = ()  # every window of <CARRIER>_QUOTA, shortest first
    paced: bool = False  # counted windows spent evenly across their length (QUOTA_PACING)

    @property
    def counted(self) -> tuple[QuotaWindow, ...]:
        return tuple(window for window in self.windows if window.counted)


def budget_spec(
    settings: Settings, provider_code: str, *, concurrency: int | None = None
) -> BudgetSpec:
    """The provider's budget from the settings; `concurrency` (the `--concurrency` option)
    lowers or raises the in-flight cap, never the request rate. The per-second rate is the
    quota's `N/s` window when it has one, else `<CARRIER>_RATE_LIMIT`."""
    configured = getattr(settings, f"{provider_code}_max_concurrency", DEFAULT_CONCURRENCY)
    windows = parse_quota(str(getattr(settings, f"{provider_code}_quota", "")))
    second = [window.rate for window in windows if window.seconds == 1]
    per_second = (
        second[0]
        if second
        else float(getattr(settings, f"{provider_code}_rate_limit", DEFAULT_RATE))
    )
    paces = [window.rate for window in windows if not window.counted]
    return BudgetSpec(
        concurrency=concurrency or int(configured),
        rate=min([per_second, *paces]),
        windows=windows,
        paced=settings.quota_pacing,
    )


@dataclass(frozen=True, slots=True)
class RateLearning:
    """How the rate follows a carrier that answers 429 below the configured rate."""

    signals: int = 3  # 429s (short or no Retry-After) ...
    within: float = 60.0  # ... within this many seconds lower the rate
    factor: float = 0.5  # to this share of the rate used
    floor: float = 1 / 32  # never below this share of the configured rate
    quiet: float = 600.0  # seconds without a 429 before the rate rises again
    step: float = 1.5  # by this factor per quiet period, up to the configured rate


class Schedule:
    """Requests `interval` seconds apart, each taking the next free slot of a schedule (the
    local twin of the Redis script above: a GCRA without burst). A slot is fixed when it is
    taken, so a request woken a little late does not push back the ones after it: a leaky
    bucket of one call (aiolimiter's `AsyncLimiter(1, interval)`) starts counting the next
    interval only when the late one leaves, and so loses every wake-up delay, a few percent
    of the rate at 20 requests a second. The jitter margin of `request_interval` covers a
    late request followed by one on time."""

    def __init__(self, interval: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._next_free = -math.inf

    async def acquire(self) -> None:
        now = self.clock()
        start = max(self._next_free, now)
        self._next_free = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)


class OutOfBudget(Exception):  # noqa: N818 - a signal, not an error
    """The provider may not be called before `until`: its counted quota is spent (its
    shipments wait, and the pass is not the worse for it), its pace line allows no call yet
    (`paced`), or the carrier said so (`carrier_asked`: they are deferred as in an outage).
    Nothing counts against a shipment."""

    def __init__(
        self,
        provider: str,
        until: datetime,
        reason: str,
        *,
        carrier_asked: bool = False,
        paced: bool = False,
    ) -> None:
        super().__init__(f"{provider}: {reason}; next call after {until:%Y-%m-%d %H:%M:%S}Z")
        self.provider = provider
        self.until = until
        self.reason = reason
        self.carrier_asked = carrier_asked
        self.paced = paced


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
    """Acquire before every request (every retry too). Without a `store` the counted
    windows are not enforced (the sync engine always gives one)."""

    def __init__(
        self,
        spec: BudgetSpec,
        *,
        provider: str = "",
        shared: SharedRate | None = None,
        store: BudgetStore | None = None,
        learning: RateLearning | None = None,
        max_wait: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.spec = spec
        self.provider = provider
        self.shared = shared
        self.store = store
        self.learning = learning or RateLearning()
        self.max_wait = max_wait  # a longer wait the carrier asks for blocks the provider
        self.clock = clock
        self.now = now
        self._semaphore = asyncio.Semaphore(spec.concurrency)
        self._refill = asyncio.Lock()
        self.in_flight = 0
        self.waiting = 0  # requests waiting for their turn (slot)
        self.held = 0  # calls reserved from the counted windows, not yet made
        self._held_at = now()
        self.blocked_until: datetime | None = None
        self.block_reason = ""
        self.carrier_asked = False  # the block is the carrier's (a 429), not the quota's
        self._signals: deque[float] = deque()
        self._last_signal = -math.inf
        self._changed = clock()
        self.rate = spec.rate
        self._set_rate(spec.rate)
        CARRIER_RATE.labels(provider=provider or "-", rate="configured").set(spec.rate)

    def _set_rate(self, rate: float) -> None:
        self.rate = rate
        # One token at a time, refilled every 1/rate seconds: requests are spaced evenly.
        self.interval = request_interval(rate)
        self._schedule = Schedule(self.interval)  # real time: asyncio.sleep waits in it
        if self.provider:
            _IN_USE[self.provider] = rate
        CARRIER_RATE.labels(provider=self.provider or "-", rate="used").set(rate)

    @property
    def lowered(self) -> bool:
        """The rate in use is below the configured one (learned from 429s)."""
        return self.rate < self.spec.rate

    async def _wait_for_rate(self) -> None:
        if self.shared is not None:
            wait = await self.shared.reserve(self.provider, self.interval)
            if wait is not None:
                if wait > 0:
                    await asyncio.sleep(wait)
                return
        await self._schedule.acquire()

    def stopped(self) -> OutOfBudget | None:
        """Why the provider may not be called for longer than `max_wait`, if it may not."""
        until = self.blocked_until
        if until is not None and (until - self.now()).total_seconds() > self.max_wait:
            asked = self.carrier_asked
            return OutOfBudget(self.provider, until, self.block_reason, carrier_asked=asked)
        return None

    async def _wait_for_block(self) -> None:
        while self.blocked_until is not None:
            wait = (self.blocked_until - self.now()).total_seconds()
            if wait <= 0:
                self.blocked_until = None
                return
            if wait > self.max_wait:
                asked = self.carrier_asked
                raise OutOfBudget(
                    self.provider, self.blocked_until, self.block_reason, carrier_asked=asked
                )
            await asyncio.sleep(wait)

    def _same_windows(self, then: datetime, now: datetime) -> bool:
        return all(w.bounds(then)[0] == w.bounds(now)[0] for w in self.spec.counted)

    async def _take_allowance(self) -> None:
        if self.store is None:
            return
        async with self._refill:
            await self._hold()
            self.held -= 1

    async def _hold(self) -> None:
        """Hold at least one call of the counted windows: reserve a chunk when none is held
        (`OutOfBudget` when the store refuses)."""
        assert self.store is not None
        counted = self.spec.counted
        now = self.now()
        if self.held and not self._same_windows(self._held_at, now):
            self.held = 0  # reserved from windows that have ended: the new ones count
        if self.held:
            return
        await self._wait_for_block()  # another engine's block is seen at the store
        wanted = self._chunk()
        try:
            grant = await self.store.reserve(
                self.provider, counted, wanted, now, paced=self.spec.paced
            )
        except Exception as error:  # the store is down: never call uncounted
            if not counted:  # nothing to count: ask again after this many requests
                self.held, self._held_at = wanted, now
                return
            log.warning(
                "budget store unavailable, provider deferred",
                carrier=self.provider,
                error=f"{type(error).__name__}: {error}",
            )
            until = now + STORE_RETRY
            reason = f"budget store unavailable ({type(error).__name__})"
            raise OutOfBudget(self.provider, until, reason) from error
        if not grant.granted:
            until = grant.until or now + timedelta(minutes=1)
            if grant.paced:  # the line moves on its own: nothing to remember
                raise OutOfBudget(self.provider, until, grant.reason or "paced", paced=True)
            self.blocked_until, self.block_reason = until, grant.reason or "quota spent"
            self.carrier_asked = grant.carrier_asked
            raise OutOfBudget(
                self.provider, until, self.block_reason, carrier_asked=self.carrier_asked
            )
        self.held, self._held_at = grant.granted, now

    async def ready(self) -> tuple[int, OutOfBudget | None]:
        """Before claiming shipments for a paced provider: how many calls it may start now
        (held, less those already waiting for a turn), or, when its pace line allows none
        yet, until when. `(-1, None)`: not limited here (no paced window; a spent window or
        a block is met by the call, which defers its batch to the reset)."""
        if self.store is None or not self.spec.counted or not self.spec.paced:
            return -1, None
        async with self._refill:
            try:
                await self._hold()
            except OutOfBudget as out:
                return (0, out) if out.paced else (-1, None)
            return max(0, self.held - self.waiting), None

    def _chunk(self) -> int:
        share = [window.amount // CHUNK_SHARE for window in self.spec.counted]
        return max(1, min([MAX_CHUNK, math.ceil(self.rate * CHUNK_SECONDS), *share]))

    async def give_back(self) -> None:
        """Return the reserved calls not made (end of a pass), while their windows last."""
        async with self._refill:
            held, self.held = self.held, 0
            if held and self.store is not None:
                if self._same_windows(self._held_at, self.now()):
                    await self.store.refund(self.provider, self.spec.counted, held, self._held_at)

    async def rate_limited(self, error: RateLimitedError) -> OutOfBudget | None:
        """Learn from a 429: a wait longer than `max_wait` blocks the provider (in the store,
        for every engine) and is returned; a shorter one holds this engine's requests for it
        and counts toward lowering the rate."""
        now = self.now()
        retry_after = error.retry_after
        if retry_after is not None and retry_after > self.max_wait:
            # Whole seconds, as Retry-After and HTTP dates are: "until midnight" is midnight.
            until = (now + timedelta(seconds=retry_after, milliseconds=500)).replace(microsecond=0)
            reason = f"the carrier asked to wait ({error.message})"
            self.blocked_until, self.block_reason, self.carrier_asked = until, reason, True
            log.warning(
                "carrier stopped until it allows calls again",
                carrier=self.provider,
                until=until.isoformat(),
            )
            if self.store is not None:
                try:
                    await self.store.block(self.provider, until, reason)
                except Exception:  # this engine keeps the block; the others meet the 429
                    log.exception("could not store the block", carrier=self.provider)
            return OutOfBudget(self.provider, until, reason, carrier_asked=True)
        if retry_after:
            self.blocked_until = max(
                self.blocked_until or now, now + timedelta(seconds=retry_after)
            )
            self.block_reason, self.carrier_asked = "the carrier asked to wait", True
        self._signal()
        return None

    def _signal(self) -> None:
        moment = self.clock()
        policy = self.learning
        self._last_signal = moment
        self._signals.append(moment)
        while self._signals and self._signals[0] < moment - policy.within:
            self._signals.popleft()
        if len(self._signals) < policy.signals:
            return
        lowered = max(self.spec.rate * policy.floor, self.rate * policy.factor)
        self._signals.clear()
        self._changed = moment
        if lowered < self.rate:
            self._set_rate(lowered)
            log.warning(
                "carrier keeps answering 429 below the configured rate: rate lowered",
                carrier=self.provider,
                configured_per_s=round(self.spec.rate, 4),
                rate_per_s=round(lowered, 4),
            )

    def _recover(self) -> None:
        moment, policy = self.clock(), self.learning
        quiet = min(moment - self._last_signal, moment - self._changed)
        if self.rate < self.spec.rate and quiet >= policy.quiet:
            self._changed = moment
            self._set_rate(min(self.spec.rate, self.rate * policy.step))
            log.info(
                "no 429 for a while: rate raised",
                carrier=self.provider,
                configured_per_s=round(self.spec.rate, 4),
                rate_per_s=round(self.rate, 4),
            )

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Raises `OutOfBudget` when the provider may not be called for longer than
        `max_wait`; otherwise waits for its turn."""
        self.waiting += 1
        taken = False
        try:
            async with self._semaphore:
                await self._wait_for_block()
                self._recover()
                await self._take_allowance()
                taken, self.waiting = True, self.waiting - 1
                await self._wait_for_rate()
                self.in_flight += 1
                try:
                    yield
                finally:
                    self.in_flight -= 1
        finally:
            if not taken:
                self.waiting -= 1
