"""Every client against the carrier emulator, in process over `httpx.ASGITransport` and over a
real socket through `open_registry`: success, not found, token expiry, 401, 429, 5xx, malformed
bodies, connection resets and timeouts, each ending in the right result or error type."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from parcelwatch.carriers.base import Provider, TrackOutcome
from parcelwatch.carriers.errors import (
    AuthError,
    BadResponseError,
    BatchRefusedError,
    InvalidNumberError,
    RateLimitedError,
    UnavailableError,
)
from parcelwatch.carriers.oauth import OAuthProvider
from parcelwatch.carriers.registry import ProviderRegistry, open_registry
from parcelwatch.config import load_settings
from parcelwatch.domain import ShipmentStatus
from parcelwatch.emulator import EmulatorConfig, create_emulator_app
from parcelwatch.emulator.app import emulator_state
from parcelwatch.emulator.server import run_in_thread

pytestmark = pytest.mark.anyio

START = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
PROVIDERS = ("usps", "ups", "fedex", "dhl", "shipengine")
OAUTH = ("usps", "ups", "fedex")
NUMBERS = {
    "usps": "9400100000000000000{:03d}",
    "ups": "1Z999AA10123456{:03d}",
    "fedex": "77609433{:04d}",
    "dhl": "77777{:05d}",
    "shipengine": "1Z932R80039081{:04d}",
}
# The parcel carrier a provider is asked about (ShipEngine tracks UPS numbers here).
PARCEL_CARRIER = {"usps": "usps", "ups": "ups", "fedex": "fedex", "dhl": "dhl", "shipengine": "ups"}
STORYLINES = ("normal", "never_moves", "not_found", "cancelled")


def number(provider: str, storyline: str) -> str:
    return NUMBERS[provider].format(STORYLINES.index(storyline))


def pins(age: str) -> dict[str, Any]:
    return {number(p, s): {"storyline": s, "age": age} for p in PROVIDERS for s in STORYLINES}


def settings_for(base_url: str, **overrides: Any) -> Any:
    credentials = {
        "usps_client_id": "id",
        "usps_client_secret": "secret",
        "ups_client_id": "id",
        "ups_client_secret": "secret",
        "fedex_api_key": "id",
        "fedex_secret_key": "secret",
        "dhl_api_key": "key",
        "shipengine_api_key": "key",
    }
    urls = {f"{p}_base_url": f"{base_url}/{p}" for p in PROVIDERS}
    return load_settings(**credentials, **urls, **overrides)


Emulator = Callable[..., Any]


@pytest.fixture
def _keep_uvicorn_log_levels() -> Iterator[None]:
    """uvicorn sets its loggers' levels when it starts; later tests expect the defaults."""
    names = ("uvicorn", "uvicorn.error", "uvicorn.access")
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture(params=["in-process", "socket"])
def emulator(request: pytest.FixtureRequest) -> Emulator:
    """`async with emulator(**config) as (registry, app)`: clients wired to a fresh emulator,
    in process (`httpx.ASGITransport`) and over a real socket through `open_registry`, the
    clients the engine uses (aiohttp's wire under httpx)."""
    over_socket = request.param == "socket"
    if over_socket:
        request.getfixturevalue("_keep_uvicorn_log_levels")

    @asynccontextmanager
    async def open_emulator(
        age: str = "30d", settings: dict[str, Any] | None = None, **fields: Any
    ) -> AsyncIterator[tuple[ProviderRegistry, Starlette]]:
        config = EmulatorConfig(**{"speed": 0, "start": START, "pins": pins(age), **fields})
        app = create_emulator_app(config)
        overrides = settings or {}
        if over_socket:
            with run_in_thread(app=app) as base_url:
                async with open_registry(settings_for(base_url, **overrides)) as registry:
                    yield registry, app
            return
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport) as client:
            yield ProviderRegistry(settings_for("http://emulator", **overrides), client), app

    return open_emulator


async def track(registry: ProviderRegistry, provider: str, *numbers: str) -> list[Any]:
    carrier = registry.providers[provider]
    return await carrier.track(list(numbers), carrier=PARCEL_CARRIER[provider])


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_delivered_parcel_normalizes_from_the_emulator(
    emulator: Emulator, provider: str
) -> None:
    async with emulator() as (registry, _app):
        [result] = await track(registry, provider, number(provider, "normal"))

    assert result.outcome is TrackOutcome.FOUND
    info = result.info
    assert info.status is ShipmentStatus.DELIVERED
    assert len(info.events) >= 5
    times = [e.occurred_at for e in info.events]
    assert times == sorted(times, reverse=True)
    assert all(t.tzinfo is not None and t < START for t in times)
    assert info.events[0].status is ShipmentStatus.DELIVERED
    assert info.delivered_at is not None
    assert info.delivered_at - info.events[0].occurred_at < timedelta(seconds=1)
    assert info.signed_by
    assert info.tracking_url


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_parcel_in_transit_has_an_estimated_delivery(
    emulator: Emulator, provider: str
) -> None:
    async with emulator(age="1d") as (registry, _app):
        [result] = await track(registry, provider, number(provider, "normal"))

    assert result.info.status is ShipmentStatus.IN_TRANSIT
    assert result.info.estimated_delivery is not None
    assert result.info.estimated_delivery > START
    assert result.info.delivered_at is None


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_unknown_number_is_not_found(emulator: Emulator, provider: str) -> None:
    async with emulator() as (registry, _app):
        [result] = await track(registry, provider, number(provider, "not_found"))

    assert result.outcome is TrackOutcome.NOT_FOUND


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_label_that_never_moves_is_info_received(emulator: Emulator, provider: str) -> None:
    async with emulator() as (registry, _app):
        [result] = await track(registry, provider, number(provider, "never_moves"))

    assert result.info.status is ShipmentStatus.INFO_RECEIVED
    assert len(result.info.events) == 1


async def test_fedex_batch_of_mixed_found_and_not_found(emulator: Emulator) -> None:
    numbers = [number("fedex", s) for s in ("normal", "not_found", "cancelled", "never_moves")]

    async with emulator() as (registry, _app):
        results = await track(registry, "fedex", *numbers)

    assert [r.tracking_number for r in results] == numbers
    assert [r.outcome for r in results] == [
        TrackOutcome.FOUND,
        TrackOutcome.NOT_FOUND,
        TrackOutcome.FOUND,
        TrackOutcome.FOUND,
    ]
    assert results[2].info.status is ShipmentStatus.CANCELLED


def usps_tracking_calls(app: Starlette) -> int:
    stats = emulator_state(app).stats
    return stats.requests["usps"] - stats.tokens_issued["usps"]


async def test_usps_v3r2_mixed_batch_is_one_call_with_an_answer_per_number(
    emulator: Emulator,
) -> None:
    stories = ("normal", "not_found", "cancelled", "never_moves")
    numbers = [*(number("usps", s) for s in stories), "9400-NOT-VALID"]

    async with emulator() as (registry, app):
        results = await track(registry, "usps", *numbers)
        calls = usps_tracking_calls(app)

    assert calls == 1
    assert [r.tracking_number for r in results] == numbers
    assert [r.outcome for r in results] == [
        TrackOutcome.FOUND,
        TrackOutcome.NOT_FOUND,
        TrackOutcome.FOUND,
        TrackOutcome.FOUND,
        TrackOutcome.ERROR,
    ]
    assert results[0].info.status is ShipmentStatus.DELIVERED
    assert results[3].info.status is ShipmentStatus.INFO_RECEIVED
    assert isinstance(results[4].error, InvalidNumberError)


async def test_usps_v3_fallback_asks_one_number_a_request(emulator: Emulator) -> None:
    numbers = [number("usps", s) for s in ("normal", "not_found")]

    async with emulator(settings={"usps_api_version": "v3"}) as (registry, app):
        carrier = registry.providers["usps"]
        results = [(await track(registry, "usps", n))[0] for n in numbers]
        calls = usps_tracking_calls(app)

    assert carrier.max_batch == registry.max_batch("usps") == 1
    assert calls == 2
    assert [r.outcome for r in results] == [TrackOutcome.FOUND, TrackOutcome.NOT_FOUND]


async def test_usps_batch_over_the_emulators_cap_is_refused_naming_usps_batch_size(
    emulator: Emulator,
) -> None:
    numbers = [f"9400100000000001{index:03d}" for index in range(36)]

    async with emulator(settings={"usps_batch_size": 36}) as (registry, _app):
        with pytest.raises(BatchRefusedError, match="USPS_BATCH_SIZE"):
            await track(registry, "usps", *numbers)


@pytest.mark.parametrize("provider", OAUTH)
async def test_token_expired_mid_run_is_renewed_once(emulator: Emulator, provider: str) -> None:
    async with emulator() as (registry, app):
        first = await track(registry, provider, number(provider, "normal"))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://emulator"
        ) as control:
            expired = await control.post("/_emulator/tokens/expire", json={"carrier": provider})
        second = await track(registry, provider, number(provider, "normal"))
        carrier = registry.providers[provider]

    assert expired.json()["expired"] >= 1
    assert first[0].outcome is second[0].outcome is TrackOutcome.FOUND
    assert isinstance(carrier, OAuthProvider)
    assert carrier.tokens.fetches == 2


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_refused_credentials_are_an_auth_error(emulator: Emulator, provider: str) -> None:
    async with emulator(reject_credentials=True) as (registry, _app):
        with pytest.raises(AuthError) as caught:
            await track(registry, provider, number(provider, "normal"))

    assert "secret" not in str(caught.value).replace("SECRET", "")


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_rate_limit_is_rate_limited_with_retry_after(
    emulator: Emulator, provider: str
) -> None:
    async with emulator(rate_limits={provider: 0.01}) as (registry, _app):
        await track(registry, provider, number(provider, "normal"))
        with pytest.raises(RateLimitedError) as caught:
            await track(registry, provider, number(provider, "normal"))

    assert caught.value.retry_after is not None
    assert caught.value.retry_after >= 1


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("server_error", UnavailableError),
        ("connection_reset", UnavailableError),
        ("malformed", BadResponseError),
    ],
)
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_injected_faults_end_in_the_right_error(
    emulator: Emulator, provider: str, fault: str, error: type[Exception]
) -> None:
    async with emulator(faults={fault: 1.0}) as (registry, _app):
        with pytest.raises(error):
            await track(registry, provider, number(provider, "normal"))


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_check_passes_against_the_emulator(emulator: Emulator, provider: str) -> None:
    async with emulator() as (registry, _app):
        carrier: Provider = registry.providers[provider]
        await carrier.check()


@pytest.mark.usefixtures("_keep_uvicorn_log_levels")
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_carrier_that_does_not_answer_in_time_is_unavailable(provider: str) -> None:
    config = EmulatorConfig(
        speed=0, start=START, pins=pins("30d"), faults={"timeout": 1.0, "timeout_seconds": 0.5}
    )
    with run_in_thread(config) as base_url:
        settings = settings_for(base_url, auto_update_individual_timeout="0.1")
        async with open_registry(settings) as registry:
            with pytest.raises(UnavailableError, match="no answer within 0.1s"):
                await track(registry, provider, number(provider, "normal"))


@pytest.mark.usefixtures("_keep_uvicorn_log_levels")
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_connection_the_carrier_resets_is_a_failed_connection_not_a_timeout(
    provider: str,
) -> None:
    config = EmulatorConfig(
        speed=0, start=START, pins=pins("30d"), faults={"connection_reset": 1.0}
    )
    with run_in_thread(config) as base_url:
        settings = settings_for(base_url, auto_update_individual_timeout="5")
        async with open_registry(settings) as registry:
            with pytest.raises(UnavailableError, match=r"connection failed \(\w+\)"):
                await track(registry, provider, number(provider, "normal"))


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_refused_connection_is_a_failed_connection_not_a_timeout(provider: str) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = settings_for(f"http://127.0.0.1:{port}", auto_update_individual_timeout="5")
    async with open_registry(settings) as registry:
        with pytest.raises(UnavailableError, match=r"connection failed \(\w+\)") as raised:
            await track(registry, provider, number(provider, "normal"))
    assert "no answer" not in str(raised.value)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_held_answer_in_process_is_unavailable_after_the_deadline(
    provider: str,
) -> None:
    config = EmulatorConfig(
        speed=0, start=START, pins=pins("30d"), faults={"timeout": 1.0, "timeout_seconds": 30}
    )
    transport = httpx.ASGITransport(app=create_emulator_app(config))
    async with httpx.AsyncClient(transport=transport) as client:
        settings = settings_for("http://emulator", auto_update_individual_timeout="0.1")
        registry = ProviderRegistry(settings, client)
        with pytest.raises(UnavailableError, match="no answer within 0.1s"):
            await track(registry, provider, number(provider, "normal"))
