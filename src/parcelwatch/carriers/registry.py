"""Which providers are configured, which tracks a carrier, and building them from settings.

A shipment's *carrier* moves the parcel (`usps`, `canada_post`, ...); its *provider* is the
API asked. `TRACKING_API_PROVIDER` decides:
- `auto` (default): the carrier's own API when its credentials are set, else ShipEngine
  when `SHIPENGINE_API_KEY` is set;
- `direct`: only the carriers' own APIs (the providers whose spec is `direct`);
- `shipengine`: everything through ShipEngine.
A provider is configured when its credentials are set. The sync engine asks
`provider_for(carrier)` and never branches on a carrier's name. The providers themselves
are listed once, in `carriers/providers.py`.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_aiohttp import AiohttpTransport
from pydantic import SecretStr

from parcelwatch.carriers.base import Connection, Credential, Provider, ProviderSpec
from parcelwatch.carriers.catalog import CARRIERS
from parcelwatch.carriers.providers import PROVIDERS, provider_spec
from parcelwatch.config import Settings

__all__ = [
    "DIRECT_CARRIERS",
    "CarrierStatus",
    "ProviderRegistry",
    "Routing",
    "budget",
    "connection",
    "credential",
    "missing_credentials",
    "open_registry",
    "options",
]

SHIPENGINE = "shipengine"
# The carriers that have their own API client; the rest go through ShipEngine.
DIRECT_CARRIERS = tuple(spec.code for spec in PROVIDERS if spec.direct)


def credential(settings: Settings, item: Credential) -> str:
    """The credential's value, stripped; "" when unset."""
    value = getattr(settings, item.setting)
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value.strip() if isinstance(value, str) else ""


def missing_credentials(spec: ProviderSpec, settings: Settings) -> list[str]:
    """The provider's environment variables still unset, e.g. `["USPS_CLIENT_SECRET"]`."""
    return [item.variable for item in spec.credentials if not credential(settings, item)]


def options(spec: ProviderSpec, settings: Settings) -> dict[str, Any]:
    """The provider's own options (`spec.options`), by constructor argument."""
    return {option.argument: getattr(settings, option.setting) for option in spec.options}


def connection(spec: ProviderSpec, settings: Settings) -> Connection:
    """What `spec.build` needs from the settings."""
    return Connection(
        base_url=str(getattr(settings, spec.base_url_setting)),
        credentials={item.setting: credential(settings, item) for item in spec.credentials},
        timeout=settings.auto_update_individual_timeout.total_seconds(),
        options=options(spec, settings),
    )


def budget(spec: ProviderSpec, settings: Settings) -> tuple[int, float]:
    """The engine's budget for a provider: (max concurrency, requests per second)."""
    concurrency = int(getattr(settings, spec.concurrency_setting))
    rate = float(getattr(settings, spec.rate_setting))
    return concurrency, rate


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
            spec.code for spec in PROVIDERS if not missing_credentials(spec, settings)
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
            unset = " and ".join(missing_credentials(provider_spec(carrier), self.settings))
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
                    max_batch=self.max_batch(provider) if provider else None,
                    reason=self.unconfigured_reason(code),
                )
            )
        return rows

    def max_batch(self, provider: str) -> int:
        """The most numbers one request to `provider` carries under these settings."""
        spec = provider_spec(provider)
        return spec.max_batch(options(spec, self.settings))

    def limits(self, provider: str) -> tuple[int, float]:
        """The engine's budget for a provider: (max concurrency, requests per second)."""
        return budget(provider_spec(provider), self.settings)


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
            code: provider_spec(code).build(
                connection(provider_spec(code), settings), own.get(code, client)
            )
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
