"""Planning each shipment's next check from its provider's budget (pure functions): the value
of a check by status, estimate and local time, and the square-root rule that spends the
checks an hour a provider allows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from parcelwatch.carriers.base import TrackResult
from parcelwatch.carriers.quotas import parse_quota
from parcelwatch.domain import Location, ShipmentStatus, TrackEvent, TrackInfo, utcnow
from parcelwatch.sync.planning import (
    MAX_INTERVAL,
    MIN_INTERVAL,
    QUOTA_SHARE,
    RISE_LAG,
    CheckPlan,
    CheckValue,
    check_value,
    checks_per_hour,
    plan_scale,
    planned_next_check,
)
from parcelwatch.sync.testing import FakeProvider
from tests.conftest import Database
from tests.sync.conftest import EngineFactory, ShipmentFactory, reload

PARIS = 60  # UTC+01:00, in minutes
NEW_YORK = -300
MONDAY = datetime(2026, 11, 2, tzinfo=UTC)


def _local(hour: float, offset: int = PARIS, days: int = 0) -> datetime:
    """Monday (plus `days`) at `hour` local time, as UTC."""
    return MONDAY + timedelta(days=days, hours=hour, minutes=-offset)


def _in_transit(now: datetime, estimate: datetime, offset: int = PARIS) -> CheckValue:
    return check_value(
        ShipmentStatus.IN_TRANSIT,
        now=now,
        estimated_delivery=estimate,
        last_movement=now - timedelta(hours=3),
        local_offset_minutes=offset,
    )


def test_a_parcel_expected_today_is_worth_most_in_the_local_morning() -> None:
    estimate = _local(15)
    morning = _in_transit(_local(8), estimate).per_hour
    afternoon = _in_transit(_local(14), estimate).per_hour
    night = _in_transit(_local(3), estimate).per_hour
    assert morning > afternoon > night


def test_the_morning_is_local_time_not_utc() -> None:
    """08:00 UTC is the morning in Paris and the night in New York."""
    now = MONDAY + timedelta(hours=8)
    paris = _in_transit(now, _local(15, PARIS), PARIS)
    new_york = _in_transit(now, _local(15, NEW_YORK), NEW_YORK)
    assert paris.per_hour > new_york.per_hour
    assert new_york.rises_at == _local(7, NEW_YORK)


def test_a_parcel_expected_in_days_is_looked_at_again_on_the_morning_of_its_day() -> None:
    now = _local(16)
    value = _in_transit(now, _local(14, days=2))
    assert value.per_hour < _in_transit(_local(8), _local(14)).per_hour / 10
    assert value.rises_at == _local(7, days=1)  # the morning before: worth a look if ample
    assert value.later is not None
    assert value.later.rises_at == _local(7, days=2)
    plan = CheckPlan(scale_hours=2.0, checks_per_hour=10, shipments=300)  # a short allowance
    morning = _local(7, days=2)
    for moment in (now, _local(23, days=1)):  # the value as the writer computes it then
        planned = planned_next_check(_in_transit(moment, _local(14, days=2)), plan, moment)
        assert morning < planned <= morning + RISE_LAG


def test_the_morning_before_the_estimate_is_looked_at_only_when_the_allowance_is_ample() -> None:
    """An estimate is the latest planned day; the morning before is worth a look when the
    plan would look that often anyway, never a call taken from a short allowance."""
    now = _local(23)
    value = _in_transit(now, _local(14, days=2))
    ample = CheckPlan(scale_hours=0.5, checks_per_hour=100, shipments=100)  # hourly, each
    short = CheckPlan(scale_hours=2.0, checks_per_hour=10, shipments=300)  # a daily quota
    day_before = _local(7, days=1)
    assert day_before < planned_next_check(value, ample, now) <= day_before + RISE_LAG
    estimated = _local(7, days=2)
    assert estimated < planned_next_check(value, short, now) <= estimated + RISE_LAG


def test_the_morning_before_the_estimate_is_worth_less_than_the_estimated_morning() -> None:
    estimate = _local(14, days=1)
    day_before = _in_transit(_local(9), estimate).per_hour
    estimated_day = _in_transit(_local(9, days=1), estimate).per_hour
    quiet_night = _in_transit(_local(3), estimate).per_hour
    assert quiet_night < day_before < estimated_day


def test_a_short_allowance_spends_no_call_on_the_afternoon_before_the_estimate() -> None:
    """Checked (for another reason) the morning before its estimated day, a parcel on a short
    allowance waits for that day's morning rather than for an interval of the early value."""
    now = _local(9)
    value = _in_transit(now, _local(14, days=1))
    estimated = _local(7, days=1)
    short = CheckPlan(scale_hours=2.0, checks_per_hour=10, shipments=300)
    planned = planned_next_check(value, short, now)
    assert estimated < planned <= estimated + RISE_LAG
    ample = CheckPlan(scale_hours=0.5, checks_per_hour=100, shipments=100)
    assert planned_next_check(value, ample, now) < _local(12)


def test_an_allowance_covers_a_window_when_a_plain_poller_could_look_at_everyone_in_it() -> None:
    hourly = CheckPlan(scale_hours=1.0, checks_per_hour=400, shipments=400)
    daily_quota = CheckPlan(scale_hours=1.0, checks_per_hour=250 / 24, shipments=400)
    assert hourly.covers(timedelta(hours=1))
    assert not daily_quota.covers(timedelta(hours=5))
    assert daily_quota.covers(timedelta(days=2))
    assert CheckPlan(scale_hours=0.0).covers(timedelta(minutes=5))  # nothing to share yet


def test_a_re_attempt_morning_has_no_early_look_the_day_of_the_attempt() -> None:
    """After a failed attempt the next try is the next morning: nothing earlier to look for."""
    value = check_value(
        ShipmentStatus.DELIVERY_ATTEMPTED,
        now=_local(11),
        last_movement=_local(10.5),
        local_offset_minutes=PARIS,
    )
    assert value.later is None
    assert value.rises_at == _local(7, days=1)
    planned = planned_next_check(value, CheckPlan(scale_hours=0.5), _local(23))
    assert _local(7, days=1) < planned <= _local(7, days=1) + RISE_LAG


def test_out_for_delivery_is_checked_through_the_day_and_not_at_night() -> None:
    day = check_value(ShipmentStatus.OUT_FOR_DELIVERY, now=_local(11), local_offset_minutes=PARIS)
    night = check_value(ShipmentStatus.OUT_FOR_DELIVERY, now=_local(23), local_offset_minutes=PARIS)
    assert day.per_hour > night.per_hour
    assert night.rises_at == _local(6, days=1)


def test_after_a_failed_attempt_the_next_morning_is_what_matters() -> None:
    attempted = _local(15)
    same_evening = check_value(
        ShipmentStatus.DELIVERY_ATTEMPTED,
        now=_local(17),
        last_movement=attempted,
        local_offset_minutes=PARIS,
    )
    next_morning = check_value(
        ShipmentStatus.DELIVERY_ATTEMPTED,
        now=_local(8, days=1),
        last_movement=attempted,
        local_offset_minutes=PARIS,
    )
    assert same_evening.rises_at == _local(7, days=1)
    assert next_morning.per_hour > same_evening.per_hour * 10


def test_label_created_is_worth_little_and_a_new_registration_a_lot() -> None:
    now = _local(10)
    label = check_value(ShipmentStatus.INFO_RECEIVED, now=now, last_movement=now)
    fresh = check_value(ShipmentStatus.PENDING, now=now, answered=False)
    expected = _in_transit(now, _local(15))
    assert label.per_hour < expected.per_hour / 10
    assert fresh.per_hour > expected.per_hour


def test_a_parcel_still_for_days_is_worth_half() -> None:
    now = _local(10)
    moving = check_value(ShipmentStatus.EXCEPTION, now=now, last_movement=now)
    held = check_value(ShipmentStatus.EXCEPTION, now=now, last_movement=now - timedelta(days=3))
    assert held.per_hour == pytest.approx(moving.per_hour / 2)


def test_final_statuses_are_worth_nothing() -> None:
    assert check_value(ShipmentStatus.DELIVERED, now=MONDAY).per_hour == 0


def test_the_plan_spends_exactly_the_checks_an_hour_it_is_given() -> None:
    values = [0.35] * 10 + [0.01] * 200 + [0.002] * 100
    for per_hour in (5.0, 40.0, 400.0):
        plan = plan_scale(values, checks_per_hour=per_hour)
        spent = sum(1 / (plan.interval(v).total_seconds() / 3600) for v in values)
        assert spent == pytest.approx(per_hour, rel=1e-3)


def test_a_rich_allowance_checks_everyone_at_the_floor() -> None:
    plan = plan_scale([0.35] * 10, checks_per_hour=1000)
    assert plan.interval(0.35) == MIN_INTERVAL


def test_an_update_interval_shorter_than_the_floor_is_the_floor() -> None:
    """`UPDATE_INTERVAL=1s` (a demo, a test) checks every second, as the fixed schedule did:
    even a parcel days from its estimate, whose morning the plan would otherwise wait for."""
    every_second = timedelta(seconds=1)
    plan = plan_scale([0.35] * 10, checks_per_hour=36_000, floor=every_second)
    assert plan.interval(0.35) == every_second
    now = _local(16)
    far = _in_transit(now, _local(14, days=2))
    assert planned_next_check(far, plan, now) == now + every_second
    assert plan_scale([0.35] * 10, 36_000, floor=MAX_INTERVAL).interval(0.35) == MIN_INTERVAL


def test_the_likeliest_changes_are_checked_most_often_by_the_square_root_rule() -> None:
    plan = plan_scale([0.36, 0.04], checks_per_hour=8)
    now = MONDAY
    hot = planned_next_check(CheckValue(0.36), plan, now) - now
    cold = planned_next_check(CheckValue(0.04), plan, now) - now
    assert cold / hot == pytest.approx(3)  # sqrt(0.36 / 0.04)


def test_a_shorter_budget_stretches_every_interval_and_the_cap() -> None:
    values = [0.35] * 10 + [0.01] * 200
    rich, poor = plan_scale(values, 2000), plan_scale(values, 10)
    assert rich.interval(0.35) == MIN_INTERVAL
    assert rich.interval(0.01) <= MAX_INTERVAL
    assert poor.interval(0.35) > rich.interval(0.35)
    # 210 shipments, 10 checks an hour: everyone at the cap takes at most half of them
    assert poor.cap_hours == pytest.approx(2 * 210 / 10)
    assert poor.interval(0.01) > MAX_INTERVAL


def test_checks_an_hour_are_a_plain_pollers_or_fewer_when_the_quota_is_short() -> None:
    hourly = timedelta(hours=1)
    assert checks_per_hour(shipments=300, update_interval=hourly, numbers_per_call=1) == 300
    dhl = parse_quota("1/s,250/day@00:00Z")
    assert checks_per_hour(
        shipments=300, update_interval=hourly, numbers_per_call=1, windows=dhl
    ) == pytest.approx(250 / 24 * QUOTA_SHARE)
    usps = parse_quota("60/hour")
    assert (
        checks_per_hour(shipments=300, update_interval=hourly, numbers_per_call=35, windows=usps)
        == 300
    )  # 60 calls of 35 numbers an hour cover them


# -- the engine plans the next checks ------------------------------------------------------


def _answer(status: ShipmentStatus, *, offset: int, estimate: datetime | None) -> TrackInfo:
    when = utcnow() - timedelta(minutes=10)
    event = TrackEvent(
        occurred_at=when,
        status=status,
        description=status.value,
        location=Location(city="Lyon", country="FR"),
        utc_offset_minutes=offset,
    )
    return TrackInfo(
        status=status, status_detail=status.value, events=(event,), estimated_delivery=estimate
    )


@pytest.mark.anyio
async def test_the_engine_checks_out_for_delivery_soon_and_a_far_estimate_late(
    database: Database, make_engine: EngineFactory, add_shipment: ShipmentFactory, ups: FakeProvider
) -> None:
    now = utcnow()
    midday = 12 * 60 - (now.hour * 60 + now.minute)  # the offset at which it is noon now
    offset = (midday + 12 * 60) % (24 * 60) - 12 * 60
    out = add_shipment("ups")
    far = add_shipment("ups")
    answers = {
        out.tracking_number: _answer(ShipmentStatus.OUT_FOR_DELIVERY, offset=offset, estimate=None),
        far.tracking_number: _answer(
            ShipmentStatus.IN_TRANSIT, offset=offset, estimate=now + timedelta(days=5)
        ),
    }
    ups.script = lambda number: TrackResult.found(number, answers[number])
    await make_engine().run_pass()
    soon, late = reload(database, out.id).next_check_at, reload(database, far.id).next_check_at
    assert soon is not None
    assert late is not None
    assert soon < late
    assert late - now >= timedelta(hours=6)
    assert soon - now <= timedelta(hours=3)


@pytest.mark.anyio
async def test_the_room_left_in_a_request_takes_the_shipments_due_next(
    database: Database,
    make_engine: EngineFactory,
    add_shipment: ShipmentFactory,
    fedex: FakeProvider,
    ups: FakeProvider,
) -> None:
    """FedEx takes 30 numbers a request: one due shipment's request also carries those due
    next (soonest first), at no extra call; UPS takes one, so nothing rides along."""
    now = utcnow()
    due = add_shipment("fedex", next_check_at=now - timedelta(minutes=1))
    soon = [add_shipment("fedex", next_check_at=now + timedelta(minutes=10 + i)) for i in range(3)]
    ups_later = add_shipment("ups", next_check_at=now + timedelta(minutes=5))
    await make_engine().run_pass()
    assert fedex.requests == 1
    assert set(fedex.asked) == {s.tracking_number for s in [due, *soon]}
    assert ups.asked[ups_later.tracking_number] == 0
