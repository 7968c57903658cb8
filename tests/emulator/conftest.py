"""Fixtures for the carrier emulator tests: a frozen-clock emulator and a client on it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from parcelwatch.emulator import EmulatorClock, EmulatorConfig, create_emulator_app

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "carrier-samples"
START = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def sample(carrier: str, name: str) -> Any:
    return json.loads((SAMPLES / carrier / name).read_text())


class FakeMonotonic:
    """A real-time clock the test moves by hand (token lifetimes, rate limits)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_app(config: EmulatorConfig | None = None, **fields: Any) -> Starlette:
    """An emulator whose emulated clock is frozen at START unless `speed` says otherwise."""
    config = config or EmulatorConfig(**{"speed": 0, "start": START, **fields})
    return create_emulator_app(config)


def make_client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://emulator")


@pytest.fixture
def monotonic() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def build(monotonic: FakeMonotonic) -> Callable[..., Starlette]:
    """Build an emulator app on a frozen emulated clock and the fake real-time clock."""

    def factory(**fields: Any) -> Starlette:
        config = EmulatorConfig(**{"speed": 0, "start": START, **fields})
        clock = EmulatorClock(speed=config.speed, start=config.start, monotonic=monotonic)
        return create_emulator_app(config, clock=clock)

    return factory


@pytest.fixture
async def client(build: Callable[..., Starlette]) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(build()) as http:
        yield http


async def usps_token(client: httpx.AsyncClient) -> str:
    response = await client.post(
        "/usps/oauth2/v3/token",
        data={"grant_type": "client_credentials", "client_id": "id", "client_secret": "secret"},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def ups_token(client: httpx.AsyncClient) -> str:
    response = await client.post(
        "/ups/security/v1/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=("id", "secret"),
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def fedex_token(client: httpx.AsyncClient) -> str:
    response = await client.post(
        "/fedex/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "id", "client_secret": "secret"},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def ups_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "transId": "t-1", "transactionSrc": "tests"}


def fedex_body(*numbers: str) -> dict[str, Any]:
    return {
        "includeDetailedScans": True,
        "trackingInfo": [{"trackingNumberInfo": {"trackingNumber": n}} for n in numbers],
    }


def key_paths(value: Any, prefix: str = "") -> set[str]:
    """Every key path in a JSON document, lists written `[]`: `a.b[].c`."""
    paths: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            paths.add(path)
            paths |= key_paths(item, path)
    elif isinstance(value, list):
        for item in value:
            paths |= key_paths(item, f"{prefix}[]")
    return paths


def assert_shape_within(answer: Any, *samples: Any, allowed: frozenset[str] = frozenset()) -> None:
    """Every key path of `answer` exists in one of the real `samples` (or is `allowed`)."""
    known = set().union(*(key_paths(s) for s in samples)) | allowed
    unknown = sorted(key_paths(answer) - known)
    assert not unknown, f"key paths not in the real samples: {unknown}"
