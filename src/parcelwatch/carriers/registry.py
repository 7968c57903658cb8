"""The one place providers are listed: which are configured, and which tracks a carrier.

A shipment's *carrier* moves the parcel (`usps`, `canada_post`, ...); its *provider* is the
API asked. `TRACKING_API_PROVIDER` decides:
- `auto` (default): the carrier's own API when its credentials are set, else ShipEngine
  when `SHIPENGINE_API_KEY` is set;
- `direct`: only the carriers' own APIs (USPS, UPS, FedEx, DHL);
- `shipengine`: everything through ShipEngine.
A provider is configured when its credentials are set. The sync engine asks
`provider_for(carrier)` and never branches on a carrier's name.

Adding a provider: one module and one `ProviderSpec` line below.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import httpx
from httpx_aiohttp import AiohttpTransport
from pydantic import SecretStr

from parcelwatch.carriers.base import Provider
from parcelwatch.carriers.catalog import CARRIERS, DIRECT_CARRIERS
from parcelwatch.carriers.dhl import DhlProvider
from parcelwatch.carriers.fedex import FedexProvider
from parcelwatch.carriers.shipengine import ShipEngineProvider
from parcelwatch.carriers.ups import UpsProvider
from parcelwatch.carriers.usps import UspsProvider
from parcelwatch.config import Settings

__all__ = [
    "PROVIDERS",
    "ProviderRegistry",
    "CarrierStatus",
    "ProviderSpec",
    "Routing",
    "open_registry",
]

SHIPENGINE = "shipengine"


def _secret(settings: Settings, field: str) -> str:
    value = getattr(settings, field)
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value.strip() if isinstance(value, str) else ""


def _timeout(settings: Settings) -> float:
    return settings.auto_update_individual_timeout.total_seconds()


def _usps(settings: Settings, client: httpx.AsyncClient) -> Provider:
    return UspsProvider(
        client=client,
        base_url=settings.usps_base_url,
        client_id=_secret(settings, "usps_client_id"),
        client_secret=_secret(settings, "usps_client_secret"),
        timeout=_timeout(settings),
    )


def _ups(settings: Settings, client: httpx.AsyncClient) -> Provider:
    return UpsProvider(
        client=client,
        base_url=settings.ups_base_url,
        client_id=_secret(settings, "ups_client_id"),
        client_secret=_secret(settings, "ups_client_secret"),
        timeout=_timeout(settings),
    )


def _fedex(settings: Settings, client: httpx.AsyncClient) -> Provider:
    return FedexProvider(
        client=client,
        base_url=settings.fedex_base_url,
        client_id=_secret(settings, "fedex_api_key"),
        client_secret=_secret(settings, "fedex_secret_key"),
        timeout=_timeout(settings),
    )


def _dhl(settings: Settings, client: httpx.AsyncClient) -> Provider:
    return DhlProvider(
        client=client,
        base_url=settings.dhl_base_url,
        api_key=_secret(settings, "dhl_api_key"),
        timeout=_timeout(settings),
    )


def _shipengine(settings: Settings, client: httpx.AsyncClient) -> Provider:
    return ShipEngineProvider(
        client=client,
        base_url=settings.shipengine_base_url,
        api_key=_secret(settings, "shipengine_api_key"),
        timeout=_timeout(settings),
    )


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    carrier_class: type[Provider]
    credential_fields: tuple[str, ...]  # Settings fields that must all be set
    build: Callable[[Settings, httpx.AsyncClient], Provider]

    @property
    def code(self) -> str:
        return self.carrier_class.code

    @property
    def name(self) -> str:
        return self.carrier_class.name

    @property
    def max_batch(self) -> int:
        return self.carrier_class.max_batch

    def missing(self, settings: Settings) -> list[str]:
        """The environment variables still unset, e.g. `["USPS_CLIENT_SECRET"]`."""
        return [f.upper() for f in self.credential_fields if not _secret(settings, f)]


PROVIDERS: dict[str, ProviderSpec] = {
    spec.code: spec
    for spec in (
        ProviderSpec(UspsProvider, ("usps_client_id", "usps_client_secret"), _usps),
        ProviderSpec(UpsProvider, ("ups_client_id", "ups_client_secret"), _ups),
        ProviderSpec(FedexProvider, ("fedex_api_key", "fedex_secret_key"), _fedex),
        ProviderSpec(DhlProvider, ("dhl_api_key",), _dhl),
        ProviderSpec(ShipEngineProvider, ("shipengine_api_key",), _shipengine),
    )
}


@dataclass(frozen=True, slots=True)
class CarrierStatus:
    """One row of `GET /api/carriers`."""

    code: str
    name: str
    configured: bool
    provider: str | None
    max_batch: int | None
    reason: str | None  # why it is not configured


class Routing:
    """Which provider tracks which carrier, decided from the settings alone (no network)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.mode = settings.tracking_api_provider
        self.configured = frozenset(
            code for code, spec in PROVIDERS.items() if not spec.missing(settings)
        )

    def provider_code_for(self, carrier_code: str) -> str | None:
        """The code of the provider that tracks `carrier_code`, or None."""
        direct = carrier_code if carrier_code in DIRECT_CARRIERS else None
        if self.mode == "direct":
            return direct if direct in self.configured else None
        if self.mode == SHIPENGINE:
            return SHIPENGINE if SHIPENGINE in self.configured else None
        if direct is not None and direct in self.configured:
            return direct
        return SHIPENGINE if SHIPENGINE in self.configured else None

    def unconfigured_reason(self, carrier_code: str) -> str | None:
        """Why the carrier's shipments are not polled, in words an operator can act on."""
        carrier = carrier_code
        if self.provider_code_for(carrier) is not None:
            return None
        if self.mode == SHIPENGINE:
            return "TRACKING_API_PROVIDER=shipengine but SHIPENGINE_API_KEY is not set"
        if carrier in DIRECT_CARRIERS:
            unset = " and ".join(PROVIDERS[carrier].missing(self.settings))
            if self.mode == "direct":
                return f"{unset} not set (TRACKING_API_PROVIDER=direct)"
            return f"{unset} not set, and no SHIPENGINE_API_KEY to fall back on"
        if self.mode == "direct":
            return (
                f"{carrier} has no direct API client; "
                "it needs TRACKING_API_PROVIDER=auto or shipengine"
            )
        return f"{carrier} is tracked through ShipEngine, and SHIPENGINE_API_KEY is not set"

    def tracked(self) -> frozenset[str]:
        """The carriers some configured provider tracks."""
        return frozenset(code for code in CARRIERS if self.provider_code_for(code) is not None)

    def carriers(self) -> list[CarrierStatus]:
        """Every carrier parcelwatch knows, with its provider or the reason it has none."""
        rows = []
        for code, info in CARRIERS.items():
            provider = self.provider_code_for(code)
            rows.append(
                CarrierStatus(
                    code=code,
                    name=info.name,
                    configured=provider is not None,
                    provider=provider,
                    max_batch=PROVIDERS[provider].max_batch if provider else None,
                    reason=self.unconfigured_reason(code),
                )
            )
        return rows

    def limits(self, provider: str) -> tuple[int, float]:
        """The engine's budget for a provider: (max concurrency, requests per second)."""
        concurrency = int(getattr(self.settings, f"{provider}_max_concurrency"))
        rate = float(getattr(self.settings, f"{provider}_rate_limit"))
        return concurrency, rate


class ProviderRegistry(Routing):
    """The configured providers, each built over an `httpx.AsyncClient`.

    `client` is shared by every provider; `clients` (by provider code) overrides it for the
    providers it names. `open_registry` gives each provider a pool of its own, sized to its
    concurrency: httpcore scans every pooled connection on each request, so one pool for all
    carriers costs time in proportion to the sum of their concurrencies.
    """

    def __init__(
        self,
        settings: Settings,
        client: httpx.AsyncClient,
        clients: Mapping[str, httpx.AsyncClient] | None = None,
    ) -> None:
        super().__init__(settings)
        self.client = client
        own = clients or {}
        self.providers: dict[str, Provider] = {
            code: PROVIDERS[code].build(settings, own.get(code, client))
            for code in sorted(self.configured)
        }

    def provider_for(self, carrier_code: str) -> Provider | None:
        """The provider that tracks the carrier's shipments, or None (see
        `unconfigured_reason`)."""
        code = self.provider_code_for(carrier_code)
        return self.providers[code] if code is not None else None


def _transport(tls: ssl.SSLContext, limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    """The wire under every carrier client: aiohttp's connection pool and C HTTP parser
    behind httpx's API (httpx-aiohttp, by an httpx maintainer). httpcore's pool re-checks
    every pooled connection on each request, which was most of the engine's CPU per call."""
    return AiohttpTransport(verify=tls, limits=limits)


def _client(tls: ssl.SSLContext, max_connections: int | None = None) -> httpx.AsyncClient:
    limits = (
        httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        if max_connections
        else httpx.Limits()
    )
    return httpx.AsyncClient(
        headers={"User-Agent": "parcelwatch"},
        follow_redirects=False,
        transport=_transport(tls, limits),
        verify=tls,
    )


@asynccontextmanager
async def open_registry(
    settings: Settings, client: httpx.AsyncClient | None = None
) -> AsyncIterator[ProviderRegistry]:
    """A registry over `client`, or over new clients closed on exit (commands, the engine)."""
    if client is not None:
        yield ProviderRegistry(settings, client)
        return
    routing = Routing(settings)
    tls = httpx.create_ssl_context()  # one for all: each reads the whole CA bundle
    async with AsyncExitStack() as stack:
        shared = await stack.enter_async_context(_client(tls))
        own = {
            code: await stack.enter_async_context(
                _client(tls, routing.limits(code)[0] + 1)
            )  # +1: a token fetch
            for code in sorted(routing.configured)
        }
        yield ProviderRegistry(settings, shared, own)
