"""The provider interface: a tracking API that is asked (USPS, UPS, FedEx, DHL, ShipEngine).

A provider has a code, the most numbers one request may carry, and `track`. Every provider
module subclasses `Provider`; the sync engine never branches on a provider's name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

import httpx

from parcelwatch.carriers.errors import CarrierError
from parcelwatch.domain import TrackInfo

__all__ = ["Provider", "TrackOutcome", "TrackResult"]


class TrackOutcome(StrEnum):
    FOUND = "found"
    NOT_FOUND = "not_found"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class TrackResult:
    """The answer for one tracking number: found (with `info`), not found, or an error."""

    tracking_number: str
    outcome: TrackOutcome
    info: TrackInfo | None = None
    error: CarrierError | None = None
    message: str | None = None

    @classmethod
    def found(cls, tracking_number: str, info: TrackInfo) -> TrackResult:
        return cls(tracking_number, TrackOutcome.FOUND, info=info)

    @classmethod
    def not_found(cls, tracking_number: str, message: str | None = None) -> TrackResult:
        return cls(tracking_number, TrackOutcome.NOT_FOUND, message=message)

    @classmethod
    def failed(cls, tracking_number: str, error: CarrierError) -> TrackResult:
        return cls(tracking_number, TrackOutcome.ERROR, error=error, message=str(error))


class Provider(ABC):
    """One provider API. `code` names the provider (`usps`, `ups`, `fedex`, `dhl`,
    `shipengine`); `track` receives numbers that all belong to the parcel carrier `carrier`
    (which equals `code` for the direct carriers, and is any ShipEngine carrier code for
    ShipEngine). It returns one result per number, in order, and raises a
    `CarrierWideError` (or `BadResponseError`) when the whole request failed."""

    code: ClassVar[str]
    name: ClassVar[str]
    max_batch: ClassVar[int] = 1

    def __init__(self, *, client: httpx.AsyncClient, timeout: float = 30.0) -> None:
        self.client = client
        self.timeout = timeout

    @abstractmethod
    async def track(self, numbers: Sequence[str], *, carrier: str) -> list[TrackResult]:
        """Track up to `max_batch` numbers of the parcel carrier `carrier`."""

    @abstractmethod
    async def check(self) -> None:
        """Make the cheapest authenticated call; raise a `CarrierError` when it fails."""
