"""The one list of providers: every module under `carriers/` that speaks a tracking API.

Each entry is its module's `PROVIDER` spec (see `carriers/base.py`). The settings
(`config.Settings`), the registry, demo mode, health and `carriers check` iterate over this
tuple and never name a provider. Adding a provider is its module, one line here, its
emulator module and its samples.
"""

from __future__ import annotations

from parcelwatch.carriers import dhl, fedex, shipengine, ups, usps
from parcelwatch.carriers.base import ProviderSpec

__all__ = ["PROVIDERS", "provider_spec"]

PROVIDERS: tuple[ProviderSpec, ...] = (
    usps.PROVIDER,
    ups.PROVIDER,
    fedex.PROVIDER,
    dhl.PROVIDER,
    shipengine.PROVIDER,
)

_BY_CODE = {spec.code: spec for spec in PROVIDERS}


def provider_spec(code: str) -> ProviderSpec:
    """The spec of the provider `code` (`KeyError` for a code no provider has)."""
    return _BY_CODE[code]
