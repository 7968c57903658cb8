"""`<CARRIER>_QUOTA`: the documented forms, the carriers' defaults, windows fixed on the
carrier's clock, and a clear error naming the variable for every bad value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parcelwatch.carriers.quotas import parse_quota
from parcelwatch.config import ConfigError, load_settings
from parcelwatch.sync.limits import budget_spec


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1/s,250/day@00:00Z", [(1, 1), (250, 86400)]),
        ("1400/10s,100000/day", [(1400, 10), (100000, 86400)]),
        ("60/hour", [(60, 3600)]),
        ("200/minute", [(200, 60)]),
        ("200/min, 2 per second", [(2, 1), (200, 60)]),
        ("1400/10 seconds", [(1400, 10)]),
        ("10/h,100/d", [(10, 3600), (100, 86400)]),
        ("", []),
    ],
)
def test_quota_values_read_every_documented_form(
    text: str, expected: list[tuple[int, int]]
) -> None:
    assert [(w.amount, w.seconds) for w in parse_quota(text)] == expected


def test_a_day_window_resets_at_the_carrier_s_time_and_zone() -> None:
    (day,) = parse_quota("250/day@09:00-05:00")  # 14:00 UTC
    start, resets = day.bounds(datetime(2026, 12, 4, 3, 0, tzinfo=UTC))
    assert (start, resets) == (
        datetime(2026, 12, 3, 14, 0, tzinfo=UTC),
        datetime(2026, 12, 4, 14, 0, tzinfo=UTC),
    )
    (gmt,) = parse_quota("250/day@00:00Z")
    assert gmt.bounds(datetime(2026, 12, 4, 23, 59, 59, tzinfo=UTC))[1] == datetime(
        2026, 12, 5, tzinfo=UTC
    )


def test_an_hour_window_starts_on_the_hour() -> None:
    (hour,) = parse_quota("60/hour")
    assert hour.bounds(datetime(2026, 12, 4, 3, 25, 7, tzinfo=UTC)) == (
        datetime(2026, 12, 4, 3, 0, tzinfo=UTC),
        datetime(2026, 12, 4, 4, 0, tzinfo=UTC),
    )


@given(
    moment=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    hour=st.integers(0, 23),
    minute=st.integers(0, 59),
    offset=st.integers(-14, 14),
)
def test_every_moment_falls_in_exactly_one_day_window_starting_at_the_reset_time(
    moment: datetime, hour: int, minute: int, offset: int
) -> None:
    zone = f"{'+' if offset >= 0 else '-'}{abs(offset):02d}:00"
    (day,) = parse_quota(f"5/day@{hour:02d}:{minute:02d}{zone}")
    start, resets = day.bounds(moment)
    assert start <= moment < resets
    assert resets - start == timedelta(days=1)
    shifted = start + timedelta(hours=offset)  # the wall clock at that offset
    assert (shifted.hour, shifted.minute) == (hour, minute)


@given(amount=st.integers(1, 10**6), unit=st.sampled_from(["s", "minute", "hour", "day"]))
def test_any_whole_amount_per_unit_is_read_back(amount: int, unit: str) -> None:
    (window,) = parse_quota(f"{amount}/{unit}")
    assert window.amount == amount


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("lots", "is not AMOUNT/PERIOD"),
        ("0/day", "at least 1"),
        ("1.5/s", "whole number"),
        ("5/fortnight", "unknown period 'fortnight'"),
        ("5/month", "the longest window is a day"),
        ("5/s@00:00Z", "only hour and day windows have a reset time"),
        ("5/day@25:00Z", "25:00 is not a time of day"),
        ("5/day@midnight", "must look like @00:00Z"),
        ("5/day@00:00 PST", "must look like @00:00Z"),
        ("1/s,,5/day", "an empty item"),
        ("5/day,6/d", "two windows of the same length"),
    ],
)
def test_a_bad_quota_stops_start_up_naming_the_variable_and_the_problem(
    value: str, says: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(_env_file=None, dhl_quota=value)
    message = str(raised.value)
    assert message.startswith("invalid configuration: DHL_QUOTA=")
    assert says in message


def test_the_environment_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDEX_QUOTA", "10/s,500/day@00:00Z")
    spec = budget_spec(load_settings(_env_file=None), "fedex")
    assert spec.rate == 10
    assert [(w.amount, w.name) for w in spec.counted] == [(500, "1d")]


def test_each_carrier_defaults_to_its_published_allowance() -> None:
    settings = load_settings(_env_file=None)
    assert settings.dhl_quota == "250/day@00:00Z"
    assert settings.fedex_quota == "1400/10s,100000/day@00:00Z"
    assert settings.usps_quota == "60/hour"
    assert settings.shipengine_quota == "200/minute"
    assert settings.ups_quota == ""  # UPS publishes none
    dhl = budget_spec(settings, "dhl")
    assert (dhl.rate, [w.text for w in dhl.counted]) == (1.0, ["250/day@00:00Z"])


def test_the_rate_limit_stays_the_per_second_window() -> None:
    assert budget_spec(load_settings(_env_file=None, dhl_rate_limit=0.5), "dhl").rate == 0.5
    assert budget_spec(load_settings(_env_file=None, dhl_quota="2/s,1000/day"), "dhl").rate == 2
    same = load_settings(_env_file=None, dhl_quota="2/s", dhl_rate_limit=2)
    assert budget_spec(same, "dhl").rate == 2


def test_windows_shorter_than_an_hour_pace_the_requests() -> None:
    settings = load_settings(_env_file=None, shipengine_rate_limit=5, shipengine_quota="120/min")
    assert budget_spec(settings, "shipengine").rate == 2  # 120 a minute is slower than 5/s


def test_a_quota_and_a_rate_limit_naming_two_per_second_rates_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"DHL_QUOTA names a per-second window \(2/s\) and "):
        load_settings(_env_file=None, dhl_quota="2/s,250/day", dhl_rate_limit=1)
