"""Fixtures for sync engine tests: fast settings, shipments made through the service, an
engine over scriptable fake carriers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from parcelwatch.carriers.registry import open_registry
from parcelwatch.config import Settings, load_settings
from parcelwatch.emulator.app import create_emulator_app
from parcelwatch.emulator.config import EmulatorConfig
from parcelwatch.emulator.server import run_in_thread
from parcelwatch.models import Shipment
from parcelwatch.shipments.service import register_shipment
from parcelwatch.sync.circuit import BreakerPolicy
from parcelwatch.sync.engine import EngineOptions, SyncEngine
from parcelwatch.sync.retry import ProviderRetryPolicy
from parcelwatch.sync.testing import FakeProvider, StaticProviders
from tests.conftest import Database

FAST_RETRY = ProviderRetryPolicy(retries=3, base=0.001, cap=0.01, max_retry_after=0.05)


@asynccontextmanager
async def engine_for(
    settings: Settings, database: Database, **options: object
) -> AsyncIterator[SyncEngine]:
    """An engine with the real carrier clients (`open_registry`) and fast retries."""
    async with open_registry(settings) as registry:
        engine = SyncEngine(
            settings=settings,
            db=database.engine,
            providers=registry,
            options=EngineOptions(retry=FAST_RETRY, **options),  # type: ignore[arg-type]
        )
        try:
            yield engine
        finally:
            engine.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def sync_settings(database: Database) -> Settings:
    """The test database, the updater off, generous budgets so tests run fast."""
    rates = {f"{code}_rate_limit": 1000.0 for code in ("usps", "ups", "fedex", "dhl", "shipengine")}
    return load_settings(
        database_url=database.url.replace("postgresql+psycopg://", "postgresql://"),
        auto_update_enabled=False,
        auto_update_max_retries=3,
        quota_pacing=False,
        _env_file=None,
        **rates,
    )


@pytest.fixture
def ups() -> FakeProvider:
    return FakeProvider(code="ups", max_batch=1)


@pytest.fixture
def fedex() -> FakeProvider:
    return FakeProvider(code="fedex", max_batch=30)


EngineFactory = Callable[..., SyncEngine]


@pytest.fixture
def make_engine(
    database: Database, sync_settings: Settings, ups: FakeProvider, fedex: FakeProvider
) -> Iterator[EngineFactory]:
    engines: list[SyncEngine] = []

    def build(**options: object) -> SyncEngine:
        settings = options.pop("settings", sync_settings)
        providers = options.pop("providers", StaticProviders({"ups": ups, "fedex": fedex}))
        engine = SyncEngine(
            settings=settings,  # type: ignore[arg-type]
            db=database.engine,
            providers=providers,  # type: ignore[arg-type]
            options=EngineOptions(
                **{  # type: ignore[arg-type]
                    "retry": FAST_RETRY,
                    "breaker": BreakerPolicy(failure_threshold=2, cooldown=60),
                    **options,
                }
            ),
        )
        engines.append(engine)
        return engine

    yield build
    for engine in engines:
        engine.close()


ShipmentFactory = Callable[..., Shipment]


@pytest.fixture
def add_shipment(database: Database) -> ShipmentFactory:
    """Register a shipment through the service, then set any field directly."""
    counter = iter(range(1, 1_000_000))

    def add(carrier: str = "ups", **fields: object) -> Shipment:
        prefix = "".join(c for c in carrier.upper() if c.isalnum())
        number = fields.pop("tracking_number", None) or f"1Z{prefix}{next(counter):010d}"
        with database.sessions.begin() as session:
            shipment, _ = register_shipment(session, tracking_number=str(number), carrier=carrier)
            for name, value in fields.items():
                setattr(shipment, name, value)
        return shipment

    return add


def reload(database: Database, shipment_id: int) -> Shipment:
    with database.sessions() as session:
        shipment = session.get(Shipment, shipment_id)
        assert shipment is not None
        session.expunge(shipment)
        return shipment


def ago(now: datetime, **delta: float) -> datetime:
    return now - timedelta(**delta)


async def eventually(predicate: Callable[[], bool], *, seconds: float = 5.0) -> None:
    """Wait until `predicate()` holds (polling), failing after `seconds`."""
    import asyncio

    for _ in range(int(seconds / 0.005)):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached in time")


@dataclass
class Emulator:
    url: str
    app: Starlette

    def stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/_emulator/stats").json()  # type: ignore[no-any-return]

    def polls(self, carrier: str, number: str) -> int:
        return int(self.stats()["tracking_numbers"].get(carrier, {}).get(number, 0))

    def settings_for(self, database: Database, **overrides: Any) -> Settings:
        """Settings with every provider configured against this emulator."""
        return load_settings(**(self.values(database) | overrides))

    def environment(self, database: Database, **overrides: Any) -> dict[str, str]:
        """The same as environment variables, for commands."""
        values = self.values(database) | overrides
        values.pop("_env_file")
        return {
            name.upper(): str(value).lower() if isinstance(value, bool) else str(value)
            for name, value in values.items()
        }

    def values(self, database: Database) -> dict[str, Any]:
        values: dict[str, Any] = {
            "database_url": database.url.replace("postgresql+psycopg://", "postgresql://"),
            "auto_update_enabled": False,
            "auto_update_max_retries": 3,
            "usps_base_url": f"{self.url}/usps",
            "usps_client_id": "id",
            "usps_client_secret": "secret",
            "ups_base_url": f"{self.url}/ups",
            "ups_client_id": "id",
            "ups_client_secret": "secret",
            "fedex_base_url": f"{self.url}/fedex",
            "fedex_api_key": "key",
            "fedex_secret_key": "secret",
            "dhl_base_url": f"{self.url}/dhl",
            "dhl_api_key": "key",
            "shipengine_base_url": f"{self.url}/shipengine",
            "shipengine_api_key": "key",
            # Whole windows at once: a test's few calls must not depend on the time of day
            # (tests of pacing turn it on).
            "quota_pacing": False,
            "_env_file": None,
        }
        for code in ("usps", "ups", "fedex", "dhl", "shipengine"):
            values[f"{code}_rate_limit"] = 500.0
            values[f"{code}_max_concurrency"] = 4
        return values


@contextmanager
def running_emulator(**config: Any) -> Iterator[Emulator]:
    app = create_emulator_app(EmulatorConfig(**config))
    with run_in_thread(app=app) as url:
        yield Emulator(url, app)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """The carrier emulator on a real port, numbers two days into their storylines."""
    with running_emulator(head_start=timedelta(days=2)) as running:
        yield running
