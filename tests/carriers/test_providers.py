"""A provider is one module: every provider in `carriers/providers.py` brings its status
tables, its settings (with the contract's names), its default budget, how it is built, an
emulator module and real samples; and a sixth provider needs no edit anywhere else."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping

import httpx
import pytest
from starlette.routing import Route

from parcelwatch.carriers.base import Provider, ProviderSpec
from parcelwatch.carriers.providers import PROVIDERS, provider_spec
from parcelwatch.carriers.registry import ProviderRegistry, Routing, connection
from parcelwatch.config import Settings, load_settings
from parcelwatch.demo import demo_settings
from parcelwatch.domain import ShipmentStatus
from parcelwatch.emulator.app import create_emulator_app
from parcelwatch.emulator.config import EmulatorConfig
from tests.carriers.conftest import SAMPLES

pytestmark = pytest.mark.anyio

IDS = [spec.code for spec in PROVIDERS]
# The contract's variables (DESIGN.md) for the providers it names.
CONTRACT_CREDENTIALS = {
    "usps": ["USPS_CLIENT_ID", "USPS_CLIENT_SECRET"],
    "ups": ["UPS_CLIENT_ID", "UPS_CLIENT_SECRET"],
    "fedex": ["FEDEX_API_KEY", "FEDEX_SECRET_KEY"],
    "dhl": ["DHL_API_KEY"],
    "shipengine": ["SHIPENGINE_API_KEY"],
}


def module_of(spec: ProviderSpec) -> object:
    return importlib.import_module(spec.provider_class.__module__)


def test_the_provider_list_holds_every_provider_module_once() -> None:
    assert IDS == ["usps", "ups", "fedex", "dhl", "shipengine"]
    for spec in PROVIDERS:
        assert module_of(spec).PROVIDER is spec  # type: ignore[attr-defined]
        assert module_of(spec).__name__ == f"parcelwatch.carriers.{spec.code}"
        assert provider_spec(spec.code) is spec


@pytest.mark.parametrize("spec", PROVIDERS, ids=IDS)
def test_each_provider_owns_its_status_tables(spec: ProviderSpec) -> None:
    module = module_of(spec)
    assert spec.status_tables
    for table in spec.status_tables.values():
        assert table
        assert all(isinstance(status, ShipmentStatus) for status in table.values())
    # Every table the module defines is declared in its spec (none hides elsewhere).
    defined = [
        value
        for name, value in vars(module).items()
        if name.isupper() and isinstance(value, Mapping) and value
        if all(isinstance(v, ShipmentStatus) for v in value.values())
    ]
    assert {id(t) for t in defined} == {id(t) for t in spec.status_tables.values()}


@pytest.mark.parametrize("spec", PROVIDERS, ids=IDS)
def test_each_provider_declares_its_settings_under_the_contract_names(
    spec: ProviderSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert [c.variable for c in spec.credentials] == CONTRACT_CREDENTIALS[spec.code]
    fields = Settings.model_fields
    for setting in (spec.base_url_setting, spec.concurrency_setting, spec.rate_setting):
        assert setting in fields
    assert fields[spec.base_url_setting].default == spec.base_url
    for item in spec.credentials:
        monkeypatch.setenv(item.variable, f"{item.setting}-value")
    monkeypatch.setenv(spec.base_url_setting.upper(), f"http://127.0.0.1:9/{spec.code}/")
    settings = load_settings(_env_file=None)
    assert Routing(settings).configured >= {spec.code}
    built = connection(spec, settings)
    assert built.base_url == f"http://127.0.0.1:9/{spec.code}"
    assert built.credentials == {c.setting: f"{c.setting}-value" for c in spec.credentials}
    for item in spec.credentials:
        shown = repr(getattr(settings, item.setting))
        assert (f"{item.setting}-value" in shown) is not item.secret


@pytest.mark.parametrize("spec", PROVIDERS, ids=IDS)
def test_each_provider_has_a_default_budget_the_settings_can_change(spec: ProviderSpec) -> None:
    assert spec.max_concurrency >= 1
    assert spec.rate_limit > 0
    defaults = Routing(load_settings(_env_file=None))
    assert defaults.limits(spec.code) == (spec.max_concurrency, spec.rate_limit)
    changed = Routing(
        load_settings(_env_file=None, **{spec.concurrency_setting: 7, spec.rate_setting: 0.5})
    )
    assert changed.limits(spec.code) == (7, 0.5)


@pytest.mark.parametrize("spec", PROVIDERS, ids=IDS)
async def test_each_provider_has_an_emulator_and_samples_and_is_built_from_its_spec(
    spec: ProviderSpec,
) -> None:
    emulator = importlib.import_module(f"parcelwatch.emulator.{spec.code}")
    assert callable(emulator.routes)
    app = create_emulator_app(EmulatorConfig())
    paths = [route.path for route in app.routes if isinstance(route, Route)]
    assert any(path.startswith(f"/{spec.code}/") for path in paths)
    assert list((SAMPLES / spec.code).glob("*.json"))

    # Demo mode configures it against the emulator, and the registry builds it from the spec.
    settings = demo_settings(load_settings(_env_file=None), "http://emulator.test")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport) as client:
        registry = ProviderRegistry(settings, client)
        provider = registry.providers[spec.code]
        assert isinstance(provider, spec.provider_class)
        assert isinstance(provider, Provider)
        await provider.check()


def test_a_sixth_provider_is_one_module_and_one_line_in_the_provider_list() -> None:
    """A new provider (OnTrac's own API, say) declared the way the five are: the settings read
    its variables, the registry routes its carrier to it, demo mode and `carriers check`
    see it, without an edit to config, registry, demo or health."""
    script = textwrap.dedent(
        """
        from collections.abc import Sequence

        import parcelwatch.carriers.providers as listed
        from parcelwatch.carriers.base import Credential, Provider, ProviderSpec, TrackResult
        from parcelwatch.domain import ShipmentStatus

        class OntracProvider(Provider):
            code = "ontrac"
            name = "OnTrac"
            max_batch = 5

            def __init__(self, *, client, base_url: str, api_key: str, timeout: float) -> None:
                super().__init__(client=client, timeout=timeout)
                self.base_url, self.api_key = base_url, api_key

            async def track(self, numbers: Sequence[str], *, carrier: str) -> list[TrackResult]:
                return []

            async def check(self) -> None:
                return None

        spec = ProviderSpec(
            provider_class=OntracProvider,
            credentials=(Credential("ontrac_api_key", "api_key"),),
            base_url="https://api.ontrac.example",
            max_concurrency=3,
            rate_limit=2.5,
            status_tables={"codes": {"dl": ShipmentStatus.DELIVERED}},
        )
        listed.PROVIDERS = (*listed.PROVIDERS, spec)  # the one line a new provider adds
        listed._BY_CODE["ontrac"] = spec

        import asyncio
        import json

        from parcelwatch.carriers.cli import check_providers
        from parcelwatch.carriers.registry import Routing, open_registry
        from parcelwatch.config import load_settings
        from parcelwatch.demo import demo_requested, demo_settings
        from parcelwatch.web.runtime import provider_rows

        settings = load_settings(_env_file=None)
        routing = Routing(settings)
        demo = demo_settings(load_settings(_env_file=None, ontrac_api_key=""), "http://emu")

        async def built():
            async with open_registry(settings) as registry:
                return type(registry.providers["ontrac"]).__name__

        print(json.dumps({
            "base_url": settings.ontrac_base_url,
            "configured": sorted(routing.configured),
            "provider_for_ontrac": routing.provider_code_for("ontrac"),
            "limits": routing.limits("ontrac"),
            "demo_requested": demo_requested(settings),
            "demo_base_url": demo.ontrac_base_url,
            "demo_configured": "ontrac" in Routing(demo).configured,
            "rows": [row.code for row in provider_rows(settings)],
            "checked": [(r.provider, r.outcome) for r in asyncio.run(check_providers(settings))],
            "built": asyncio.run(built()),
        }))
        """
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("USPS_", "UPS_", "FEDEX_", "DHL_", "SHIPENGINE_", "PARCELWATCH_"))
    }
    env |= {"ONTRAC_API_KEY": "k", "ONTRAC_BASE_URL": "http://127.0.0.1:9/ontrac/"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {
        "base_url": "http://127.0.0.1:9/ontrac",
        "configured": ["ontrac"],
        "provider_for_ontrac": "ontrac",
        "limits": [3, 2.5],
        "demo_requested": False,
        "demo_base_url": "http://emu/ontrac",
        "demo_configured": True,
        "rows": [*IDS, "ontrac"],
        "checked": [*([code, "not_configured"] for code in IDS), ["ontrac", "ok"]],
        "built": "OntracProvider",
    }
