"""When to check each shipment, planned from the provider's budget (pure functions).

A check is worth what it is likely to find, weighted by how much that matters to a person:
`check_value` is that expected value per hour for one shipment now, from rules that hold for
real carriers, not for one emulator:

- **out for delivery** happens early on the delivery day, local time, and **delivered** the
  same day: a parcel in transit whose estimated delivery is today (in the local time of its
  newest scan) is worth most from 07:00 to noon, less in the afternoon, little at night;
- once out for delivery, until delivered (or attempted), through the day;
- after a failed attempt, the next try comes the next morning;
- a label just created is handed over within about a day, and its first scan brings the
  estimate the delivery day is planned from: worth a look about then;
- in transit with the estimate days away, not found yet, held, waiting at a pickup point:
  the carrier has little to say that a person waits for, so little value;
- a parcel that has not moved for `STILL` is worth half (a parcel held for days).

Given a provider's active shipments and the checks an hour it may spend, the interval of each
shipment follows the square-root rule (the polling that minimises the mean value-weighted
delay for a fixed number of checks: interval proportional to 1/sqrt(value)): `plan_scale`
finds the constant that spends exactly the allowance over the current population, within
[`MIN_INTERVAL` (or `UPDATE_INTERVAL` when shorter), cap] (the cap is `MAX_INTERVAL`, longer
when the allowance cannot check everyone that often). `planned_next_check` puts the next check
`scale / sqrt(value)` from now, or, when the value rises before that (07:00 local on the
estimated day, the morning after an attempt), half an interval after the rise, so the
morning's "out for delivery" is looked for when it is likely; a parcel days from its estimate
waits for its morning.

The checks an hour (`checks_per_hour`) are what a plain hourly poller would spend
(`UPDATE_INTERVAL`: every active shipment once), or less when the provider's counted quota
windows allow less: the same calls, spent where a change is likeliest.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine, select

from parcelwatch.carriers.quotas import QuotaWindow
from parcelwatch.domain import ShipmentStatus
from parcelwatch.lifecycle import Lifecycle
from parcelwatch.models import Shipment

__all__ = [
    "MAX_INTERVAL",
    "MIN_INTERVAL",
    "QUOTA_SHARE",
    "CheckPlan",
    "CheckValue",
    "check_value",
    "checks_per_hour",
    "plan_scale",
    "planned_next_check",
    "population_values",
]

MIN_INTERVAL = timedelta(minutes=5)  # a parcel is never asked about more often
MAX_INTERVAL = timedelta(hours=12)  # nor less often (an estimate may move, a parcel turn up)
STILL = timedelta(days=2)  # no new event for this long: half the value (held, forgotten)
QUOTA_SHARE = 0.95  # of a counted quota the plan spends (the rest: retries, manual refreshes)
MORNING = 7  # local hour from which "out for delivery" scans come on the delivery day
NOON = 12
EVENING = 20  # after this, little is delivered
RISE_LAG = timedelta(hours=2)  # the latest first look after a value rises

# Value per hour of a check: the chance per hour of a change x how much it matters to the
# person waiting (1 for out for delivery, delivered, an attempt; about 0.1 for "accepted" or a
# hold; a few hundredths for one more hub scan). What the carrier will not say soon (a label
# nobody has handed over, a parcel days from its estimate, one waiting at a pickup point for
# its addressee) is worth little, so a short allowance goes to the delivery days.
HOT = 0.35  # estimated today, morning: out for delivery due within about three hours
DAY = 0.6  # out for delivery, daytime: delivered (what people wait for most) within hours
LATE = 0.12  # estimated today (or overdue), afternoon: late out for delivery or delivered
QUIET = 0.002  # nothing expected now (night, estimate days away)
# The morning before the estimated day: carriers' estimates are the latest planned day, and
# a parcel ahead of schedule (or a first attempt before the final delivery) goes out a day
# early now and then; worth a look only when the allowance would look that morning anyway.
EARLY = HOT / 4
NEW = 2.0  # never answered yet: the person just registered it and looks now
_FLAT = {  # statuses whose value does not depend on the time of day
    ShipmentStatus.PENDING: 0.003,
    ShipmentStatus.AVAILABLE_FOR_PICKUP: 0.004,
    ShipmentStatus.EXCEPTION: 0.006,
    ShipmentStatus.RETURNING_TO_SENDER: 0.004,
    ShipmentStatus.UNKNOWN: 0.01,
}
IN_TRANSIT_NO_ESTIMATE = 0.01
LABEL = 0.01  # a label old enough to have been handed over: its first scan brings the ETA
HANDOVER = timedelta(hours=24)  # a label is usually scanned in by then


@dataclass(frozen=True, slots=True)
class CheckValue:
    """A check's value per hour now, and when (if before long) it rises. `later`, when
    given, is the value to plan from instead when the allowance could not look at every
    parcel within the morning before an estimated day (`EARLY`, `CheckPlan.covers`)."""

    per_hour: float
    rises_at: datetime | None = None
    rises_to: float = 0.0  # the value from `rises_at` on
    later: CheckValue | None = None


@dataclass(frozen=True, slots=True)
class CheckPlan:
    """One provider's plan: interval = `scale_hours / sqrt(value)`, within
    [`floor_hours`, `cap_hours`] (the floor is `MIN_INTERVAL`, or `UPDATE_INTERVAL` when that
    is shorter: a plan never checks less often than the fixed schedule it replaces could)."""

    scale_hours: float
    checks_per_hour: float = 0.0
    shipments: int = 0
    cap_hours: float = MAX_INTERVAL.total_seconds() / 3600
    floor_hours: float = MIN_INTERVAL.total_seconds() / 3600

    def covers(self, window: timedelta) -> bool:
        """Whether the allowance could look at every active shipment once per `window`
        (what a plain poller with it would do): ample enough for looks of lesser value."""
        if not self.shipments:
            return True
        return self.checks_per_hour * window.total_seconds() / 3600 >= self.shipments

    def interval(self, value: float) -> timedelta:
        """The interval of a shipment of this value (the cap when it is worth nothing)."""
        hours = self.scale_hours / math.sqrt(value) if value > 0 else math.inf
        return timedelta(hours=min(self.cap_hours, max(self.floor_hours, hours)))

    @property
    def floor(self) -> timedelta:
        return timedelta(hours=self.floor_hours)


def _local_day(now: datetime, offset_minutes: int) -> tuple[datetime, float]:
    """`now` as local wall-clock time and its hour (fractional)."""
    local = now.astimezone(timezone(timedelta(minutes=offset_minutes)))
    return local, local.hour + local.minute / 60


def _at_local(local: datetime, hour: int, days: int = 0) -> datetime:
    moment = local.replace(hour=hour, minute=0, second=0, microsecond=0) + timedelta(days=days)
    return moment


def _delivery_day(
    local_hour: float, local: datetime, days_ahead: int, *, early: bool = False
) -> CheckValue:
    """The value on (or around) a day a delivery is expected, `days_ahead` from today; with
    `early` (an estimate, not a re-attempt), the morning before is worth `EARLY`."""
    if days_ahead > 0:
        estimated_morning = CheckValue(QUIET, _at_local(local, MORNING, days_ahead), HOT)
        if not early:
            return estimated_morning
        if days_ahead > 1 or local_hour < MORNING:
            day_before = _at_local(local, MORNING, days_ahead - 1)
            return CheckValue(QUIET, day_before, EARLY, later=estimated_morning)
        if local_hour < NOON:
            return CheckValue(EARLY, estimated_morning.rises_at, HOT, later=estimated_morning)
        return estimated_morning
    if local_hour < MORNING:
        return CheckValue(QUIET, _at_local(local, MORNING), HOT if days_ahead == 0 else LATE)
    if local_hour < NOON:
        return CheckValue(HOT if days_ahead == 0 else LATE)
    if local_hour < EVENING:
        return CheckValue(LATE)
    return CheckValue(QUIET, _at_local(local, MORNING, 1), LATE)


def _day_average(hot: float) -> float:
    """A delivery day's value averaged over 24 hours (the local time unknown)."""
    return (
        (NOON - MORNING) * hot + (EVENING - NOON) * LATE + (24 - EVENING + MORNING) * QUIET
    ) / 24


def check_value(
    status: ShipmentStatus,
    *,
    now: datetime,
    estimated_delivery: datetime | None = None,
    last_movement: datetime | None = None,
    local_offset_minutes: int | None = None,
    answered: bool = True,
) -> CheckValue:
    """What checking this shipment now is worth per hour, and when that rises. Without the
    local offset (the newest scan's), a delivery day counts at its 24-hour average."""
    if status.is_final:
        return CheckValue(0.0)
    if not answered:
        return CheckValue(NEW)
    still = last_movement is not None and now - last_movement >= STILL
    halved = status not in (ShipmentStatus.OUT_FOR_DELIVERY, ShipmentStatus.INFO_RECEIVED)
    factor = 0.5 if still and halved else 1.0
    value = _timed_value(status, now, estimated_delivery, last_movement, local_offset_minutes)
    return CheckValue(value.per_hour * factor, value.rises_at, value.rises_to * factor, value.later)


def _timed_value(
    status: ShipmentStatus,
    now: datetime,
    estimated_delivery: datetime | None,
    last_movement: datetime | None,
    offset: int | None,
) -> CheckValue:
    if status in _FLAT:
        return CheckValue(_FLAT[status])
    if status is ShipmentStatus.INFO_RECEIVED:
        return _label_value(now, last_movement)
    if status is ShipmentStatus.OUT_FOR_DELIVERY:
        if offset is None:
            return CheckValue(DAY)
        local, hour = _local_day(now, offset)
        if hour < MORNING - 1:
            return CheckValue(QUIET, _at_local(local, MORNING - 1), DAY)
        if hour >= EVENING + 1:
            return CheckValue(QUIET * 4, _at_local(local, MORNING - 1, 1), DAY)
        return CheckValue(DAY)
    if status is ShipmentStatus.DELIVERY_ATTEMPTED:
        if offset is None or last_movement is None:
            return CheckValue(_day_average(HOT))
        local, hour = _local_day(now, offset)
        attempt_day = last_movement.astimezone(local.tzinfo).date()
        return _delivery_day(hour, local, 1 if local.date() <= attempt_day else 0)
    if status is ShipmentStatus.IN_TRANSIT:
        if estimated_delivery is None:
            return CheckValue(IN_TRANSIT_NO_ESTIMATE)
        if offset is None:
            days = (estimated_delivery.date() - now.date()).days
            return CheckValue(_day_average(HOT) if days <= 0 else QUIET)
        local, hour = _local_day(now, offset)
        days = (estimated_delivery.astimezone(local.tzinfo).date() - local.date()).days
        if days < 0:  # overdue: it may come any working hour
            return _delivery_day(hour, local, -1)
        return _delivery_day(hour, local, days, early=True)
    return CheckValue(IN_TRANSIT_NO_ESTIMATE)


def _label_value(now: datetime, label_made: datetime | None) -> CheckValue:
    """A label is handed over within about a day (`HANDOVER`), and its first scan brings the
    estimate the delivery day is planned from: worth a look then, little before; one still a
    label after `STILL` will likely never move."""
    if label_made is None:
        return CheckValue(LABEL)
    if now - label_made >= STILL:
        return CheckValue(QUIET * 2)
    handed_over = label_made + HANDOVER
    if now < handed_over:
        return CheckValue(QUIET, handed_over, LABEL)
    return CheckValue(LABEL)


def plan_scale(
    values: Iterable[float], checks_per_hour: float, *, floor: timedelta = MIN_INTERVAL
) -> CheckPlan:
    """The plan that spends `checks_per_hour` on shipments of these values. Unbounded, the
    interval `scale / sqrt(v)` takes `sqrt(v) / scale` checks an hour of each, so
    `scale = sum(sqrt(v)) / checks_per_hour`; with the intervals held within
    [`floor`, cap] the scale is found by bisection. The cap is `MAX_INTERVAL`, or
    longer when a short allowance could not even check everyone that often: then everyone
    at the cap takes at most half of it, the other half going where the value is."""
    counted = Counter(v for v in values if v > 0)
    # A shipment never answered takes one check, now, not a share of every hour: it comes
    # off the hour's checks instead of weighing on every interval (when there is nothing
    # else yet, it counts as what most become, a parcel in transit).
    first = counted.pop(NEW, 0)
    if first:
        checks_per_hour = max(checks_per_hour / 4, checks_per_hour - first)
        if not counted:
            counted[IN_TRANSIT_NO_ESTIMATE] = first
    shipments = sum(counted.values())
    longest = MAX_INTERVAL.total_seconds() / 3600
    lowest = min(floor, MIN_INTERVAL).total_seconds() / 3600
    if not shipments:  # nothing to share yet: the first ones are looked at soon
        return CheckPlan(0.0, checks_per_hour, 0, longest, lowest)
    if checks_per_hour <= 0:
        return CheckPlan(longest * math.sqrt(max(counted)), 0.0, shipments, longest, lowest)
    cap = max(longest, 2 * shipments / checks_per_hour)

    def spend(scale: float) -> float:
        return sum(n / min(cap, max(lowest, scale / math.sqrt(v))) for v, n in counted.items())

    if spend(0.0) <= checks_per_hour:  # everyone at the floor fits
        return CheckPlan(0.0, checks_per_hour, shipments, cap, lowest)
    low, high = 0.0, cap * math.sqrt(max(counted))  # at `high` everyone is at the cap
    for _ in range(50):
        middle = (low + high) / 2
        low, high = (low, middle) if spend(middle) <= checks_per_hour else (middle, high)
    return CheckPlan(high, checks_per_hour, shipments, cap, lowest)


def checks_per_hour(
    *,
    shipments: int,
    update_interval: timedelta,
    numbers_per_call: int,
    windows: Sequence[QuotaWindow] = (),
) -> float:
    """What the plan may spend an hour: every active shipment once per `update_interval`
    (what a plain poller spends), or less when a counted quota window allows less (its
    even share an hour, `QUOTA_SHARE` of it, times the numbers a call carries)."""
    wanted = shipments * 3600 / max(1.0, update_interval.total_seconds())
    for window in windows:
        if window.counted:
            per_hour = window.amount * 3600 / window.seconds * QUOTA_SHARE
            wanted = min(wanted, per_hour * max(1, numbers_per_call))
    return wanted


def planned_next_check(value: CheckValue, plan: CheckPlan, now: datetime) -> datetime:
    """`plan.interval(value)` from now, or, when the value rises before that, once it has
    risen: half an interval of the risen value after the rise (at most `RISE_LAG`), so the
    first look of a delivery morning comes when out for delivery is likely, not when it
    becomes possible. A known rise replaces the cap: a parcel days from its estimate is not
    asked about before its morning when the allowance is short."""
    if value.later is not None and not plan.covers(EARLY_WINDOW):
        # An allowance that cannot look at every parcel once in that window (a daily quota
        # short of its parcels) has better uses for the call: wait for the estimated day.
        return planned_next_check(value.later, plan, now)
    interval = plan.interval(value.per_hour)
    if value.rises_at is None or value.rises_at <= now:
        return now + interval
    risen = value.rises_at + min(RISE_LAG, plan.interval(value.rises_to) / 2)
    unbounded = now + max(plan.floor, _unbounded(value.per_hour, plan))
    return min(unbounded, risen)


def _unbounded(value: float, plan: CheckPlan) -> timedelta:
    if value <= 0:
        return _NEVER
    return min(_NEVER, timedelta(hours=plan.scale_hours / math.sqrt(value)))


EARLY_WINDOW = timedelta(hours=NOON - MORNING)  # how long an early morning's value lasts
_NEVER = timedelta(days=365)  # a value that never rises: the next rise decides


# -- the one database read ---------------------------------------------------------------


def population_values(
    db: Engine, lifecycle: Lifecycle, carriers: Sequence[str], now: datetime
) -> list[float]:
    """The value per hour (`check_value`, the local time unknown: a delivery day at its
    24-hour average) of every active shipment of these carriers: what `plan_scale` spreads
    the provider's checks over."""
    query = select(
        Shipment.status,
        Shipment.estimated_delivery,
        Shipment.last_event_at,
        Shipment.created_at,
        Shipment.last_auto_refresh,
    ).where(lifecycle.active(now), lifecycle.tracked(carriers))
    with db.connect() as connection:
        return [
            check_value(
                status,
                now=now,
                estimated_delivery=estimated,
                last_movement=last_event_at or created_at,
                answered=refreshed is not None,
            ).per_hour
            for status, estimated, last_event_at, created_at, refreshed in connection.execute(query)
        ]
