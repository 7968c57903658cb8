"""ShipEngine webhook signature checks, with a key pair of our own and a served JWKS."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from parcelwatch.webhooks.signatures import (
    KEY_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    JwksCache,
    SignatureProblem,
    verify_signature,
)

BODY = b'{"resource_type":"API_TRACK","data":{}}'


def _b64url(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class KeySet:
    """An RSA key served in a JWKS next to an EC key, like ShipEngine's own set."""

    def __init__(self) -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.fetches = 0
        numbers = self.private.public_key().public_numbers()
        self.document = {
            "keys": [
                {"kty": "EC", "kid": "ec-1", "crv": "P-256", "x": "AA", "y": "AA"},
                {"kty": "RSA", "kid": "rsa-1", "n": _b64url(numbers.n), "e": _b64url(numbers.e)},
            ]
        }

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        return httpx.Response(200, json=self.document)

    def sign(self, body: bytes, timestamp: str, kid: str = "rsa-1") -> dict[str, str]:
        signature = self.private.sign(
            timestamp.encode() + b"." + body, padding.PKCS1v15(), hashes.SHA256()
        )
        return {
            KEY_ID_HEADER: kid,
            SIGNATURE_HEADER: base64.b64encode(signature).decode(),
            TIMESTAMP_HEADER: timestamp,
        }


@pytest.fixture
def keyset() -> KeySet:
    return KeySet()


@pytest.fixture
def cache(keyset: KeySet) -> JwksCache:
    client = httpx.AsyncClient(transport=httpx.MockTransport(keyset.handler))
    return JwksCache(url="http://127.0.0.1/jwks", client=client)


def _now() -> str:
    return datetime.now(UTC).isoformat()


@pytest.mark.anyio
async def test_a_correctly_signed_body_is_accepted(keyset: KeySet, cache: JwksCache) -> None:
    await verify_signature(headers=keyset.sign(BODY, _now()), body=BODY, keys=cache)


@pytest.mark.anyio
async def test_keys_are_fetched_once_and_cached(keyset: KeySet, cache: JwksCache) -> None:
    for _ in range(3):
        await verify_signature(headers=keyset.sign(BODY, _now()), body=BODY, keys=cache)
    assert keyset.fetches == 1


@pytest.mark.anyio
async def test_a_changed_body_is_refused(keyset: KeySet, cache: JwksCache) -> None:
    headers = keyset.sign(BODY, _now())
    with pytest.raises(SignatureProblem) as caught:
        await verify_signature(headers=headers, body=BODY + b" ", keys=cache)
    assert caught.value.status_code == 401


@pytest.mark.anyio
async def test_a_signature_by_another_key_is_refused(cache: JwksCache) -> None:
    stranger = KeySet()
    with pytest.raises(SignatureProblem, match="does not match"):
        await verify_signature(headers=stranger.sign(BODY, _now()), body=BODY, keys=cache)


@pytest.mark.anyio
async def test_an_unknown_key_id_is_refused_without_refetching_every_time(
    keyset: KeySet, cache: JwksCache
) -> None:
    for _ in range(3):
        with pytest.raises(SignatureProblem, match="unknown key"):
            await verify_signature(
                headers=keyset.sign(BODY, _now(), kid="nope"), body=BODY, keys=cache
            )
    assert keyset.fetches == 1


@pytest.mark.anyio
async def test_the_ec_key_in_the_set_is_not_used_for_rsa_signatures(
    keyset: KeySet, cache: JwksCache
) -> None:
    with pytest.raises(SignatureProblem, match="unknown key"):
        await verify_signature(headers=keyset.sign(BODY, _now(), kid="ec-1"), body=BODY, keys=cache)


@pytest.mark.anyio
@pytest.mark.parametrize("missing", [KEY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER])
async def test_missing_headers_are_refused(keyset: KeySet, cache: JwksCache, missing: str) -> None:
    headers = keyset.sign(BODY, _now())
    del headers[missing]
    with pytest.raises(SignatureProblem) as caught:
        await verify_signature(headers=headers, body=BODY, keys=cache)
    assert caught.value.status_code == 404


@pytest.mark.anyio
@pytest.mark.parametrize("minutes", [-6, 6])
async def test_timestamps_more_than_five_minutes_off_are_refused(
    keyset: KeySet, cache: JwksCache, minutes: int
) -> None:
    stamp = (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()
    with pytest.raises(SignatureProblem) as caught:
        await verify_signature(headers=keyset.sign(BODY, stamp), body=BODY, keys=cache)
    assert caught.value.status_code == 400


@pytest.mark.anyio
async def test_small_clock_skew_is_tolerated(keyset: KeySet, cache: JwksCache) -> None:
    stamp = (datetime.now(UTC) - timedelta(minutes=4)).isoformat()
    await verify_signature(headers=keyset.sign(BODY, stamp), body=BODY, keys=cache)
