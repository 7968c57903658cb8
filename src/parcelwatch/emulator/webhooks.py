"""Signed ShipEngine `track` webhooks from the emulator's own key set, and that set's JWKS.

Signing follows ShipEngine: RSASSA-PKCS1-v1_5 with SHA-256 over `"{timestamp}.{raw body}"`,
base64 in `x-shipengine-rsa-sha256-signature`, the key's `kid` in
`x-shipengine-rsa-sha256-key-id` and the ISO-8601 time in `x-shipengine-timestamp`. The JWKS
(served at `/shipengine/jwks`) lists an EC key before the RSA one, as the real set holds both,
so a verifier has to select by `kid`.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from parcelwatch.emulator.wire import iso_utc

if TYPE_CHECKING:
    from parcelwatch.emulator.state import EmulatorState

__all__ = [
    "KeySet",
    "default_key_set",
    "generate_key_set",
    "send_shipengine_webhook",
    "sign_webhook",
    "track_event",
]

KEY_ID_HEADER = "x-shipengine-rsa-sha256-key-id"
SIGNATURE_HEADER = "x-shipengine-rsa-sha256-signature"
TIMESTAMP_HEADER = "x-shipengine-timestamp"


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class KeySet:
    rsa_key: rsa.RSAPrivateKey
    rsa_kid: str
    ec_key: ec.EllipticCurvePrivateKey
    ec_kid: str

    def jwks(self) -> dict[str, Any]:
        rsa_public = self.rsa_key.public_key().public_numbers()
        ec_public = self.ec_key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "EC",
                    "kid": self.ec_kid,
                    "use": "sig",
                    "alg": "ES256",
                    "crv": "P-256",
                    "x": _b64url_uint(ec_public.x),
                    "y": _b64url_uint(ec_public.y),
                },
                {
                    "kty": "RSA",
                    "kid": self.rsa_kid,
                    "use": "sig",
                    "alg": "RS256",
                    "n": _b64url_uint(rsa_public.n),
                    "e": _b64url_uint(rsa_public.e),
                },
            ]
        }

    def sign(self, timestamp: str, body: bytes) -> str:
        message = timestamp.encode() + b"." + body
        signature = self.rsa_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode()


def generate_key_set(*, rsa_kid: str = "emulator-rsa-1", ec_kid: str = "emulator-ec-1") -> KeySet:
    return KeySet(
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa_kid,
        ec.generate_private_key(ec.SECP256R1()),
        ec_kid,
    )


@lru_cache(maxsize=1)
def default_key_set() -> KeySet:
    """One key set per process (RSA generation is slow enough to matter in tests)."""
    return generate_key_set()


def sign_webhook(keys: KeySet, body: bytes, timestamp: datetime) -> dict[str, str]:
    """The three ShipEngine signature headers for `body` sent at `timestamp`."""
    stamp = iso_utc(timestamp, millis=True)
    return {
        KEY_ID_HEADER: keys.rsa_kid,
        SIGNATURE_HEADER: keys.sign(stamp, body),
        TIMESTAMP_HEADER: stamp,
    }


def track_event(state: EmulatorState, tracking_number: str, carrier_code: str) -> dict[str, Any]:
    """The `API_TRACK` webhook body: the same `data` as `GET /v1/tracking` returns now."""
    from parcelwatch.emulator import shipengine

    query = urlencode({"carrier_code": carrier_code, "tracking_number": tracking_number})
    return {
        "resource_url": f"{state.config.public_base_url}/shipengine/v1/tracking?{query}",
        "resource_type": "API_TRACK",
        "data": shipengine.tracking_body(state, tracking_number, carrier_code),
    }


async def send_shipengine_webhook(
    client: httpx.AsyncClient,
    url: str,
    tracking_number: str,
    carrier_code: str,
    *,
    state: EmulatorState,
    timestamp: datetime | None = None,
    extra_headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST a correctly signed `track` webhook for the number's current state to `url`.

    `timestamp` defaults to the real time now (receivers compare it with their clock, not the
    emulated one)."""
    body = json.dumps(track_event(state, tracking_number, carrier_code)).encode()
    headers = sign_webhook(state.keys, body, timestamp or datetime.now().astimezone())
    headers["content-type"] = "application/json"
    response = await client.post(url, content=body, headers={**headers, **(extra_headers or {})})
    state.stats.webhooks_sent += 1
    return response
