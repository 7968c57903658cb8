"""Registering parcelwatch's push endpoint with ShipEngine (`POST /v1/environment/webhooks`):
the documented request body, idempotent re-registration, a conflicting webhook refused, and
`parcelwatch carriers register-webhook` against a real emulator over a socket."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from parcelwatch.carriers.errors import AuthError, BadResponseError
from parcelwatch.carriers.shipengine import ShipEngineProvider
from parcelwatch.cli.main import app as cli
from parcelwatch.emulator import EmulatorConfig, create_emulator_app
from parcelwatch.emulator.server import run_in_thread
from parcelwatch.webhooks.router import SECRET_HEADER
from parcelwatch.webhooks.shipengine import (
    WEBHOOK_SECRET_HEADER,
    register_webhook,
    webhook_request,
)
from tests.carriers.conftest import sample

pytestmark = pytest.mark.anyio
DOCUMENTED_URL = "https://example.com/webhooks/shipengine/track"  # the sample's URL


def shipengine(app: Any, sent: list[httpx.Request], api_key: str = "key") -> ShipEngineProvider:
    async def keep(request: httpx.Request) -> None:
        sent.append(request)

    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), event_hooks={"request": [keep]}
    )
    return ShipEngineProvider(client=client, base_url="http://emulator/shipengine", api_key=api_key)


def test_the_request_body_is_shipengines_documented_one() -> None:
    assert webhook_request(DOCUMENTED_URL) == sample("shipengine", "webhook-create-request")


def test_the_push_secret_header_is_the_one_the_webhook_endpoint_checks() -> None:
    body = webhook_request(DOCUMENTED_URL, "whsec-1")
    assert body["headers"] == [{"key": SECRET_HEADER, "value": "whsec-1"}]
    assert WEBHOOK_SECRET_HEADER == SECRET_HEADER


async def test_registering_sends_the_documented_body_and_returns_the_webhook_id() -> None:
    app = create_emulator_app(EmulatorConfig(speed=0))
    sent: list[httpx.Request] = []
    carrier = shipengine(app, sent)

    registration = await register_webhook(carrier, DOCUMENTED_URL)

    assert registration.created
    assert registration.url == DOCUMENTED_URL
    assert registration.webhook_id == app.state.emulator.webhooks[0]["webhook_id"]
    assert sent[0].url.path == "/shipengine/v1/environment/webhooks"
    assert sent[0].headers["API-Key"] == "key"
    assert json.loads(sent[0].content) == sample("shipengine", "webhook-create-request")
    await carrier.client.aclose()


async def test_registering_the_same_url_again_changes_nothing() -> None:
    app = create_emulator_app(EmulatorConfig(speed=0))
    carrier = shipengine(app, [])
    first = await register_webhook(carrier, DOCUMENTED_URL)

    again = await register_webhook(carrier, DOCUMENTED_URL)

    assert not again.created
    assert again.webhook_id == first.webhook_id
    assert len(app.state.emulator.webhooks) == 1
    await carrier.client.aclose()


async def test_a_track_webhook_pointing_elsewhere_is_refused_naming_it() -> None:
    app = create_emulator_app(EmulatorConfig(speed=0))
    carrier = shipengine(app, [])
    await register_webhook(carrier, "https://old.example.com/hook")

    with pytest.raises(BadResponseError, match=r"old\.example\.com/hook") as caught:
        await register_webhook(carrier, DOCUMENTED_URL)

    assert caught.value.status_code == 409
    await carrier.client.aclose()


async def test_a_refused_api_key_is_an_auth_error() -> None:
    app = create_emulator_app(EmulatorConfig(speed=0, reject_credentials=True))
    carrier = shipengine(app, [])

    with pytest.raises(AuthError):
        await register_webhook(carrier, DOCUMENTED_URL)

    assert app.state.emulator.webhooks == []
    await carrier.client.aclose()


def test_the_command_registers_with_the_secret_and_exits_0(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = create_emulator_app(EmulatorConfig(speed=0))
    url = "https://parcels.example.com/api/webhooks/shipengine"
    with run_in_thread(app=app) as emulator:
        monkeypatch.setenv("SHIPENGINE_API_KEY", "the-shipengine-key")
        monkeypatch.setenv("SHIPENGINE_BASE_URL", f"{emulator}/shipengine")
        monkeypatch.setenv("SHIPENGINE_WEBHOOK_SECRET", "whsec-the-secret")

        result = CliRunner().invoke(cli, ["carriers", "register-webhook", url, "--json"])
        again = CliRunner().invoke(cli, ["carriers", "register-webhook", url])

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["registered"] is True
    assert document["created"] is True
    hooks = app.state.emulator.webhooks
    assert [(h["event"], h["url"]) for h in hooks] == [("track", url)]
    assert hooks[0]["headers"] == [{"key": SECRET_HEADER, "value": "whsec-the-secret"}]
    assert "whsec-the-secret" not in result.output
    assert again.exit_code == 0
    assert "already registered" in again.stdout


def test_the_command_without_an_api_key_exits_2() -> None:
    result = CliRunner().invoke(
        cli, ["carriers", "register-webhook", "https://parcels.example.com/api/webhooks/shipengine"]
    )
    assert result.exit_code == 2
    assert "SHIPENGINE_API_KEY" in result.output


def test_the_command_refuses_a_url_that_is_not_http() -> None:
    result = CliRunner().invoke(cli, ["carriers", "register-webhook", "parcels.example.com"])
    assert result.exit_code == 2
    assert "not an http:// or https:// URL" in result.output


def test_the_command_reports_a_refusal_and_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_emulator_app(EmulatorConfig(speed=0, reject_credentials=True))
    with run_in_thread(app=app) as emulator:
        monkeypatch.setenv("SHIPENGINE_API_KEY", "the-shipengine-key")
        monkeypatch.setenv("SHIPENGINE_BASE_URL", f"{emulator}/shipengine")
        result = CliRunner().invoke(
            cli, ["carriers", "register-webhook", "https://p.example.com/api/webhooks/shipengine"]
        )
    assert result.exit_code == 1
    assert "refused" in result.output
    assert "the-shipengine-key" not in result.output
