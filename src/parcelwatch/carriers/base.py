"""The provider interface: a tracking API that is asked (USPS, UPS, FedEx, DHL, ShipEngine).

A provider has a code, the most numbers one request may carry, and `track`. Every provider
module subclasses `Provider` and describes itself in one `ProviderSpec` named `PROVIDER`:
its status tables, its credentials, the defaults of its settings and how it is built. The
registry, the settings, demo mode and health read those specs (`carriers/providers.py` lists
them); the sync engine never branches on a provider's name.

A provider's settings are its credentials plus `<CODE>_BASE_URL`, `<CODE>_MAX_CONCURRENCY`
`<CODE>_RATE_LIMIT`, `<CODE>_QUOTA`, and any `Option` of its own (USPS: `USPS_API_VERSION`,
`USPS_BATCH_SIZE`); `config.Settings` declares them from the specs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

import httpx

from parcelwatch.carriers.errors import CarrierError
from parcelwatch.carriers.statuses import StatusTable
from parcelwatch.domain import TrackInfo

__all__ = [
    "ApiKeyProvider",
    "Connection",
    "Credential",
    "Option",
    "Provider",
    "ProviderSpec",
    "TrackOutcome",
    "TrackResult",
    "numbers_per_request",
]


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
    `CarrierWideError` (or `BadResponseError`) when the whole request failed.

    `max_batch` is the most numbers one request carries; a provider whose options change it
    sets it per instance, from `batch_limit`. With `own_batch_size` that number is the
    operator's choice for this provider (`USPS_BATCH_SIZE`), and AUTO_UPDATE_BATCH_SIZE
    does not lower it (see `numbers_per_request`)."""

    code: ClassVar[str]
    name: ClassVar[str]
    max_batch: int = 1
    own_batch_size: bool = False

    def __init__(self, *, client: httpx.AsyncClient, timeout: float = 30.0) -> None:
        self.client = client
        self.timeout = timeout

    @abstractmethod
    async def track(self, numbers: Sequence[str], *, carrier: str) -> list[TrackResult]:
        """Track up to `max_batch` numbers of the parcel carrier `carrier`."""

    @abstractmethod
    async def check(self) -> None:
        """Make the cheapest authenticated call; raise a `CarrierError` when it fails."""

    @classmethod
    def batch_limit(cls, options: Mapping[str, Any]) -> int:
        """`max_batch` under these options (by constructor argument); without options of
        its own, the class's `max_batch`."""
        return cls.max_batch


def numbers_per_request(provider: Provider, batch_size: int) -> int:
    """How many numbers the sync engine puts in one request to `provider`: `batch_size`
    (AUTO_UPDATE_BATCH_SIZE) capped by what the provider accepts, or the provider's own
    batch size when it has one (`own_batch_size`: a setting for one provider overrides the
    setting for all)."""
    return _per_request(provider.max_batch, provider.own_batch_size, batch_size)


def _per_request(max_batch: int, own_batch_size: bool, batch_size: int) -> int:
    if own_batch_size:
        return max(1, max_batch)
    return max(1, min(batch_size, max_batch))


class ApiKeyProvider(Provider, ABC):
    """A provider API that authenticates each request with one API key (DHL, ShipEngine)."""

    def __init__(
        self, *, client: httpx.AsyncClient, base_url: str, api_key: str, timeout: float = 30.0
    ) -> None:
        super().__init__(client=client, timeout=timeout)
        self.base_url = base_url
        self._api_key = api_key


@dataclass(frozen=True, slots=True)
class Credential:
    """One credential setting, e.g. `usps_client_secret` (env `USPS_CLIENT_SECRET`), and the
    keyword of the provider's constructor it is given as (`client_secret`); a `secret` one is a
    `SecretStr`, never shown in logs, errors or `repr`."""

    setting: str
    argument: str
    secret: bool = True

    @property
    def variable(self) -> str:
        return self.setting.upper()


@dataclass(frozen=True, slots=True)
class Option:
    """A setting of one provider beyond its credentials, base URL and budget, e.g.
    `usps_api_version` (env `USPS_API_VERSION`): its pydantic type (with the validation that
    rejects a bad value), its default, and the keyword of the constructor it is given as."""

    setting: str
    argument: str
    annotation: Any
    default: Any

    @property
    def variable(self) -> str:
        return self.setting.upper()


@dataclass(frozen=True, slots=True)
class Connection:
    """What a provider is built from: its base URL, its credentials (by setting name, all
    set), the request timeout in seconds and its options (by constructor argument)."""

    base_url: str
    credentials: Mapping[str, str]
    timeout: float
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """Everything parcelwatch knows of one provider, declared in its module as `PROVIDER`."""

    provider_class: type[Provider]
    credentials: tuple[Credential, ...]  # all must be set for the provider to be configured
    base_url: str  # the default of <CODE>_BASE_URL: the real API
    max_concurrency: int  # the default of <CODE>_MAX_CONCURRENCY
    rate_limit: float  # the default of <CODE>_RATE_LIMIT, requests a second
    status_tables: Mapping[str, StatusTable]  # every table its parsers read, by name
    direct: bool = True  # tracks the parcel carrier of its own code; False: an aggregator
    options: tuple[Option, ...] = ()  # settings of its own, given to its constructor
    # The default of <CODE>_QUOTA (`carriers/quotas.py`): the carrier's published windows
    # beyond the per-second rate, from API-FACTS.md; "" when it publishes none.
    quota: str = ""

    def build(self, connection: Connection, client: httpx.AsyncClient) -> Provider:
        """The client: `provider_class(client=, base_url=, timeout=, <credential arguments>,
        <option arguments>)`."""
        arguments = {c.argument: connection.credentials[c.setting] for c in self.credentials}
        make: Callable[..., Provider] = self.provider_class
        return make(
            client=client,
            base_url=connection.base_url,
            timeout=connection.timeout,
            **arguments,
            **connection.options,
        )

    @property
    def code(self) -> str:
        return self.provider_class.code

    @property
    def name(self) -> str:
        return self.provider_class.name

    def max_batch(self, options: Mapping[str, Any]) -> int:
        """The most numbers one request carries under these options (by argument)."""
        return self.provider_class.batch_limit(options)

    def numbers_per_request(self, options: Mapping[str, Any], batch_size: int) -> int:
        """`numbers_per_request` for the provider these options would build."""
        own = self.provider_class.own_batch_size
        return _per_request(self.max_batch(options), own, batch_size)

    @property
    def base_url_setting(self) -> str:
        return f"{self.code}_base_url"

    @property
    def concurrency_setting(self) -> str:
        return f"{self.code}_max_concurrency"

    @property
    def rate_setting(self) -> str:
        return f"{self.code}_rate_limit"

    @property
    def quota_setting(self) -> str:
        return f"{self.code}_quota"
