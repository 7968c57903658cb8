"""Carrier API connectivity for the health report: each configured provider's `check()`,
cached briefly so a scraped or polled health endpoint does not hammer carrier token servers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from parcelwatch.carriers.base import Provider
from parcelwatch.carriers.errors import CarrierError, RateLimitedError
from parcelwatch.carriers.registry import open_registry
from parcelwatch.config import Settings
from parcelwatch.ops.checks import Check, Level

__all__ = ["CARRIER_CACHE", "CarrierCheckCache", "carrier_checks"]

CHECK_TIMEOUT_SECONDS = 10.0
CACHE_SECONDS = 60.0


class CarrierCheckCache:
    """Remembers each provider's last check result for `ttl` seconds."""

    def __init__(self, ttl: float = CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._entries: dict[tuple[str, str], tuple[float, Check]] = {}

    def get(self, key: tuple[str, str]) -> Check | None:
        entry = self._entries.get(key)
        if entry is None or time.monotonic() - entry[0] > self.ttl:
            return None
        return entry[1]

    def put(self, key: tuple[str, str], check: Check) -> None:
        self._entries[key] = (time.monotonic(), check)

    def clear(self) -> None:
        self._entries.clear()


CARRIER_CACHE = CarrierCheckCache()


async def carrier_checks(
    settings: Settings,
    providers: Mapping[str, Provider] | None = None,
    *,
    cache: CarrierCheckCache | None = CARRIER_CACHE,
) -> list[Check]:
    """One check per configured provider (`carrier:<code>`), or one `carriers` warning when
    none is configured: shipments can then be registered but are never polled."""
    if providers is not None:
        return await _check_all(providers, cache)
    async with open_registry(settings) as registry:
        return await _check_all(registry.providers, cache)


async def _check_all(
    providers: Mapping[str, Provider], cache: CarrierCheckCache | None
) -> list[Check]:
    if not providers:
        return [
            Check(
                "carriers",
                Level.WARNING,
                "No carrier API is configured: shipments can be registered but are never "
                "polled. Set a carrier's credentials (or SHIPENGINE_API_KEY).",
                {"configured": 0},
            )
        ]
    codes = sorted(providers)
    results = await asyncio.gather(*(_check_one(providers[code], cache) for code in codes))
    return list(results)


async def _check_one(provider: Provider, cache: CarrierCheckCache | None) -> Check:
    key = (provider.code, str(getattr(provider, "base_url", "")))
    cached = cache.get(key) if cache is not None else None
    if cached is not None:
        return cached
    started = time.perf_counter()
    try:
        await asyncio.wait_for(provider.check(), CHECK_TIMEOUT_SECONDS)
    except RateLimitedError as error:
        check = _result(provider, Level.WARNING, f"rate limited: {error.message}", started)
    except CarrierError as error:
        check = _result(
            provider, Level.CRITICAL, f"{type(error).__name__}: {error.message}", started
        )
    except TimeoutError:
        check = _result(
            provider, Level.CRITICAL, f"no answer within {CHECK_TIMEOUT_SECONDS:.0f}s", started
        )
    except Exception as error:  # a bug or transport failure must not break the report
        check = _result(provider, Level.CRITICAL, f"check failed: {type(error).__name__}", started)
    else:
        check = _result(provider, Level.OK, "API reachable, credentials accepted", started)
    if cache is not None:
        cache.put(key, check)
    return check


def _result(provider: Provider, level: Level, message: str, started: float) -> Check:
    figures: dict[str, Any] = {
        "provider": provider.code,
        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
    }
    return Check(f"carrier:{provider.code}", level, f"{provider.name}: {message}", figures)
