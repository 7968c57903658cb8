"""The emulator signs ShipEngine `track` webhooks so that its own JWKS verifies them."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from parcelwatch.emulator import create_emulator_app, emulator_state, send_shipengine_webhook

from .conftest import make_client, sample

pytestmark = pytest.mark.anyio

NUMBER = "1Z999AA10123456784"


def _uint(text: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


def public_key(jwks: dict[str, Any], kid: str) -> rsa.RSAPublicKey:
    key = next(k for k in jwks["keys"] if k["kid"] == kid)
    assert key["kty"] == "RSA"
    return rsa.RSAPublicNumbers(_uint(key["e"]), _uint(key["n"])).public_key()


def verify(jwks: dict[str, Any], headers: httpx.Headers | dict[str, str], body: bytes) -> None:
    key = public_key(jwks, headers["x-shipengine-rsa-sha256-key-id"])
    signature = base64.b64decode(headers["x-shipengine-rsa-sha256-signature"])
    message = headers["x-shipengine-timestamp"].encode() + b"." + body
    key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())


class Receiver:
    """A stand-in webhook endpoint that keeps what it was sent."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []

        async def hook(request: Request) -> Response:
            self.received.append((dict(request.headers), await request.body()))
            return Response(status_code=204)

        self.app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])


async def test_jwks_lists_an_ec_key_beside_the_rsa_key(client: httpx.AsyncClient) -> None:
    jwks = (await client.get("/shipengine/jwks")).json()
    assert {key["kty"] for key in jwks["keys"]} == {"EC", "RSA"}
    assert len({key["kid"] for key in jwks["keys"]}) == 2


async def test_a_sent_webhook_verifies_with_the_jwks_key_of_its_kid(
    build: Callable[..., Starlette],
) -> None:
    app = build(pins={NUMBER: {"storyline": "normal", "age": "10d"}})
    receiver = Receiver()
    async with make_client(app) as emulator, make_client(receiver.app) as to_receiver:
        jwks = (await emulator.get("/shipengine/jwks")).json()
        answer = await send_shipengine_webhook(
            to_receiver, "http://receiver/hook", NUMBER, "ups", state=emulator_state(app)
        )
        tracked = await emulator.get(
            "/shipengine/v1/tracking",
            params={"carrier_code": "ups", "tracking_number": NUMBER},
            headers={"API-Key": "k"},
        )
    assert answer.status_code == 204
    headers, body = receiver.received[0]
    verify(jwks, headers, body)
    stamp = datetime.fromisoformat(headers["x-shipengine-timestamp"])
    assert abs((stamp - datetime.now(UTC)).total_seconds()) < 60
    event = json.loads(body)
    assert event["resource_type"] == "API_TRACK"
    assert event["resource_url"].endswith(
        f"/shipengine/v1/tracking?carrier_code=ups&tracking_number={NUMBER}"
    )
    assert event["data"] == tracked.json()
    assert event["data"]["status_code"] == "DE"
    assert set(event) == set(sample("shipengine", "webhook-track-event.json"))


async def test_a_tampered_body_fails_verification(build: Callable[..., Starlette]) -> None:
    app = build(pins={NUMBER: "normal"})
    receiver = Receiver()
    async with make_client(app) as emulator, make_client(receiver.app) as to_receiver:
        jwks = (await emulator.get("/shipengine/jwks")).json()
        await send_shipengine_webhook(
            to_receiver, "http://receiver/hook", NUMBER, "ups", state=emulator_state(app)
        )
    headers, body = receiver.received[0]
    with pytest.raises(InvalidSignature):
        verify(jwks, headers, body.replace(b"API_TRACK", b"API_TRACX"))


async def test_the_control_endpoint_sends_a_signed_webhook() -> None:
    receiver = Receiver()
    async with make_client(receiver.app) as to_receiver:
        app = create_emulator_app(webhook_client=to_receiver)
        async with make_client(app) as emulator:
            answer = await emulator.post(
                "/_emulator/shipengine/webhooks",
                json={
                    "url": "http://receiver/hook",
                    "tracking_number": NUMBER,
                    "carrier_code": "ups",
                },
            )
            missing = await emulator.post("/_emulator/shipengine/webhooks", json={"url": "x"})
            jwks = (await emulator.get("/shipengine/jwks")).json()
            stats = (await emulator.get("/_emulator/stats")).json()
    assert answer.json()["status_code"] == 204
    assert missing.status_code == 422
    verify(jwks, *receiver.received[0])
    assert stats["webhooks_sent"] == 1
