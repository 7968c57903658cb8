"""The next-check policy, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from parcelwatch.domain import ShipmentStatus
from parcelwatch.sync.scheduling import (
    FAILURE_CAP,
    SchedulePolicy,
    expiry_detail,
    failure_delay,
    is_silent_too_long,
    next_check_after_success,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
POLICY = SchedulePolicy(update_interval=timedelta(hours=1), expire_after=timedelta(days=14))


def next_check(status: ShipmentStatus, *, idle: timedelta = timedelta(0)) -> timedelta | None:
    when = next_check_after_success(status, last_movement=NOW - idle, now=NOW, policy=POLICY)
    return None if when is None else when - NOW


@pytest.mark.parametrize(
    "status",
    [
        ShipmentStatus.DELIVERED,
        ShipmentStatus.RETURNED,
        ShipmentStatus.CANCELLED,
        ShipmentStatus.EXPIRED,
    ],
)
def test_final_statuses_are_never_checked_again(status: ShipmentStatus) -> None:
    assert next_check(status) is None


@pytest.mark.parametrize(
    "status", [ShipmentStatus.OUT_FOR_DELIVERY, ShipmentStatus.DELIVERY_ATTEMPTED]
)
def test_out_for_delivery_and_attempted_are_checked_within_30_minutes(
    status: ShipmentStatus,
) -> None:
    assert next_check(status) == timedelta(minutes=30)


def test_in_transit_shipments_expected_today_are_checked_within_30_minutes() -> None:
    def after(estimate: datetime) -> timedelta | None:
        when = next_check_after_success(
            ShipmentStatus.IN_TRANSIT,
            last_movement=NOW,
            now=NOW,
            policy=POLICY,
            estimated_delivery=estimate,
        )
        return None if when is None else when - NOW

    assert after(NOW.replace(hour=23)) == timedelta(minutes=30)
    assert after(NOW - timedelta(days=1)) == timedelta(minutes=30)  # late: any moment now
    assert after(NOW + timedelta(days=1)) == timedelta(hours=1)


def test_moving_shipments_are_checked_at_the_update_interval() -> None:
    assert next_check(ShipmentStatus.IN_TRANSIT, idle=timedelta(hours=30)) == timedelta(hours=1)


def test_shipments_without_movement_for_days_back_off_up_to_a_cap() -> None:
    delays = [next_check(ShipmentStatus.IN_TRANSIT, idle=timedelta(days=d)) for d in (2, 3, 4, 9)]
    assert delays == [
        timedelta(hours=2),
        timedelta(hours=4),
        timedelta(hours=8),
        timedelta(hours=12),
    ]


def test_own_failures_back_off_exponentially_and_are_capped() -> None:
    assert [failure_delay(n) for n in (1, 2, 3)] == [
        timedelta(minutes=5),
        timedelta(minutes=10),
        timedelta(minutes=20),
    ]
    assert failure_delay(30) == FAILURE_CAP


def test_silence_for_the_expiry_period_expires_keeping_the_last_status() -> None:
    assert is_silent_too_long(last_movement=NOW - timedelta(days=14), now=NOW, policy=POLICY)
    assert not is_silent_too_long(last_movement=NOW - timedelta(days=13), now=NOW, policy=POLICY)
    detail = expiry_detail(ShipmentStatus.EXCEPTION, "Held at customs", policy=POLICY)
    assert "14 days" in detail
    assert "exception: Held at customs" in detail
