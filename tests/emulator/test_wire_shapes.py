"""Every emulated endpoint answers in its carrier's real wire shape (checked against the
shared samples: each key path the emulator sends exists in a real payload of that kind)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from starlette.applications import Starlette

from parcelwatch.emulator import Storyline

from .conftest import (
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

# Fields API-FACTS.md documents that none of the shared samples happens to contain.
USPS_EXTRA = frozenset({"expectedDeliveryDate"})
UPS_EXTRA = frozenset(
    f"trackResponse.shipment[].package[].activity[].{field}"
    for field in ("gmtDate", "gmtTime", "gmtOffset")
)
SHIPENGINE_EXTRA = frozenset({"status_detail_code"})

# Each storyline seen early (30 hours in) and once it has run its course (20 days in).
STAGES = [
    (story, age)
    for story in Storyline
    if story is not Storyline.NOT_FOUND
    for age in ("30h", "20d")
]
NUMBER = "EMU1234567890"


@pytest.fixture(params=STAGES, ids=[f"{story.value}-{age}" for story, age in STAGES])
async def staged(
    request: pytest.FixtureRequest, build: Callable[..., Starlette]
) -> httpx.AsyncClient:
    story, age = request.param
    return make_client(build(pins={NUMBER: {"storyline": story, "age": age}}))


async def test_usps_tracking_matches_the_real_v3_detail_shape(staged: httpx.AsyncClient) -> None:
    async with staged as client:
        token = await usps_token(client)
        response = await client.get(
            f"/usps/tracking/v3/tracking/{NUMBER}",
            params={"expand": "DETAIL"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200
    assert_shape_within(
        response.json(),
        sample("usps", "tracking-v3-detail-delivered.json"),
        sample("usps", "tracking-v3-detail-accepted-in-transit.json"),
        allowed=USPS_EXTRA,
    )


async def test_ups_tracking_matches_the_real_details_shape(staged: httpx.AsyncClient) -> None:
    async with staged as client:
        token = await ups_token(client)
        response = await client.get(
            f"/ups/api/track/v1/details/{NUMBER}", headers=ups_headers(token)
        )
    assert response.status_code == 200
    assert_shape_within(
        response.json(),
        sample("ups", "track-v1-details-delivered.json"),
        sample("ups", "track-v1-details-schema-example.json"),
        allowed=UPS_EXTRA,
    )


async def test_fedex_tracking_matches_the_real_trackingnumbers_shape(
    staged: httpx.AsyncClient,
) -> None:
    async with staged as client:
        token = await fedex_token(client)
        response = await client.post(
            "/fedex/track/v1/trackingnumbers",
            json=fedex_body(NUMBER),
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200
    assert_shape_within(
        response.json(),
        sample("fedex", "track-delivered.json"),
        sample("fedex", "track-duplicate-number-in-transit-and-delivered.json"),
        sample("fedex", "track-docs-example-with-not-found-result.json"),
    )


async def test_dhl_tracking_matches_the_real_unified_shape(staged: httpx.AsyncClient) -> None:
    async with staged as client:
        response = await client.get(
            "/dhl/track/shipments", params={"trackingNumber": NUMBER}, headers={"DHL-API-Key": "k"}
        )
    assert response.status_code == 200
    assert_shape_within(response.json(), sample("dhl", "track-shipments-docs-example.json"))


async def test_shipengine_tracking_matches_the_real_tracking_shape(
    staged: httpx.AsyncClient,
) -> None:
    async with staged as client:
        response = await client.get(
            "/shipengine/v1/tracking",
            params={"carrier_code": "ups", "tracking_number": NUMBER},
            headers={"API-Key": "k"},
        )
    assert response.status_code == 200
    assert_shape_within(
        response.json(),
        sample("shipengine", "tracking-get-delivered.json"),
        sample("shipengine", "tracking-get-status-unknown.json"),
        allowed=SHIPENGINE_EXTRA,
    )


@pytest.fixture
async def unknown(build: Callable[..., Starlette]) -> httpx.AsyncClient:
    return make_client(build(pins={NUMBER: "not_found"}))


async def test_usps_unknown_number_is_the_real_404_error_message(
    unknown: httpx.AsyncClient,
) -> None:
    async with unknown as client:
        token = await usps_token(client)
        response = await client.get(
            f"/usps/tracking/v3/tracking/{NUMBER}", headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 404
    assert response.json()["error"]["errors"][0]["code"] == "150006"
    assert_shape_within(
        response.json(), sample("usps", "tracking-v3r2-error-404-not-available.json")
    )


async def test_ups_unknown_number_is_http_200_with_the_tw0001_warning(
    unknown: httpx.AsyncClient,
) -> None:
    async with unknown as client:
        token = await ups_token(client)
        response = await client.get(
            f"/ups/api/track/v1/details/{NUMBER}", headers=ups_headers(token)
        )
    assert response.status_code == 200
    expected = sample("ups", "track-v1-not-found-200-warning.json")
    expected["trackResponse"]["shipment"][0]["inquiryNumber"] = NUMBER
    assert response.json() == expected


async def test_fedex_reports_unknown_numbers_inside_a_200_next_to_found_ones(
    build: Callable[..., Starlette],
) -> None:
    app = build(pins={NUMBER: "not_found", "123456789012": {"storyline": "normal", "age": "9d"}})
    async with make_client(app) as client:
        token = await fedex_token(client)
        response = await client.post(
            "/fedex/track/v1/trackingnumbers",
            json=fedex_body("123456789012", NUMBER),
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200
    entries = response.json()["output"]["completeTrackResults"]
    assert [entry["trackingNumber"] for entry in entries] == ["123456789012", NUMBER]
    assert entries[0]["trackResults"][0]["latestStatusDetail"]["code"] == "DL"
    assert entries[1]["trackResults"][0]["error"]["code"] == "TRACKING.TRACKINGNUMBER.NOTFOUND"
    assert_shape_within(
        response.json(), sample("fedex", "track-docs-example-with-not-found-result.json")
    )


async def test_dhl_unknown_number_is_a_404_problem_json(unknown: httpx.AsyncClient) -> None:
    async with unknown as client:
        response = await client.get(
            "/dhl/track/shipments", params={"trackingNumber": NUMBER}, headers={"DHL-API-Key": "k"}
        )
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    expected = sample("dhl", "error-404-not-found.json")
    assert response.json() == {**expected, "instance": f"/shipment/{NUMBER}"}


async def test_shipengine_unknown_number_is_200_not_yet_in_system(
    unknown: httpx.AsyncClient,
) -> None:
    async with unknown as client:
        response = await client.get(
            "/shipengine/v1/tracking",
            params={"carrier_code": "usps", "tracking_number": NUMBER},
            headers={"API-Key": "k"},
        )
    assert response.status_code == 200
    assert response.json()["status_code"] == "NY"
    assert response.json()["events"] == []


async def test_ups_token_sends_expires_in_as_a_string(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/ups/security/v1/oauth/token", data={"grant_type": "client_credentials"}, auth=("a", "b")
    )
    assert response.json()["expires_in"] == "14399"
    assert response.json()["token_type"] == "Bearer"


async def test_usps_and_fedex_tokens_send_numeric_lifetimes(client: httpx.AsyncClient) -> None:
    form = {"grant_type": "client_credentials", "client_id": "a", "client_secret": "b"}
    usps = await client.post("/usps/oauth2/v3/token", json=form)
    fedex = await client.post("/fedex/oauth/token", data=form)
    assert usps.json()["expires_in"] == 28799
    assert fedex.json()["expires_in"] == 3599
