"""Which provider tracks which carrier, why one is unconfigured, and `carriers check`."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from parcelwatch.carriers.registry import ProviderRegistry
from parcelwatch.cli.main import app
from parcelwatch.config import load_settings
from tests.carriers.conftest import sample

DIRECT = {
    "usps_client_id": "u",
    "usps_client_secret": "us",
    "ups_client_id": "p",
    "ups_client_secret": "ps",
    "fedex_api_key": "f",
    "fedex_secret_key": "fs",
    "dhl_api_key": "d",
}


def registry(**settings: Any) -> ProviderRegistry:
    return ProviderRegistry(load_settings(**settings), httpx.AsyncClient())


def test_auto_uses_the_carriers_own_api_when_its_credentials_are_set() -> None:
    reg = registry(**DIRECT, shipengine_api_key="se")

    assert {c: reg.provider_for(c).code for c in ("usps", "ups", "fedex", "dhl")} == {  # type: ignore[union-attr]
        "usps": "usps",
        "ups": "ups",
        "fedex": "fedex",
        "dhl": "dhl",
    }
    canada = reg.provider_for("canada_post")
    assert canada is not None
    assert canada.code == "shipengine"


def test_auto_falls_back_to_shipengine_for_a_carrier_without_credentials() -> None:
    reg = registry(shipengine_api_key="se", usps_client_id="only-the-id")

    provider = reg.provider_for("usps")

    assert provider is not None
    assert provider.code == "shipengine"


def test_direct_never_uses_shipengine() -> None:
    reg = registry(tracking_api_provider="direct", dhl_api_key="d", shipengine_api_key="se")

    assert reg.provider_for("usps") is None
    assert reg.unconfigured_reason("usps") == (
        "USPS_CLIENT_ID and USPS_CLIENT_SECRET not set (TRACKING_API_PROVIDER=direct)"
    )
    assert reg.provider_for("canada_post") is None
    assert "no direct API client" in (reg.unconfigured_reason("canada_post") or "")
    assert reg.unconfigured_reason("dhl") is None


def test_shipengine_mode_sends_everything_through_shipengine() -> None:
    reg = registry(**DIRECT, tracking_api_provider="shipengine", shipengine_api_key="se")

    assert {reg.provider_for(c).code for c in ("usps", "fedex", "canada_post")} == {  # type: ignore[union-attr]
        "shipengine"
    }


def test_unconfigured_reasons_name_the_missing_variables() -> None:
    reg = registry(ups_client_id="p")

    assert reg.unconfigured_reason("ups") == (
        "UPS_CLIENT_SECRET not set, and no SHIPENGINE_API_KEY to fall back on"
    )
    assert reg.unconfigured_reason("royal_mail") == (
        "royal_mail is tracked through ShipEngine, and SHIPENGINE_API_KEY is not set"
    )
    assert registry(tracking_api_provider="shipengine").unconfigured_reason("usps") == (
        "TRACKING_API_PROVIDER=shipengine but SHIPENGINE_API_KEY is not set"
    )


def test_carrier_list_says_provider_and_batch_size_for_each_carrier() -> None:
    rows = {row.code: row for row in registry(fedex_api_key="f", fedex_secret_key="s").carriers()}

    assert rows["fedex"].configured
    assert rows["fedex"].provider == "fedex"
    assert rows["fedex"].max_batch == 30
    assert not rows["usps"].configured
    assert rows["usps"].reason is not None
    assert "canada_post" in rows


@pytest.mark.parametrize(
    ("options", "max_batch"),
    [({}, 35), ({"usps_batch_size": 20}, 20), ({"usps_api_version": "v3"}, 1)],
)
def test_the_usps_batch_size_follows_its_api_version_and_usps_batch_size(
    options: dict[str, Any], max_batch: int
) -> None:
    reg = registry(**DIRECT, **options)
    rows = {row.code: row for row in reg.carriers()}

    assert rows["usps"].max_batch == max_batch  # what GET /api/carriers says
    assert reg.providers["usps"].max_batch == max_batch  # what the engine sends


def test_providers_get_the_individual_timeout_and_base_url() -> None:
    reg = registry(
        dhl_api_key="d",
        dhl_base_url="http://127.0.0.1:9000/dhl/",
        auto_update_individual_timeout="7s",
    )

    provider = reg.providers["dhl"]

    assert provider.timeout == 7
    assert provider.base_url == "http://127.0.0.1:9000/dhl"  # type: ignore[attr-defined]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_check_with_nothing_configured_exits_2(runner: CliRunner) -> None:
    result = runner.invoke(app, ["carriers", "check", "--json"])

    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert {p["outcome"] for p in document["providers"]} == {"not_configured"}


def test_check_reports_ok_and_auth_failed_per_provider(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/fedex/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3599})
        if request.url.path == "/shipengine/v1/tracking":
            return httpx.Response(401, json=sample("shipengine", "error-401-unauthorized"))
        return httpx.Response(404)

    monkeypatch.setattr(
        "parcelwatch.carriers.registry._transport", lambda *_: httpx.MockTransport(handler)
    )
    monkeypatch.setenv("FEDEX_API_KEY", "key")
    monkeypatch.setenv("FEDEX_SECRET_KEY", "the-fedex-secret")
    monkeypatch.setenv("FEDEX_BASE_URL", "http://emu.test/fedex")
    monkeypatch.setenv("SHIPENGINE_API_KEY", "the-shipengine-key")
    monkeypatch.setenv("SHIPENGINE_BASE_URL", "http://emu.test/shipengine")

    result = runner.invoke(app, ["carriers", "check", "--json"])

    assert result.exit_code == 1
    outcomes = {p["provider"]: p["outcome"] for p in json.loads(result.stdout)["providers"]}
    assert outcomes == {
        "usps": "not_configured",
        "ups": "not_configured",
        "fedex": "ok",
        "dhl": "not_configured",
        "shipengine": "auth_failed",
    }
    assert "the-shipengine-key" not in result.stdout
    assert "the-fedex-secret" not in result.stdout


def test_check_table_exits_0_when_every_configured_provider_is_ok(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(404))
    monkeypatch.setattr("parcelwatch.carriers.registry._transport", lambda *_: transport)
    monkeypatch.setenv("DHL_API_KEY", "key")

    result = runner.invoke(app, ["carriers", "check"])

    assert result.exit_code == 0
    assert "DHL" in result.stdout
    assert "ok" in result.stdout
