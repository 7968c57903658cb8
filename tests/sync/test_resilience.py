"""Retry policy, circuit breaker recovery, heartbeats and metrics of the engine."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from parcelwatch.carriers.base import TrackResult
from parcelwatch.carriers.errors import AuthError, RateLimitedError, UnavailableError
from parcelwatch.config import Settings
from parcelwatch.models import EngineHeartbeat
from parcelwatch.sync.circuit import BreakerPolicy, CircuitBreaker, CircuitState
from parcelwatch.sync.retry import ProviderRetryPolicy
from parcelwatch.sync.testing import FakeProvider, StaticProviders
from tests.conftest import Database
from tests.sync.conftest import EngineFactory, ShipmentFactory, reload

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_breaker_opens_after_the_threshold_and_recovers_through_one_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker("ups", BreakerPolicy(failure_threshold=2, cooldown=10), clock=clock)
    outage = UnavailableError("HTTP 503")
    breaker.record_failure(outage)
    assert breaker.allow()
    breaker.record_failure(outage)
    assert breaker.state is CircuitState.OPEN
    assert not breaker.allow()
    clock.now = 10.5
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one at a time
    breaker.record_failure(outage)
    assert breaker.retry_in() == pytest.approx(20)  # the cool-down doubled
    clock.now = 31
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.allow()
    assert breaker.allow()


def test_refused_credentials_open_the_breaker_at_once() -> None:
    breaker = CircuitBreaker("ups", BreakerPolicy(failure_threshold=5, auth_cooldown=900))
    breaker.record_failure(AuthError("401 invalid client"))
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_in() > 800


async def test_a_retry_after_too_long_to_wait_defers_without_retrying(
    database: Database, make_engine: EngineFactory, add_shipment: ShipmentFactory, ups: FakeProvider
) -> None:
    shipment = add_shipment("ups")
    ups.fail_with = RateLimitedError("429", provider="ups", retry_after=3600)
    summary = await make_engine().run_pass()
    assert ups.requests == 1
    assert summary.deferred == 1
    assert reload(database, shipment.id).auto_refresh_fail_count == 0


async def test_the_concurrency_option_caps_requests_in_flight(
    make_engine: EngineFactory, add_shipment: ShipmentFactory, ups: FakeProvider
) -> None:
    for _ in range(8):
        add_shipment("ups")
    ups.delay = 0.02
    await make_engine(concurrency=1).run_pass()
    assert ups.peak_in_flight == 1


async def test_an_engine_reports_a_heartbeat(
    database: Database, make_engine: EngineFactory
) -> None:
    engine = make_engine()
    await engine.run_pass()
    with database.sessions() as session:
        beat = session.scalars(select(EngineHeartbeat)).one()
    assert beat.engine_id == engine.engine_id
    assert beat.kind == "sync"
    assert beat.paused is False


async def test_update_metrics_count_attempts_successes_and_failures(
    make_engine: EngineFactory, add_shipment: ShipmentFactory, ups: FakeProvider
) -> None:
    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = (
        value("parcelwatch_update_attempts_total", carrier="ups"),
        value("parcelwatch_update_successes_total", carrier="ups", outcome="updated"),
        value("parcelwatch_update_failures_total", carrier="ups", outcome="deferred"),
    )
    add_shipment("ups")
    await make_engine().run_pass()
    add_shipment("ups")
    ups.fail_with = UnavailableError("HTTP 502")
    await make_engine().run_pass()
    after = (
        value("parcelwatch_update_attempts_total", carrier="ups"),
        value("parcelwatch_update_successes_total", carrier="ups", outcome="updated"),
        value("parcelwatch_update_failures_total", carrier="ups", outcome="deferred"),
    )
    assert [b - a for a, b in zip(before, after, strict=True)] == [2, 1, 1]


async def test_a_batch_over_the_batch_timeout_is_deferred_not_failed(
    database: Database,
    make_engine: EngineFactory,
    add_shipment: ShipmentFactory,
    sync_settings: Settings,
    ups: FakeProvider,
) -> None:
    shipment = add_shipment("ups")
    ups.delay = 30  # a carrier that never finishes answering
    settings = sync_settings.model_copy(
        update={"auto_update_batch_timeout": timedelta(seconds=0.2)}
    )
    started = time.monotonic()

    summary = await make_engine(settings=settings).run_pass()

    assert time.monotonic() - started < 10  # bounded by the batch timeout, not the carrier
    assert summary.deferred == 1
    assert summary.failed == 0
    stored = reload(database, shipment.id)
    assert stored.auto_refresh_fail_count == 0  # a carrier-wide problem: not the shipment's
    assert stored.next_check_at is not None


async def test_a_short_retry_after_is_waited_for_before_the_retry(
    database: Database, make_engine: EngineFactory, add_shipment: ShipmentFactory
) -> None:
    class RateLimitedOnce(FakeProvider):
        sent_at: list[float]

        async def track(self, numbers: Sequence[str], *, carrier: str) -> list[TrackResult]:
            self.sent_at.append(time.monotonic())
            if len(self.sent_at) == 1:
                self.requests += 1
                raise RateLimitedError("429", provider="ups", retry_after=0.3)
            return await super().track(numbers, carrier=carrier)

    ups = RateLimitedOnce(code="ups")
    ups.sent_at = []
    shipment = add_shipment("ups")
    retry = ProviderRetryPolicy(retries=3, base=0.001, cap=0.01, max_retry_after=5)

    summary = await make_engine(providers=StaticProviders({"ups": ups}), retry=retry).run_pass()

    assert len(ups.sent_at) == 2
    assert ups.sent_at[1] - ups.sent_at[0] >= 0.3  # the carrier's Retry-After, not the back-off
    assert summary.updated == 1
    assert reload(database, shipment.id).auto_refresh_fail_count == 0


async def test_batches_waiting_for_a_slot_when_the_breaker_opens_never_reach_the_carrier(
    database: Database, make_engine: EngineFactory, add_shipment: ShipmentFactory
) -> None:
    """Four batches, two slots: the first two fail together and open the breaker (threshold
    2) while the other two wait for a slot. Those two are deferred without a request."""

    class FailingTogether(FakeProvider):
        async def track(self, numbers: Sequence[str], *, carrier: str) -> list[TrackResult]:
            self.requests += 1
            if self.requests == 2:
                both_waiting.set()
            await both_waiting.wait()
            raise UnavailableError("HTTP 503", provider="ups", status_code=503)

    both_waiting = asyncio.Event()
    ups = FailingTogether(code="ups", max_batch=1)
    shipments = [add_shipment("ups") for _ in range(4)]
    engine = make_engine(
        concurrency=2,
        retry=ProviderRetryPolicy(retries=0),
        providers=StaticProviders({"ups": ups}),
    )

    summary = await engine.run_pass()

    assert ups.requests == 2
    assert summary.deferred == 4
    assert engine.breaker_for("ups").state is CircuitState.OPEN
    for shipment in shipments:
        assert reload(database, shipment.id).auto_refresh_fail_count == 0
