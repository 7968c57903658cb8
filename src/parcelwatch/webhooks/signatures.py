"""ShipEngine webhook signatures: RSA-SHA256 over `{timestamp}.{raw body}`, keys from a JWKS.

The key set is fetched from SHIPENGINE_JWKS_URL, cached, and fetched again when a signature
names a key id the cache does not hold (ShipEngine rotates keys), at most once a minute so a
flood of forged key ids cannot turn us into a JWKS hammer.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = [
    "KEY_ID_HEADER",
    "MAX_CLOCK_SKEW",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "JwksCache",
    "SignatureProblem",
    "verify_signature",
]

KEY_ID_HEADER = "x-shipengine-rsa-sha256-key-id"
SIGNATURE_HEADER = "x-shipengine-rsa-sha256-signature"
TIMESTAMP_HEADER = "x-shipengine-timestamp"
MAX_CLOCK_SKEW = timedelta(minutes=5)
REFETCH_INTERVAL_SECONDS = 60.0


@dataclass
class SignatureProblem(Exception):
    """Why a webhook was refused; `status_code` is what the endpoint answers."""

    status_code: int
    detail: str

    def __str__(self) -> str:
        return self.detail


def _b64url_int(value: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


def _rsa_keys(document: Any) -> dict[str, rsa.RSAPublicKey]:
    keys: dict[str, rsa.RSAPublicKey] = {}
    for jwk in document.get("keys", []) if isinstance(document, dict) else []:
        if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or not jwk.get("kid"):
            continue  # the set also holds EC keys; we select RSA keys by kid
        try:
            numbers = rsa.RSAPublicNumbers(_b64url_int(jwk["e"]), _b64url_int(jwk["n"]))
            keys[str(jwk["kid"])] = numbers.public_key()
        except (KeyError, ValueError, binascii.Error):
            continue
    return keys


class JwksCache:
    """Public keys by key id, fetched from `url` through `client`."""

    def __init__(self, *, url: str, client: httpx.AsyncClient) -> None:
        self.url = url
        self.client = client
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def key(self, key_id: str) -> rsa.RSAPublicKey | None:
        if key_id in self._keys:
            return self._keys[key_id]
        async with self._lock:
            recently = (
                self._fetched_at is not None
                and time.monotonic() - self._fetched_at < REFETCH_INTERVAL_SECONDS
            )
            if key_id not in self._keys and not recently:
                await self._fetch()
        return self._keys.get(key_id)

    async def _fetch(self) -> None:
        self._fetched_at = time.monotonic()
        try:
            response = await self.client.get(self.url, timeout=10.0)
            response.raise_for_status()
            self._keys = _rsa_keys(response.json()) or self._keys
        except (httpx.HTTPError, ValueError) as error:
            raise SignatureProblem(
                503, f"Could not fetch the webhook signing keys ({type(error).__name__})."
            ) from None


def _parse_timestamp(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise SignatureProblem(400, "The webhook timestamp is not an ISO-8601 time.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def verify_signature(
    *,
    headers: dict[str, str],
    body: bytes,
    keys: JwksCache,
    now: datetime | None = None,
) -> datetime:
    """The signed timestamp; `SignatureProblem` unless the request carries a valid, fresh
    signature."""
    key_id = headers.get(KEY_ID_HEADER)
    signature = headers.get(SIGNATURE_HEADER)
    timestamp = headers.get(TIMESTAMP_HEADER)
    if not key_id or not signature or not timestamp:
        raise SignatureProblem(404, "Missing ShipEngine signature headers.")
    moment = _parse_timestamp(timestamp)
    if abs((now or datetime.now(UTC)) - moment) > MAX_CLOCK_SKEW:
        raise SignatureProblem(400, "The webhook timestamp is more than 5 minutes off.")
    try:
        signature_bytes = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureProblem(401, "The webhook signature is not valid base64.") from None
    public_key = await keys.key(key_id)
    if public_key is None:
        raise SignatureProblem(401, "The webhook is signed with an unknown key.")
    try:
        public_key.verify(
            signature_bytes,
            timestamp.encode() + b"." + body,
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except InvalidSignature:
        raise SignatureProblem(401, "The webhook signature does not match.") from None
    return moment
