"""REDIS_URL: engines in different processes share one request rate per provider."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from parcelwatch.sync.limits import Budget, BudgetSpec, SharedRate
from parcelwatch.sync.testing import FakeProvider
from tests.sync.conftest import EngineFactory, ShipmentFactory

pytestmark = pytest.mark.anyio


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 5
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(5)


async def test_two_budgets_sharing_redis_keep_the_rate_together(redis_url: str) -> None:
    first, second = SharedRate.from_url(redis_url), SharedRate.from_url(redis_url)
    spec = BudgetSpec(concurrency=10, rate=20.0)  # 20 requests a second between them
    budgets = [Budget(spec, provider="ups", shared=shared) for shared in (first, second)]

    async def request(budget: Budget) -> None:
        async with budget.slot():
            pass

    started = time.perf_counter()
    await asyncio.gather(*(request(budgets[i % 2]) for i in range(21)))
    elapsed = time.perf_counter() - started
    await first.close()
    await second.close()
    assert elapsed >= 0.95  # 21 requests at 20/s: the last waits 1 s, whichever process


async def test_an_unreachable_redis_falls_back_to_the_local_limit() -> None:
    shared = SharedRate.from_url("redis://127.0.0.1:1/0")
    budget = Budget(BudgetSpec(concurrency=1, rate=1000.0), provider="ups", shared=shared)
    async with budget.slot():
        pass
    assert shared.failed
    await shared.close()


async def test_the_engine_uses_the_shared_rate_when_redis_url_is_set(
    redis_url: str,
    make_engine: EngineFactory,
    add_shipment: ShipmentFactory,
    ups: FakeProvider,
    sync_settings: object,
) -> None:
    from parcelwatch.config import Settings

    assert isinstance(sync_settings, Settings)
    settings = sync_settings.model_copy(update={"redis_url": redis_url, "ups_rate_limit": 10.0})
    for _ in range(6):
        add_shipment("ups")
    engine = make_engine(settings=settings)
    started = time.perf_counter()
    summary = await engine.run_pass()
    elapsed = time.perf_counter() - started
    await engine.aclose()
    assert summary.updated == 6
    assert elapsed >= 0.45  # 6 requests at 10/s
    with redis.Redis.from_url(redis_url) as client:
        assert client.exists("parcelwatch:rate:ups")  # the schedule lives in Redis
