"""Requests spaced to a provider's rate: slots that do not drift, and the jitter margin."""

from __future__ import annotations

import pytest

from parcelwatch.sync import limits


def test_the_margin_is_the_jitter_spread_over_a_seconds_calls() -> None:
    assert limits.request_interval(1.0) == pytest.approx(1.0 + limits.JITTER)
    assert limits.request_interval(20.0) == pytest.approx((1 + limits.JITTER) / 20)
    assert limits.request_interval(0.5) == pytest.approx(2.0 + limits.JITTER)


@pytest.mark.anyio
async def test_the_schedule_keeps_its_slots_when_a_request_wakes_late(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A leaky bucket of one call starts the next interval when the late request leaves; the
    schedule's slots stay `interval` apart from the first, whatever the wake-up delays."""
    moment = [100.0]
    starts: list[float] = []

    async def late_sleep(seconds: float) -> None:
        moment[0] += seconds + 0.003  # every wake-up 3 ms late

    monkeypatch.setattr(limits.asyncio, "sleep", late_sleep)
    schedule = limits.Schedule(0.05, clock=lambda: moment[0])
    for _ in range(20):
        await schedule.acquire()
        starts.append(moment[0])
    assert starts[-1] - starts[0] == pytest.approx(19 * 0.05 + 0.003)
