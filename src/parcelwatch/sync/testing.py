"""A scriptable in-memory carrier and provider set for engine tests and dry benchmarks."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta

import httpx

from parcelwatch.carriers.base import Provider, TrackResult
from parcelwatch.carriers.errors import CarrierError
from parcelwatch.domain import Location, ShipmentStatus, TrackEvent, TrackInfo, utcnow

__all__ = ["FakeProvider", "StaticProviders", "scripted_info"]

Script = Callable[[str], TrackResult]


def scripted_info(number: str, status: ShipmentStatus = ShipmentStatus.IN_TRANSIT) -> TrackInfo:
    """A found parcel with one event a minute old (the same event every call)."""
    when = utcnow().replace(second=0, microsecond=0) - timedelta(minutes=1)
    event = TrackEvent(
        occurred_at=when,
        status=status,
        description=f"{status.value} scan",
        carrier_status_code=status.value.upper()[:2],
        location=Location(city="Memphis", state="TN", country="US"),
    )
    return TrackInfo(status=status, status_detail=f"{status.value} scan", events=(event,))


class FakeProvider(Provider):
    """Answers from `script(number)`; `fail_with` makes every request raise (a carrier-wide
    failure); `delay` simulates latency. Counts requests and numbers it was asked for."""

    code = "fake"
    name = "Fake carrier"

    def __init__(
        self,
        *,
        code: str = "fake",
        max_batch: int = 10,
        own_batch_size: bool = False,
        script: Script | None = None,
        delay: float = 0.0,
    ) -> None:
        super().__init__(client=httpx.AsyncClient())
        self.code = code  # type: ignore[misc]
        self.max_batch = max_batch
        self.own_batch_size = own_batch_size
        self.script: Script = script or (lambda n: TrackResult.found(n, scripted_info(n)))
        self.delay = delay
        self.fail_with: CarrierError | None = None
        self.requests = 0
        self.asked: Counter[str] = Counter()
        self.in_flight = 0
        self.peak_in_flight = 0

    async def track(self, numbers: Sequence[str], *, carrier: str) -> list[TrackResult]:
        assert len(numbers) <= self.max_batch, "the engine sent a batch over max_batch"
        self.requests += 1
        self.asked.update(numbers)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.fail_with is not None:
                raise self.fail_with
            return [self.script(number) for number in numbers]
        finally:
            self.in_flight -= 1

    async def check(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with


class StaticProviders:
    """Maps parcel carrier codes to providers (the registry's interface, for tests)."""

    def __init__(self, providers: Mapping[str, Provider]) -> None:
        self.providers = dict(providers)

    def provider_for(self, carrier_code: str) -> Provider | None:
        return self.providers.get(carrier_code)

    def unconfigured_reason(self, carrier_code: str) -> str | None:
        if carrier_code in self.providers:
            return None
        return f"no provider is configured for '{carrier_code}'"
