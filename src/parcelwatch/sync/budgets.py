"""Where a provider's counted quota windows are spent: the database (default) or Redis (when
REDIS_URL is set), shared by every engine of the instance, so neither a restart nor a second
engine can spend an hour or a day twice.

A reservation takes up to `wanted` calls from every counted window of a provider at once, or
none: one transaction that reads and raises the counters (SQLite `BEGIN IMMEDIATE`,
PostgreSQL `SELECT ... FOR UPDATE` on the rows), or one Lua script in Redis. It grants
`min(wanted, what every window has left)`; an engine holds what it was granted and gives
back what it did not use (`refund`, only while the windows are still the same), so the
counters may briefly run ahead of the calls made, never behind them.

A block (the carrier said "retry after ...") is stored the same way and refuses every
reservation until it ends.

Paced (`QUOTA_PACING`, the default), a window is spent evenly across its length: by a
moment `t` into it at most `amount x (t + PACE_AHEAD x length) / length` may be spent, so a
day's allowance is not gone in its first minutes and an idle hour's calls are still there
later. A reservation past that line is refused until the line allows the next call
(`Grant.paced`); the engine leaves those shipments due, claiming them as calls come free.

The windows are fixed on the carrier's clock (`QuotaWindow.bounds`): `limits`' fixed windows
start at the first hit and its storages are memory, Redis and the like, not SQL, and it
cannot take several windows in one step; so the counting is these few statements.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import redis
from redis.asyncio import Redis
from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from parcelwatch.carriers.quotas import QuotaWindow
from parcelwatch.db import begin_write
from parcelwatch.models import CarrierBlock, CarrierBudget

__all__ = [
    "PACE_AHEAD",
    "BudgetStore",
    "DatabaseBudgets",
    "Grant",
    "RedisBudgets",
    "WindowState",
    "next_paced_call",
    "paced_allowance",
    "read_from_db",
    "read_from_redis",
    "reserve_in_db",
]

RunInDb = Callable[..., Awaitable[Any]]
REDIS_PREFIX = "parcelwatch:budget:"
# How far ahead of the even line a paced window may be spent: 1/48 of it (30 minutes of a
# day, 75 seconds of an hour), so a burst of urgent checks never waits for the line.
PACE_AHEAD = 1 / 48


@dataclass(frozen=True, slots=True)
class Grant:
    """Calls granted; when none: until when (a window's reset, or a block) and why, and
    whether the carrier asked for it (a block) rather than the counted quota being spent."""

    granted: int
    until: datetime | None = None
    reason: str | None = None
    carrier_asked: bool = False
    paced: bool = False  # refused by the pace line, not a spent window


def paced_allowance(window: QuotaWindow, now: datetime) -> int:
    """What a paced window may have spent by `now`: its even line plus `PACE_AHEAD`."""
    start, _ = window.bounds(now)
    share = (now - start).total_seconds() / window.seconds + PACE_AHEAD
    return min(window.amount, max(1, math.ceil(window.amount * share)))


def next_paced_call(window: QuotaWindow, spent: int, now: datetime) -> datetime:
    """When the pace line allows call number `spent + 1` of the window `now` falls in."""
    start, resets = window.bounds(now)
    ahead = PACE_AHEAD * window.seconds
    seconds = spent * window.seconds / window.amount - ahead
    return min(resets, max(now, start + timedelta(seconds=seconds + 0.001)))


def _pace(
    windows: Sequence[QuotaWindow], spent: dict[str, int], granted: int, now: datetime
) -> Grant | None:
    """The pace line's refusal when `granted` is 0 for it (`None`: within the line)."""
    if granted > 0:
        return None
    until = max(next_paced_call(w, spent[w.name], now) for w in windows)
    return Grant(0, until, "paced across the window", paced=True)


@dataclass(frozen=True, slots=True)
class WindowState:
    """One counted window as stored now (the current window: spent 0 once it reset)."""

    window: QuotaWindow
    spent: int
    resets_at: datetime

    @property
    def remaining(self) -> int:
        return max(0, self.window.amount - self.spent)


class BudgetStore(Protocol):
    async def reserve(
        self,
        provider: str,
        windows: Sequence[QuotaWindow],
        wanted: int,
        now: datetime,
        *,
        paced: bool = False,
    ) -> Grant: ...

    async def refund(
        self, provider: str, windows: Sequence[QuotaWindow], count: int, reserved_at: datetime
    ) -> None: ...

    async def block(self, provider: str, until: datetime, reason: str) -> None: ...


def _exhausted(windows: Sequence[QuotaWindow], left: dict[str, int], now: datetime) -> datetime:
    """When the last of the spent windows resets (asking earlier would be refused)."""
    return max(w.bounds(now)[1] for w in windows if left[w.name] <= 0)


# -- the database -----------------------------------------------------------------------


def _insert(db: Engine) -> Any:
    return postgresql.insert if db.dialect.name == "postgresql" else sqlite.insert


def reserve_in_db(
    db: Engine,
    *,
    provider: str,
    windows: Sequence[QuotaWindow],
    wanted: int,
    now: datetime,
    paced: bool = False,
) -> Grant:
    with Session(db) as session, session.begin():
        if windows:  # else only a read: is the provider blocked?
            begin_write(session)
        block = session.get(CarrierBlock, provider)
        if block is not None and block.blocked_until > now:
            return Grant(0, block.blocked_until, block.reason, carrier_asked=True)
        if not windows:
            return Grant(wanted)
        for window in windows:
            start, resets = window.bounds(now)
            values = {"provider": provider, "window": window.name, "period_start": start}
            values |= {"resets_at": resets, "spent": 0, "quota": window.amount, "updated_at": now}
            session.execute(_insert(db)(CarrierBudget).values(values).on_conflict_do_nothing())
        rows = {
            row.window: row
            for row in session.scalars(
                select(CarrierBudget)
                .where(
                    CarrierBudget.provider == provider,
                    CarrierBudget.window.in_([w.name for w in windows]),
                )
                .order_by(CarrierBudget.window)  # one lock order for every engine
                .with_for_update()
            )
        }
        left: dict[str, int] = {}
        ahead: dict[str, int] = {}  # what the pace line allows beyond what was spent
        spent: dict[str, int] = {}
        for window in windows:
            row = rows[window.name]
            start, resets = window.bounds(now)
            if row.period_start != start:
                row.period_start, row.resets_at, row.spent = start, resets, 0
            row.quota = window.amount
            left[window.name] = window.amount - row.spent
            spent[window.name] = row.spent
            ahead[window.name] = paced_allowance(window, now) - row.spent
        if min(left.values()) <= 0:
            return Grant(0, _exhausted(windows, left, now), "quota spent")
        granted = max(0, min(wanted, *left.values(), *(ahead.values() if paced else ())))
        refused = _pace(windows, spent, granted, now) if paced else None
        if refused is not None:
            return refused
        for counter in rows.values():
            counter.spent += granted
            counter.updated_at = now
        return Grant(granted)


def refund_in_db(
    db: Engine,
    *,
    provider: str,
    windows: Sequence[QuotaWindow],
    count: int,
    reserved_at: datetime,
) -> None:
    with Session(db) as session, session.begin():
        begin_write(session)
        for window in sorted(windows, key=lambda w: w.name):  # the lock order `reserve` uses
            row = session.get(CarrierBudget, (provider, window.name), with_for_update=True)
            if row is not None and row.period_start == window.bounds(reserved_at)[0]:
                row.spent = max(0, row.spent - count)


def block_in_db(db: Engine, *, provider: str, until: datetime, reason: str) -> None:
    with Session(db) as session, session.begin():
        begin_write(session)
        block = session.get(CarrierBlock, provider, with_for_update=True)
        if block is None:
            session.add(CarrierBlock(provider=provider, blocked_until=until, reason=reason[:300]))
        elif block.blocked_until < until:
            block.blocked_until, block.reason = until, reason[:300]


def read_from_db(
    session: Session, provider: str, windows: Sequence[QuotaWindow], now: datetime
) -> tuple[list[WindowState], CarrierBlock | None]:
    """The provider's counted windows as they stand, and its block while it lasts."""
    rows = {
        row.window: row
        for row in session.scalars(select(CarrierBudget).where(CarrierBudget.provider == provider))
    }
    states = []
    for window in windows:
        start, resets = window.bounds(now)
        row = rows.get(window.name)
        spent = row.spent if row is not None and row.period_start == start else 0
        states.append(WindowState(window, spent, resets))
    block = session.get(CarrierBlock, provider)
    return states, block if block is not None and block.blocked_until > now else None


class DatabaseBudgets:
    """The database store; every statement runs in the engine's database thread."""

    def __init__(self, db: Engine, run_in_db: RunInDb) -> None:
        self.db = db
        self.run_in_db = run_in_db

    async def reserve(
        self,
        provider: str,
        windows: Sequence[QuotaWindow],
        wanted: int,
        now: datetime,
        *,
        paced: bool = False,
    ) -> Grant:
        grant: Grant = await self.run_in_db(
            reserve_in_db,
            self.db,
            provider=provider,
            windows=windows,
            wanted=wanted,
            now=now,
            paced=paced,
        )
        return grant

    async def refund(
        self, provider: str, windows: Sequence[QuotaWindow], count: int, reserved_at: datetime
    ) -> None:
        await self.run_in_db(
            refund_in_db,
            self.db,
            provider=provider,
            windows=windows,
            count=count,
            reserved_at=reserved_at,
        )

    async def block(self, provider: str, until: datetime, reason: str) -> None:
        await self.run_in_db(block_in_db, self.db, provider=provider, until=until, reason=reason)


# -- Redis ---------------------------------------------------------------------------------

# KEYS[1]: the block; KEYS[2..]: the current window counters. ARGV[1]: wanted; then per
# window its amount, the milliseconds it lives and what the pace line allows by now (the
# amount when not paced). Returns {granted, block or ""}.
_RESERVE = """
local blocked = redis.call('GET', KEYS[1])
if blocked then return {0, blocked} end
local granted = tonumber(ARGV[1])
for i = 2, #KEYS do
  local spent = tonumber(redis.call('GET', KEYS[i]) or '0')
  granted = math.min(granted, tonumber(ARGV[3 * i - 4]) - spent, tonumber(ARGV[3 * i - 2]) - spent)
end
if granted < 0 then granted = 0 end
if granted > 0 then
  for i = 2, #KEYS do
    redis.call('INCRBY', KEYS[i], granted)
    redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[3 * i - 3]))
  end
end
return {granted, ''}
"""
_REFUND = """
for i = 1, #KEYS do
  local spent = tonumber(redis.call('GET', KEYS[i]) or '0')
  if spent > 0 then redis.call('DECRBY', KEYS[i], math.min(spent, tonumber(ARGV[1]))) end
end
return 0
"""
# KEYS[1]: the block; ARGV: until (unix seconds), milliseconds to live, reason. Keeps the later.
_BLOCK = """
local current = redis.call('GET', KEYS[1])
if current and tonumber(string.match(current, '^[^ ]+')) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[3], 'PX', ARGV[2])
return 1
"""


def _key(provider: str, window: QuotaWindow, now: datetime) -> str:
    start = window.bounds(now)[0]
    return f"{REDIS_PREFIX}{provider}:{window.name}:{int(start.timestamp())}"


def _block_key(provider: str) -> str:
    return f"{REDIS_PREFIX}{provider}:blocked"


def _parse_block(value: bytes | str) -> tuple[datetime, str]:
    text = value.decode() if isinstance(value, bytes) else value
    until, _, reason = text.partition(" ")
    return datetime.fromtimestamp(float(until), UTC), reason


def _ttl_ms(window: QuotaWindow, now: datetime) -> int:
    return int((window.bounds(now)[1] - now).total_seconds() * 1000) + 60_000


class RedisBudgets:
    """The Redis store: one counter per provider and window start, expiring after it."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self._reserve = client.register_script(_RESERVE)
        self._refund = client.register_script(_REFUND)
        self._block = client.register_script(_BLOCK)

    async def reserve(
        self,
        provider: str,
        windows: Sequence[QuotaWindow],
        wanted: int,
        now: datetime,
        *,
        paced: bool = False,
    ) -> Grant:
        keys = [_block_key(provider), *(_key(provider, w, now) for w in windows)]
        args: list[Any] = [wanted]
        for window in windows:
            line = paced_allowance(window, now) if paced else window.amount
            args += [window.amount, _ttl_ms(window, now), line]
        granted, blocked = await self._reserve(keys=keys, args=args)
        if blocked:
            until, reason = _parse_block(blocked)
            return Grant(0, until, reason, carrier_asked=True)
        if int(granted) == 0 and windows:
            values = await self.client.mget(keys[1:])
            spent = {w.name: int(v or 0) for w, v in zip(windows, values, strict=True)}
            left = {w.name: w.amount - spent[w.name] for w in windows}
            if min(left.values()) <= 0 or not paced:
                return Grant(0, _exhausted(windows, left, now), "quota spent")
            refused = _pace(windows, spent, 0, now)
            assert refused is not None
            return refused
        return Grant(int(granted))

    async def refund(
        self, provider: str, windows: Sequence[QuotaWindow], count: int, reserved_at: datetime
    ) -> None:
        keys = [_key(provider, w, reserved_at) for w in windows]
        if keys:
            await self._refund(keys=keys, args=[count])

    async def block(self, provider: str, until: datetime, reason: str) -> None:
        ttl = max(1, int((until - datetime.now(UTC)).total_seconds() * 1000))
        await self._block(keys=[_block_key(provider)], args=[until.timestamp(), ttl, reason])


def read_from_redis(
    client: redis.Redis, provider: str, windows: Sequence[QuotaWindow], now: datetime
) -> tuple[list[WindowState], tuple[datetime, str] | None]:
    """The provider's counted windows and block, as `read_from_db` (a synchronous client)."""
    keys = [_key(provider, w, now) for w in windows]
    values = client.mget([*keys, _block_key(provider)])
    states = [
        WindowState(w, int(v or 0), w.bounds(now)[1])
        for w, v in zip(windows, values[:-1], strict=True)
    ]
    block = _parse_block(values[-1]) if values[-1] else None
    return states, block if block is not None and block[0] > now else None
