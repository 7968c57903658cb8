"""When to check a shipment next, from what the last check learned (pure functions).

The sync engine plans the next check from its provider's budget (`sync.planning`); this
fixed schedule is for what is written without a plan (a ShipEngine push, an engine that has
not planned yet) and decides, with a plan too, when failures are retried and when a silent
shipment expires.

Fixed policy (documented in the README):
- final statuses (delivered, returned, cancelled, expired): never again (`next_check_at` NULL);
- out for delivery or delivery attempted: in `SOON` (30 minutes);
- in transit with an estimated delivery today (UTC) or earlier: in `SOON` too, so the day's
  "out for delivery" is known within half an hour;
- anything else that moved in the last two days: `UPDATE_INTERVAL`;
- no movement for days: the interval doubles per silent day, capped at `IDLE_CAP` (or the
  interval when that is longer);
- silent for `AUTO_UPDATE_EXPIRE_DAYS` (no event, or no event since registration): `expired`,
  keeping the last real status in the detail;
- the shipment's own failures: `FAILURE_BASE` doubling per consecutive failure, capped at
  `FAILURE_CAP`; reaching `AUTO_UPDATE_MAX_RETRIES` disables auto-refresh with the reason kept;
- carrier-wide failures (auth, outage, rate limit, open breaker): deferred, never counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from parcelwatch.config import Settings
from parcelwatch.domain import ShipmentStatus
from parcelwatch.notifications.outbox import NotifyPolicy

__all__ = [
    "FAILURE_BASE",
    "FAILURE_CAP",
    "IDLE_CAP",
    "SOON",
    "SchedulePolicy",
    "expiry_detail",
    "failure_delay",
    "is_silent_too_long",
    "next_check_after_success",
]

SOON = timedelta(minutes=30)
IDLE_CAP = timedelta(hours=12)
FAILURE_BASE = timedelta(minutes=5)
FAILURE_CAP = timedelta(hours=12)
_SOON_STATUSES = frozenset({ShipmentStatus.OUT_FOR_DELIVERY, ShipmentStatus.DELIVERY_ATTEMPTED})


@dataclass(frozen=True, slots=True)
class SchedulePolicy:
    """The settings a sync write depends on: the schedule, and what it tells people."""

    update_interval: timedelta = timedelta(hours=1)
    expire_after: timedelta = timedelta(days=14)
    max_failures: int = 10
    notify: NotifyPolicy = field(default_factory=NotifyPolicy)

    @classmethod
    def from_settings(cls, settings: Settings) -> SchedulePolicy:
        return cls(
            update_interval=settings.update_interval,
            expire_after=timedelta(days=settings.auto_update_expire_days),
            max_failures=settings.auto_update_max_retries,
            notify=NotifyPolicy.from_settings(settings),
        )


def next_check_after_success(
    status: ShipmentStatus,
    *,
    last_movement: datetime,
    now: datetime,
    policy: SchedulePolicy,
    estimated_delivery: datetime | None = None,
) -> datetime | None:
    """The next check for a shipment the carrier just answered for; None when final."""
    if status.is_final:
        return None
    if status in _SOON_STATUSES or _arriving_today(status, estimated_delivery, now):
        return now + min(SOON, policy.update_interval)
    idle_days = max(0, (now - last_movement).days)
    if idle_days < 2:
        return now + policy.update_interval
    factor: int = 2 ** min(idle_days - 1, 16)
    cap = max(IDLE_CAP, policy.update_interval)
    backoff: timedelta = policy.update_interval * factor
    return now + min(backoff, cap)


def _arriving_today(
    status: ShipmentStatus, estimated_delivery: datetime | None, now: datetime
) -> bool:
    if status is not ShipmentStatus.IN_TRANSIT or estimated_delivery is None:
        return False
    tomorrow = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return estimated_delivery < tomorrow


def failure_delay(consecutive_failures: int) -> timedelta:
    """Back-off after the shipment's own n-th consecutive failure (n >= 1)."""
    exponent = max(0, min(consecutive_failures - 1, 16))
    delay: timedelta = FAILURE_BASE * int(2**exponent)
    return min(delay, FAILURE_CAP)


def is_silent_too_long(*, last_movement: datetime, now: datetime, policy: SchedulePolicy) -> bool:
    return now - last_movement >= policy.expire_after


def expiry_detail(status: ShipmentStatus, detail: str | None, *, policy: SchedulePolicy) -> str:
    """The detail an expired shipment keeps: why it expired and its last real status."""
    days = policy.expire_after.days
    last = f"{status.value}: {detail}" if detail else status.value
    return f"No carrier update for {days} days; tracking stopped. Last status: {last}"
