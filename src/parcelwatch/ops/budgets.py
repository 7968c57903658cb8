"""Each configured provider's budget as it stands, read from the store every engine spends
from (the database, or Redis with REDIS_URL): its windows (limit; for the hour and day
windows what was spent, what remains and when it resets), its per-second rate (and the
lower one 429s taught this process), and a stop the carrier asked for. `/metrics`, the
Operations page, `sync --stats` and the health check show the same figures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from redis.exceptions import RedisError
from sqlalchemy.orm import Session

from parcelwatch.carriers.providers import PROVIDERS
from parcelwatch.carriers.registry import missing_credentials
from parcelwatch.config import Settings
from parcelwatch.domain import utcnow
from parcelwatch.logs import get_logger
from parcelwatch.ops.checks import Check, Level
from parcelwatch.sync.budgets import WindowState, paced_allowance, read_from_db, read_from_redis
from parcelwatch.sync.limits import budget_spec, rates_in_use

__all__ = ["ProviderBudget", "WindowFigures", "budget_check", "provider_budgets"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class WindowFigures:
    window: str  # as configured: 250/day@00:00Z
    name: str  # its length: 1s, 1m, 1h, 1d
    limit: int
    counted: bool  # hour and day windows; shorter ones pace the requests
    spent: int | None = None
    remaining: int | None = None
    resets_at: datetime | None = None
    allowed_now: int | None = None  # paced: what the even line allows spent by now

    def as_dict(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "name": self.name,
            "limit": self.limit,
            "counted": self.counted,
            "spent": self.spent,
            "remaining": self.remaining,
            "resets_at": self.resets_at.isoformat() if self.resets_at else None,
            "allowed_now": self.allowed_now,
        }


@dataclass(frozen=True, slots=True)
class ProviderBudget:
    provider: str
    name: str
    rate: float  # requests a second configured (the per-second window and shorter windows)
    rate_in_use: float | None  # lower when 429s taught this process a lower rate
    windows: list[WindowFigures]
    blocked_until: datetime | None = None
    blocked_reason: str | None = None
    note: str | None = None  # the store could not be read

    @property
    def exhausted(self) -> list[WindowFigures]:
        return [w for w in self.windows if w.counted and w.remaining == 0]

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "rate_per_s": self.rate,
            "rate_in_use_per_s": self.rate_in_use,
            "windows": [window.as_dict() for window in self.windows],
            "blocked_until": self.blocked_until.isoformat() if self.blocked_until else None,
            "blocked_reason": self.blocked_reason,
            "note": self.note,
        }


def _figures(
    state: WindowState | None, window: Any, *, paced: bool, now: datetime
) -> WindowFigures:
    if state is None:
        return WindowFigures(window.text, window.name, window.amount, counted=False)
    return WindowFigures(
        window.text,
        window.name,
        window.amount,
        counted=True,
        spent=state.spent,
        remaining=state.remaining,
        resets_at=state.resets_at,
        allowed_now=paced_allowance(window, now) if paced else None,
    )


def provider_budgets(
    session: Session, settings: Settings, *, now: datetime | None = None
) -> list[ProviderBudget]:
    """The budget of every configured provider, in the providers' order."""
    now = now or utcnow()
    in_use = rates_in_use()
    client = (
        redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
        if settings.redis_url
        else None
    )
    found = []
    try:
        for spec in PROVIDERS:
            if missing_credentials(spec, settings):
                continue
            budget = budget_spec(settings, spec.code)
            note, until, reason = None, None, None
            states: list[WindowState] = []
            try:
                if client is not None:
                    states, block = read_from_redis(client, spec.code, budget.counted, now)
                    until, reason = block or (None, None)
                else:
                    states, stored = read_from_db(session, spec.code, budget.counted, now)
                    if stored is not None:
                        until, reason = stored.blocked_until, stored.reason
            except RedisError as error:
                note = f"Redis unreachable: {type(error).__name__}"
            by_name = {state.window.name: state for state in states}
            windows = [
                _figures(by_name.get(w.name), w, paced=budget.paced, now=now)
                for w in budget.windows
            ]
            used = in_use.get(spec.code)
            found.append(
                ProviderBudget(
                    provider=spec.code,
                    name=spec.name,
                    rate=budget.rate,
                    rate_in_use=used,
                    windows=windows,
                    blocked_until=until,
                    blocked_reason=reason,
                    note=note,
                )
            )
    finally:
        if client is not None:
            client.close()
    return found


def budget_check(budgets: list[ProviderBudget]) -> Check:
    """`carrier_budgets`: a warning while the carrier told a provider to stop (429 asking to
    wait) or it runs below its configured rate after 429s: the configured budget is more than
    the carrier allows. A spent window is named but ok: spending the allowance is the point,
    and its shipments wait for the reset."""
    problems, spent = [], []
    for budget in budgets:
        if budget.blocked_until is not None:
            problems.append(
                f"{budget.provider} stopped by the carrier until "
                f"{budget.blocked_until:%Y-%m-%d %H:%M}Z ({budget.blocked_reason})"
            )
        for window in budget.exhausted:
            resets = f"{window.resets_at:%Y-%m-%d %H:%M}Z" if window.resets_at else "?"
            spent.append(f"{budget.provider} spent its {window.window} (resets {resets})")
        if budget.rate_in_use is not None and budget.rate_in_use < budget.rate:
            problems.append(
                f"{budget.provider} lowered to {budget.rate_in_use:.3g}/s after 429s "
                f"(configured {budget.rate:.3g}/s)"
            )
    figures = {budget.provider: budget.as_dict() for budget in budgets}
    if problems:
        return Check("carrier_budgets", Level.WARNING, "; ".join(problems + spent), figures)
    message = "; ".join(spent) if spent else "every provider within its budget"
    return Check("carrier_budgets", Level.OK, message, figures)
