"""Credentials, bearer tokens and their expiry, answered in each carrier's error shape."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from starlette.applications import Starlette

from .conftest import (
    FakeMonotonic,
    assert_shape_within,
    fedex_body,
    fedex_token,
    make_client,
    sample,
    ups_headers,
    ups_token,
    usps_token,
)

pytestmark = pytest.mark.anyio

NUMBER = "9400100000000000000017"
FORM = {"grant_type": "client_credentials", "client_id": "id", "client_secret": "secret"}


async def test_any_non_empty_credentials_are_accepted_by_default(client: httpx.AsyncClient) -> None:
    assert await usps_token(client)
    assert await ups_token(client)
    assert await fedex_token(client)


async def test_wrong_usps_secret_gets_the_real_invalid_client_answer(
    build: Callable[..., Starlette],
) -> None:
    app = build(credentials={"usps": {"client_id": "id", "client_secret": "right"}})
    async with make_client(app) as client:
        wrong = await client.post("/usps/oauth2/v3/token", data={**FORM, "client_secret": "bad"})
        right = await client.post("/usps/oauth2/v3/token", data={**FORM, "client_secret": "right"})
    assert wrong.status_code == 401
    assert wrong.json() == sample("usps", "oauth-token-error-invalid-client.json")
    assert right.status_code == 200


async def test_reject_credentials_refuses_every_carrier(build: Callable[..., Starlette]) -> None:
    async with make_client(build(reject_credentials=True)) as client:
        usps = await client.post("/usps/oauth2/v3/token", data=FORM)
        ups = await client.post(
            "/ups/security/v1/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=("a", "b"),
        )
        fedex = await client.post("/fedex/oauth/token", data=FORM)
        dhl = await client.get(
            "/dhl/track/shipments", params={"trackingNumber": NUMBER}, headers={"DHL-API-Key": "k"}
        )
        shipengine = await client.get(
            "/shipengine/v1/tracking",
            params={"carrier_code": "ups", "tracking_number": NUMBER},
            headers={"API-Key": "k"},
        )
        stats = (await client.get("/_emulator/stats")).json()
    assert [r.status_code for r in (usps, ups, fedex, dhl, shipengine)] == [401] * 5
    assert ups.json()["response"]["errors"][0]["code"] == "10401"
    assert fedex.json()["errors"][0]["code"] == "NOT.AUTHORIZED.ERROR"
    assert dhl.json()["title"] == "Unauthorized"
    assert shipengine.json()["errors"][0]["error_code"] == "unauthorized"
    assert_shape_within(shipengine.json(), sample("shipengine", "error-401-unauthorized.json"))
    assert stats["auth_failures"] == {"usps": 1, "ups": 1, "fedex": 1, "dhl": 1, "shipengine": 1}
    assert stats["tokens_issued"] == {}


async def test_ups_token_needs_http_basic(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/ups/security/v1/oauth/token", data={"grant_type": "client_credentials"}
    )
    assert response.status_code == 401


async def test_tracking_without_a_bearer_token_is_401_in_each_carrier_shape(
    client: httpx.AsyncClient,
) -> None:
    usps = await client.get(f"/usps/tracking/v3/tracking/{NUMBER}")
    ups = await client.get(f"/ups/api/track/v1/details/{NUMBER}", headers=ups_headers("nope"))
    fedex = await client.post("/fedex/track/v1/trackingnumbers", json=fedex_body(NUMBER))
    assert [r.status_code for r in (usps, ups, fedex)] == [401, 401, 401]
    assert_shape_within(usps.json(), sample("usps", "tracking-v3-error-401-unauthorized.json"))
    assert_shape_within(fedex.json(), sample("fedex", "error-401-not-authorized.json"))
    assert ups.json()["response"]["errors"][0]["code"] == "UJ0001"


async def test_api_key_carriers_refuse_requests_without_their_key_header(
    client: httpx.AsyncClient,
) -> None:
    dhl = await client.get("/dhl/track/shipments", params={"trackingNumber": NUMBER})
    shipengine = await client.get(
        "/shipengine/v1/tracking", params={"carrier_code": "ups", "tracking_number": NUMBER}
    )
    assert dhl.status_code == 401
    assert shipengine.status_code == 401


async def test_a_token_from_one_carrier_is_not_valid_at_another(client: httpx.AsyncClient) -> None:
    token = await usps_token(client)
    response = await client.get(f"/ups/api/track/v1/details/{NUMBER}", headers=ups_headers(token))
    assert response.status_code == 401


async def test_ups_tracking_requires_trans_id_and_transaction_src(
    client: httpx.AsyncClient,
) -> None:
    token = await ups_token(client)
    response = await client.get(
        f"/ups/api/track/v1/details/{NUMBER}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 400
    assert "transId" in response.json()["response"]["errors"][0]["message"]


async def test_tokens_expire_after_their_configured_lifetime(
    build: Callable[..., Starlette], monotonic: FakeMonotonic
) -> None:
    async with make_client(build(token_lifetimes={"fedex": 30})) as client:
        token = await fedex_token(client)
        call = {"json": fedex_body(NUMBER), "headers": {"Authorization": f"Bearer {token}"}}
        fresh = await client.post("/fedex/track/v1/trackingnumbers", **call)
        monotonic.now += 31
        stale = await client.post("/fedex/track/v1/trackingnumbers", **call)
        renewed = await fedex_token(client)
        again = await client.post(
            "/fedex/track/v1/trackingnumbers",
            json=fedex_body(NUMBER),
            headers={"Authorization": f"Bearer {renewed}"},
        )
    assert (fresh.status_code, stale.status_code, again.status_code) == (200, 401, 200)
    assert "expired" in stale.json()["errors"][0]["message"]


async def test_expiring_tokens_early_makes_the_next_call_401_expired(
    client: httpx.AsyncClient,
) -> None:
    token = await ups_token(client)
    before = await client.get(f"/ups/api/track/v1/details/{NUMBER}", headers=ups_headers(token))
    expired = await client.post("/_emulator/tokens/expire", json={"carrier": "ups"})
    after = await client.get(f"/ups/api/track/v1/details/{NUMBER}", headers=ups_headers(token))
    assert before.status_code == 200
    assert expired.json() == {"expired": 1}
    assert after.status_code == 401
    assert after.json()["response"]["errors"][0]["code"] == "251004"


async def test_usps_token_request_may_be_json(client: httpx.AsyncClient) -> None:
    response = await client.post("/usps/oauth2/v3/token", json=FORM)
    assert response.status_code == 200
    assert response.json()["token_type"] == "Bearer"
