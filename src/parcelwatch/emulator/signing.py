"""The emulator's ShipEngine signing keys: the key set, its JWKS, and the signature headers.

Signing follows ShipEngine: RSASSA-PKCS1-v1_5 with SHA-256 over `"{timestamp}.{raw body}"`,
base64 in `x-shipengine-rsa-sha256-signature`, the key's `kid` in
`x-shipengine-rsa-sha256-key-id` and the ISO-8601 time in `x-shipengine-timestamp`. The JWKS
(served at `/shipengine/jwks`) lists an EC key before the RSA one, as the real set holds both,
so a verifier has to select by `kid`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from parcelwatch.emulator.wire import iso_utc

__all__ = [
    "KEY_ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "KeySet",
    "default_key_set",
    "generate_key_set",
    "sign_webhook",
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
