"""The emulated USPS Tracking 3.2 endpoint (`POST /tracking/v3r2/tracking`): 200 when every
number is found, 207 multi-status for a mixed batch, one `ErrorMessage` when every number
failed alike, 400 over the batch cap; bodies in the shapes of the shared samples."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from parcelwatch.emulator import usps

from .conftest import assert_shape_within, make_client, sample, usps_token

pytestmark = pytest.mark.anyio

PATH = "/usps/tracking/v3r2/tracking"
DELIVERED, MOVING, UNKNOWN = "EMU0000000001", "EMU0000000002", "EMU0000000003"
INVALID = "EMU-0000000004"
PINS = {
    DELIVERED: {"storyline": "normal", "age": "20d"},
    MOVING: {"storyline": "normal", "age": "30h"},
    UNKNOWN: "not_found",
}
TRACKING_SAMPLES = (
    "tracking-v3-detail-delivered.json",
    "tracking-v3-detail-accepted-in-transit.json",
)
ERROR_SAMPLE = "tracking-v3r2-error-404-not-available.json"
# Fields USPS documents that the shared samples happen not to contain: the expected delivery
# date, and the `statusCode` (+ `trackingNumber` on errors) the 207 entries add.
EXTRA = frozenset({"expectedDeliveryDate", "statusCode", "trackingNumber"})


@pytest.fixture
async def client(build: Callable[..., Starlette]) -> httpx.AsyncClient:
    return make_client(build(pins=PINS))


async def post(client: httpx.AsyncClient, body: Any) -> httpx.Response:
    token = await usps_token(client)
    return await client.post(PATH, json=body, headers={"Authorization": f"Bearer {token}"})


def numbers(*values: str) -> list[dict[str, str]]:
    return [{"trackingNumber": value} for value in values]


def samples(*names: str) -> list[Any]:
    return [sample("usps", name) for name in names]


async def test_a_batch_all_found_is_200_with_one_tracking_body_per_number(
    client: httpx.AsyncClient,
) -> None:
    async with client:
        response = await post(client, numbers(DELIVERED, MOVING))

    assert response.status_code == 200
    bodies = response.json()
    assert [body["trackingNumber"] for body in bodies] == [DELIVERED, MOVING]
    assert [body["statusCategory"] for body in bodies] == ["Delivered", "In Transit"]
    assert_shape_within(bodies[0], *samples(*TRACKING_SAMPLES), allowed=EXTRA)


async def test_a_mixed_batch_is_207_with_a_status_per_entry(client: httpx.AsyncClient) -> None:
    async with client:
        response = await post(client, numbers(DELIVERED, UNKNOWN, INVALID))

    assert response.status_code == 207
    found, unknown, invalid = response.json()
    assert (found["statusCode"], found["trackingNumber"]) == ("200", DELIVERED)
    assert found["statusCategory"] == "Delivered"
    assert (unknown["statusCode"], unknown["trackingNumber"]) == ("404", UNKNOWN)
    assert unknown["apiVersion"] == "/tracking/v3r2"
    assert unknown["error"]["errors"][0]["code"] == "150006"
    assert (invalid["statusCode"], invalid["trackingNumber"]) == ("400", INVALID)
    assert_shape_within(found, *samples(*TRACKING_SAMPLES), allowed=EXTRA)
    assert_shape_within(unknown, *samples(ERROR_SAMPLE), allowed=EXTRA)
    assert_shape_within(invalid, *samples(ERROR_SAMPLE), allowed=EXTRA)


async def test_a_batch_of_unknown_numbers_is_the_real_404_error_message(
    client: httpx.AsyncClient,
) -> None:
    async with client:
        response = await post(client, numbers(UNKNOWN))

    assert response.status_code == 404
    assert response.json()["apiVersion"] == "/tracking/v3r2"
    assert response.json()["error"]["errors"][0]["code"] == "150006"
    assert_shape_within(response.json(), *samples(ERROR_SAMPLE))


async def test_more_numbers_than_the_cap_is_a_400_for_the_whole_request(
    client: httpx.AsyncClient,
) -> None:
    too_many = [f"EMU{index:010d}" for index in range(usps.MAX_BATCH + 1)]
    async with client:
        response = await post(client, numbers(*too_many))

    assert response.status_code == 400
    assert str(usps.MAX_BATCH) in response.json()["error"]["message"]


@pytest.mark.parametrize("body", [[], {"trackingNumber": DELIVERED}, [{"number": DELIVERED}]])
async def test_a_body_that_is_not_an_array_of_tracking_numbers_is_a_400(
    client: httpx.AsyncClient, body: Any
) -> None:
    async with client:
        response = await post(client, body)

    assert response.status_code == 400


async def test_a_bad_token_is_the_401_error_message(client: httpx.AsyncClient) -> None:
    async with client:
        response = await client.post(
            PATH, json=numbers(DELIVERED), headers={"Authorization": "Bearer nope"}
        )

    assert response.status_code == 401
    assert response.json()["apiVersion"] == "/tracking/v3r2"
    assert_shape_within(response.json(), sample("usps", "tracking-v3-error-401-unauthorized.json"))
