"""Carrier budgets against the emulator enforcing the carrier's own quota: a daily quota is
never exceeded across a restart or by two engines at once (in the database, and in Redis),
a carrier's "retry after midnight" stops it until midnight, and a rate lowered by 429s
recovers. The emulator's request and 429 counts are the witness."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
import redis
from sqlalchemy import select

from parcelwatch.carriers.errors import RateLimitedError
from parcelwatch.carriers.registry import open_registry
from parcelwatch.config import Settings
from parcelwatch.db import create_db_engine
from parcelwatch.domain import utcnow
from parcelwatch.models import CarrierBlock, CarrierBudget, SyncRun
from parcelwatch.ops.budgets import budget_check, provider_budgets
from parcelwatch.sync.engine import EngineOptions, SyncEngine
from parcelwatch.sync.limits import Budget, BudgetSpec, RateLearning
from parcelwatch.sync.retry import ProviderRetryPolicy
from parcelwatch.sync.selection import Selection
from tests.conftest import Browser, Database, browser_session
from tests.sync.conftest import FAST_RETRY, ShipmentFactory, engine_for, reload, running_emulator

pytestmark = pytest.mark.anyio

REDIS_URL = os.environ.get("PARCELWATCH_TEST_REDIS_URL")
HEAD_START = timedelta(days=2)


def next_midnight(now: datetime) -> datetime:
    return (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


@pytest.fixture(params=["database", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """Where budgets are counted: the test database, or Redis (PARCELWATCH_TEST_REDIS_URL,
    its budget and rate keys cleared around the test)."""
    if request.param == "database":
        yield None
        return
    if not REDIS_URL:
        pytest.skip("PARCELWATCH_TEST_REDIS_URL is not set")

    def clear() -> None:
        with redis.Redis.from_url(REDIS_URL) as client:
            for pattern in ("parcelwatch:budget:*", "parcelwatch:rate:*"):
                for key in client.scan_iter(pattern):
                    client.delete(key)

    clear()
    yield REDIS_URL
    clear()


@asynccontextmanager
async def separate_engine(settings: Settings, database: Database) -> AsyncIterator[SyncEngine]:
    """An engine with its own connection pool, as another process (`sync` from cron) has."""
    db = create_db_engine(database.url)
    async with open_registry(settings) as registry:
        engine = SyncEngine(
            settings=settings, db=db, providers=registry, options=EngineOptions(retry=FAST_RETRY)
        )
        try:
            yield engine
        finally:
            await engine.aclose()
            db.dispose()


async def test_a_daily_quota_is_never_exceeded_across_a_restart(
    database: Database, add_shipment: ShipmentFactory, store: str | None
) -> None:
    shipments = [add_shipment("dhl") for _ in range(8)]
    with running_emulator(head_start=HEAD_START, quotas={"dhl": "5/day@00:00Z"}) as emulator:
        settings = emulator.settings_for(database, dhl_quota="5/day@00:00Z", redis_url=store)
        async with separate_engine(settings, database) as first:
            before = await first.run_pass(Selection(force=True))
        async with separate_engine(settings, database) as restarted:  # a new process
            after = await restarted.run_pass(Selection(force=True))
        stats = emulator.stats()

    assert stats["requests"]["dhl"] == 5
    assert stats["rate_limited_total"] == 0
    assert (before.synced, before.waiting, before.deferred, before.failed) == (5, 3, 0, 0)
    assert (after.synced, after.waiting, after.failed, after.api_calls) == (0, 8, 0, 0)
    assert before.outcome == after.outcome == "ok"  # waiting for the budget is not failing
    with database.sessions() as session:
        recorded = list(session.scalars(select(SyncRun).order_by(SyncRun.id)))
    assert [run.failed for run in recorded] == [0, 0]  # nor is it in the health error rate
    midnight = next_midnight(utcnow())
    for shipment in shipments:
        stored = reload(database, shipment.id)
        assert stored.auto_refresh_fail_count == 0
        assert stored.next_check_at is not None
        assert stored.next_check_at.replace(tzinfo=UTC) == midnight  # when the day resets


async def test_two_engines_at_once_spend_one_daily_quota_between_them(
    database: Database, add_shipment: ShipmentFactory, store: str | None
) -> None:
    for _ in range(24):
        add_shipment("dhl")
    quota = "7/day@00:00Z"
    with running_emulator(head_start=HEAD_START, quotas={"dhl": quota}) as emulator:
        # 2 a second each: both reserve small chunks, so both spend some of the day.
        settings = emulator.settings_for(
            database, dhl_quota=quota, dhl_rate_limit=2, redis_url=store
        )
        async with (
            separate_engine(settings, database) as server,
            separate_engine(settings, database) as cron,
        ):
            one, two = await asyncio.gather(server.run_pass(), cron.run_pass())
        stats = emulator.stats()

    assert stats["requests"]["dhl"] == 7
    assert stats["rate_limited_total"] == 0
    assert one.synced + two.synced == 7
    assert one.waiting + two.waiting == 24 - 7
    assert one.failed == two.failed == 0
    if store is None:
        with database.sessions() as session:
            counter = session.scalars(select(CarrierBudget)).one()
        assert (counter.provider, counter.window, counter.spent) == ("dhl", "1d", 7)


async def test_retry_after_midnight_stops_the_provider_until_midnight(
    database: Database, add_shipment: ShipmentFactory
) -> None:
    """The engine does not know FedEx's quota (FEDEX_QUOTA empty); FedEx answers 429
    "Daily transaction quota exceeded. Retry after 12:00AM GMT", with no Retry-After."""
    shipments = [add_shipment("fedex") for _ in range(5)]
    with running_emulator(head_start=HEAD_START, quotas={"fedex": "2/day@00:00Z"}) as emulator:
        settings = emulator.settings_for(
            database, fedex_quota="", fedex_max_concurrency=1, auto_update_batch_size=1
        )
        async with engine_for(settings, database) as engine:
            summary = await engine.run_pass(Selection(force=True))
            breaker = engine.breaker_for("fedex")
            assert breaker.state == "open"  # held until midnight, not counted as failures
            assert breaker.failures == 0
        async with separate_engine(settings, database) as cron:  # sees the stored block
            later = await cron.run_pass(Selection(force=True))
        stats = emulator.stats()

    midnight = next_midnight(utcnow())
    assert stats["requests"]["fedex"] - stats["tokens_issued"].get("fedex", 0) == 3
    assert stats["rate_limited"]["fedex"] == 1  # one answer taught it; no retry into the wall
    assert (summary.synced, summary.deferred, summary.failed) == (2, 3, 0)
    assert (later.api_calls, later.deferred, later.failed) == (0, 5, 0)
    assert later.carriers_down.keys() == {"fedex"}  # as when it answers 429 itself
    with database.sessions() as session:
        block = session.get(CarrierBlock, "fedex")
        assert block is not None
        assert block.blocked_until.replace(tzinfo=UTC) == midnight
        check = budget_check(provider_budgets(session, settings))
    assert check.status == "warning"  # the configured budget is more than FedEx allows
    assert check.message.startswith("fedex stopped by the carrier until ")
    for shipment in shipments:
        stored = reload(database, shipment.id)
        assert stored.auto_refresh_fail_count == 0
        assert stored.auto_refresh_enabled
        assert stored.next_check_at is not None
        assert stored.next_check_at.replace(tzinfo=UTC) == midnight


async def test_a_carrier_that_keeps_answering_429_below_the_configured_rate_lowers_it(
    database: Database, add_shipment: ShipmentFactory
) -> None:
    """UPS allows 4 requests a second; parcelwatch is configured for 16. Its 429s (Retry-After:
    1, waited for) lower the rate the engine uses until they stop."""
    for _ in range(24):
        add_shipment("ups")
    with running_emulator(head_start=HEAD_START, rate_limits={"ups": 4.0}) as emulator:
        settings = emulator.settings_for(database, ups_rate_limit=16, ups_max_concurrency=1)
        retry = ProviderRetryPolicy(retries=3, base=0.001, cap=0.01, max_retry_after=2)
        learning = RateLearning(signals=2, within=30, factor=0.25, quiet=60)
        async with open_registry(settings) as registry:
            engine = SyncEngine(
                settings=settings,
                db=database.engine,
                providers=registry,
                options=EngineOptions(retry=retry, learning=learning),
            )
            try:
                summary = await engine.run_pass()
                budget = engine.budgets["ups"]
            finally:
                await engine.aclose()
        stats = emulator.stats()

    assert summary.synced == 24
    assert summary.failed == summary.deferred == 0
    assert budget.lowered
    assert budget.rate <= 4.0  # down from 16 to what UPS takes
    assert stats["rate_limited"]["ups"] < 10  # learnt, instead of meeting a 429 every time


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_lowered_rate_recovers_step_by_step_after_a_quiet_period() -> None:
    clock = Clock()
    learning = RateLearning(signals=2, within=10, factor=0.25, quiet=60, step=2)
    budget = Budget(
        BudgetSpec(concurrency=1, rate=8.0), provider="ups", learning=learning, clock=clock
    )
    error = RateLimitedError("rate limited (HTTP 429)", provider="ups")
    for _ in range(2):
        assert await budget.rate_limited(error) is None
    assert budget.rate == 2.0  # lowered to a quarter

    async def one_request() -> None:
        async with budget.slot():
            pass

    clock.now += 30
    await one_request()
    assert budget.rate == 2.0  # not quiet long enough
    rates = []
    for _ in range(3):
        clock.now += 61
        await one_request()
        rates.append(budget.rate)
    assert rates == [4.0, 8.0, 8.0]  # doubling per quiet minute, never above the configured 8
    assert not budget.lowered


async def test_a_429_during_recovery_lowers_the_rate_again() -> None:
    clock = Clock()
    learning = RateLearning(signals=1, within=10, factor=0.5, quiet=60, step=2)
    budget = Budget(
        BudgetSpec(concurrency=1, rate=8.0), provider="ups", learning=learning, clock=clock
    )
    error = RateLimitedError("rate limited (HTTP 429)", provider="ups")
    await budget.rate_limited(error)
    assert budget.rate == 4.0
    clock.now += 61
    async with budget.slot():
        pass
    assert budget.rate == 8.0
    await budget.rate_limited(error)
    assert budget.rate == 4.0


async def test_what_was_spent_shows_in_metrics_stats_health_and_the_operations_page(
    database: Database,
    add_shipment: ShipmentFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    from typer.testing import CliRunner

    from parcelwatch.api.app import create_app
    from parcelwatch.cli.main import app as cli

    for _ in range(4):
        add_shipment("dhl")
    with running_emulator(head_start=HEAD_START, quotas={"dhl": "3/day@00:00Z"}) as emulator:
        settings = emulator.settings_for(database, dhl_quota="3/day@00:00Z")
        async with separate_engine(settings, database) as engine:
            await engine.run_pass()
        environment = emulator.environment(database, dhl_quota="3/day@00:00Z")

    midnight = next_midnight(utcnow()).timestamp()
    with Browser(create_app(settings), browser_session(settings)) as client:
        metrics = client.get("/metrics").text
        page = client.get("/operations").text
        health = client.get("/api/health", params={"check_carriers": "false"})
    assert 'parcelwatch_carrier_budget_limit{provider="dhl",window="1d"} 3.0' in metrics
    assert 'parcelwatch_carrier_budget_spent{provider="dhl",window="1d"} 3.0' in metrics
    assert 'parcelwatch_carrier_budget_remaining{provider="dhl",window="1d"} 0.0' in metrics
    resets = 'parcelwatch_carrier_budget_resets_at_timestamp_seconds{provider="dhl",window="1d"} '
    (line,) = [line for line in metrics.splitlines() if line.startswith(resets)]
    assert float(line.removeprefix(resets)) == midnight
    assert 'parcelwatch_carrier_rate_per_second{provider="dhl",rate="configured"}' in metrics
    assert "Carrier budgets" in page
    assert "3/day@00:00Z" in page
    assert "Spent" in page

    budgets = next(c for c in health.json()["checks"] if c["name"] == "carrier_budgets")
    assert budgets["status"] == "ok"  # spending the allowance is the point
    assert "dhl spent its 3/day@00:00Z" in budgets["message"]

    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    # The command runs its own event loop: in a thread, as from a shell.
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["sync", "--stats", "--json"])
    assert result.exit_code == 0, result.output
    dhl = next(b for b in json.loads(result.stdout)["budgets"] if b["provider"] == "dhl")
    day = next(w for w in dhl["windows"] if w["name"] == "1d")
    assert (day["limit"], day["spent"], day["remaining"]) == (3, 3, 0)
    text = (await asyncio.to_thread(CliRunner().invoke, cli, ["sync", "--stats"])).stdout
    assert "3/day@00:00Z 3 spent, 0 left, resets" in text


async def test_an_unreachable_budget_store_defers_counted_providers_and_calls_nothing(
    database: Database, add_shipment: ShipmentFactory
) -> None:
    """Redis down: a provider with a day window cannot be counted, so it is not called (its
    shipments wait a minute); one without counted windows is called as usual."""
    dhl = [add_shipment("dhl") for _ in range(3)]
    ups = [add_shipment("ups") for _ in range(2)]
    with running_emulator(head_start=HEAD_START) as emulator:
        settings = emulator.settings_for(
            database, dhl_quota="5/day", ups_quota="", redis_url="redis://127.0.0.1:1/0"
        )
        async with separate_engine(settings, database) as engine:
            summary = await engine.run_pass()
        stats = emulator.stats()
        polled = [emulator.polls("ups", s.tracking_number) for s in ups]

    assert stats["requests"].get("dhl", 0) == 0
    assert (summary.waiting, summary.failed, summary.synced) == (3, 0, 2)
    for shipment in dhl:
        assert reload(database, shipment.id).auto_refresh_fail_count == 0
    assert polled == [1, 1]
