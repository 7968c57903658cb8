"""Knobs: rate limits answer 429 + Retry-After, faults show as documented, stats count it."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from parcelwatch.emulator.config import Latency
from parcelwatch.emulator.faults import sample_latency

from .conftest import (
    FakeMonotonic,
    assert_shape_within,
    fedex_body,
    fedex_token,
    make_client,
    sample,
    ups_headers,
    ups_token,
)

pytestmark = pytest.mark.anyio

NUMBER = "1Z999AA10123456784"


async def ups_track(client: httpx.AsyncClient, token: str, number: str = NUMBER) -> httpx.Response:
    return await client.get(f"/ups/api/track/v1/details/{number}", headers=ups_headers(token))


async def dhl_track(client: httpx.AsyncClient, number: str = NUMBER) -> httpx.Response:
    return await client.get(
        "/dhl/track/shipments", params={"trackingNumber": number}, headers={"DHL-API-Key": "k"}
    )


async def test_over_the_rate_limit_ups_answers_429_with_retry_after(
    build: Callable[..., Starlette], monotonic: FakeMonotonic
) -> None:
    async with make_client(build(rate_limits={"ups": 1.0})) as client:
        token = await ups_token(client)
        allowed = await ups_track(client, token)
        limited = await ups_track(client, token)
        monotonic.now += 1.0
        later = await ups_track(client, token)
        stats = (await client.get("/_emulator/stats")).json()
    assert (allowed.status_code, limited.status_code, later.status_code) == (200, 429, 200)
    assert limited.headers["Retry-After"] == "1"
    assert limited.json() == sample("ups", "error-429-too-many-requests.json")
    assert stats["rate_limited"] == {"ups": 1}


async def test_dhl_and_shipengine_429s_use_their_real_bodies(
    build: Callable[..., Starlette],
) -> None:
    app = build(rate_limits={"dhl": 0.5, "shipengine": 0.5})
    async with make_client(app) as client:
        await dhl_track(client)
        dhl = await dhl_track(client)
        params = {"carrier_code": "ups", "tracking_number": NUMBER}
        await client.get("/shipengine/v1/tracking", params=params, headers={"API-Key": "k"})
        shipengine = await client.get(
            "/shipengine/v1/tracking", params=params, headers={"API-Key": "k"}
        )
    assert dhl.status_code == shipengine.status_code == 429
    assert dhl.headers["Retry-After"] == shipengine.headers["Retry-After"] == "2"
    assert dhl.json() == sample("dhl", "error-429-too-many-requests.json")
    assert_shape_within(
        shipengine.json(), sample("shipengine", "error-429-rate-limit-exceeded.json")
    )
    assert shipengine.json()["errors"][0]["error_code"] == "rate_limit_exceeded"


async def test_server_error_faults_give_500_envelopes_and_gateway_pages(
    build: Callable[..., Starlette],
) -> None:
    async with make_client(build(faults={"server_error": 1.0})) as client:
        answers = [await dhl_track(client) for _ in range(12)]
        stats = (await client.get("/_emulator/stats")).json()
    statuses = {answer.status_code for answer in answers}
    assert statuses <= {500, 502, 503}
    assert 500 in statuses
    assert statuses & {502, 503}
    json_500 = next(a for a in answers if a.status_code == 500)
    assert json_500.json()["status"] == 500
    page = next(a for a in answers if a.status_code != 500)
    assert page.headers["content-type"].startswith("text/html")
    assert stats["faults"] == {"dhl": {"server_error": 12}}
    assert stats["faults_total"] == 12


async def test_faults_spare_token_endpoints_unless_asked(build: Callable[..., Starlette]) -> None:
    async with make_client(build(faults={"server_error": 1.0})) as client:
        assert await ups_token(client)
    app = build(faults={"server_error": 1.0, "on_token_endpoints": True})
    async with make_client(app) as client:
        response = await client.post(
            "/ups/security/v1/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=("a", "b"),
        )
    assert response.status_code >= 500


async def test_a_timeout_fault_holds_the_answer_past_the_client_deadline(
    build: Callable[..., Starlette],
) -> None:
    app = build(faults={"timeout": 1.0, "timeout_seconds": 5})
    async with make_client(app) as client:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            with anyio.fail_after(0.3):
                await dhl_track(client)
    assert time.monotonic() - started < 2


async def test_a_malformed_fault_sends_half_a_json_body(build: Callable[..., Starlette]) -> None:
    async with make_client(build(faults={"malformed": 1.0})) as client:
        response = await dhl_track(client)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.text.startswith('{"shipments"')
    with pytest.raises(ValueError, match="Expecting|Unterminated"):
        response.json()


async def test_malformed_numbers_get_half_a_body_and_the_others_a_whole_one(
    build: Callable[..., Starlette],
) -> None:
    other = NUMBER[:-1] + ("1" if NUMBER[-1] != "1" else "2")
    async with make_client(build(faults={"malformed_numbers": [NUMBER]})) as client:
        bad = await dhl_track(client)
        good = await dhl_track(client, other)
    assert bad.status_code == 200
    with pytest.raises(ValueError, match="Expecting|Unterminated"):
        bad.json()
    assert good.json()["shipments"]


async def test_a_token_expiry_fault_expires_the_presented_token(
    build: Callable[..., Starlette],
) -> None:
    async with make_client(build(faults={"token_expiry": 1.0})) as client:
        token = await ups_token(client)
        response = await ups_track(client, token)
        dhl = await dhl_track(client)
        stats = (await client.get("/_emulator/stats")).json()
    assert response.status_code == 401
    assert response.json()["response"]["errors"][0]["code"] == "251004"
    assert dhl.status_code == 200  # API-key carriers have no token to expire
    assert stats["faults"] == {"ups": {"token_expiry": 1}}


async def test_a_connection_reset_fault_raises_a_transport_error_in_process(
    build: Callable[..., Starlette],
) -> None:
    async with make_client(build(faults={"connection_reset": 1.0})) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await dhl_track(client)


async def test_per_carrier_fault_rates_override_the_global_ones(
    build: Callable[..., Starlette],
) -> None:
    app = build(faults={"carriers": {"dhl": {"server_error": 1.0}}})
    async with make_client(app) as client:
        dhl = await dhl_track(client)
        token = await ups_token(client)
        ups = await ups_track(client, token)
    assert dhl.status_code >= 500
    assert ups.status_code == 200


async def test_faults_are_the_same_for_the_same_seed_and_request_order(
    build: Callable[..., Starlette],
) -> None:
    async def statuses(seed: int) -> list[int]:
        async with make_client(build(seed=seed, faults={"server_error": 0.4})) as client:
            return [(await dhl_track(client)).status_code for _ in range(20)]

    first, again, other = await statuses(1), await statuses(1), await statuses(2)
    assert first == again
    assert first != other
    assert 200 in first
    assert any(code >= 500 for code in first)


async def test_fixed_latency_delays_each_carrier_answer(build: Callable[..., Starlette]) -> None:
    async with make_client(build(latency={"ms": 120})) as client:
        started = time.monotonic()
        await dhl_track(client)
        elapsed = time.monotonic() - started
    assert elapsed >= 0.11


def test_latency_distributions_stay_in_bounds_and_repeat() -> None:
    uniform = Latency(distribution="uniform", min_ms=50, max_ms=300)
    normal = Latency(distribution="normal", mean_ms=200, stddev_ms=80, min_ms=10, max_ms=400)
    draws = [sample_latency(uniform, seed=1, carrier="ups", index=i) for i in range(200)]
    assert all(0.05 <= d <= 0.3 for d in draws)
    assert draws == [sample_latency(uniform, seed=1, carrier="ups", index=i) for i in range(200)]
    normals = [sample_latency(normal, seed=1, carrier="ups", index=i) for i in range(200)]
    assert all(0.01 <= d <= 0.4 for d in normals)
    assert 0.15 < sum(normals) / len(normals) < 0.25


async def test_stats_count_requests_numbers_tokens_and_reset_clears_them(
    client: httpx.AsyncClient,
) -> None:
    token = await fedex_token(client)
    await client.post(
        "/fedex/track/v1/trackingnumbers",
        json=fedex_body("111111111111", "222222222222"),
        headers={"Authorization": f"Bearer {token}"},
    )
    await dhl_track(client, "JJD000001")
    await dhl_track(client, "JJD000001")
    stats = (await client.get("/_emulator/stats")).json()
    assert stats["requests"] == {"fedex": 2, "dhl": 2}
    assert stats["requests_total"] == 4
    assert stats["tracking_numbers"] == {
        "fedex": {"111111111111": 1, "222222222222": 1},
        "dhl": {"JJD000001": 2},
    }
    assert stats["tokens_issued"] == {"fedex": 1}
    assert (await client.post("/_emulator/reset")).status_code == 200
    cleared = (await client.get("/_emulator/stats")).json()
    assert cleared["requests_total"] == 0
    assert cleared["tracking_numbers"] == {}


async def test_fedex_refuses_more_than_30_numbers_and_an_empty_request(
    client: httpx.AsyncClient,
) -> None:
    token = await fedex_token(client)
    headers = {"Authorization": f"Bearer {token}"}
    numbers = [f"{n:012d}" for n in range(31)]
    too_many = await client.post(
        "/fedex/track/v1/trackingnumbers", json=fedex_body(*numbers), headers=headers
    )
    thirty = await client.post(
        "/fedex/track/v1/trackingnumbers", json=fedex_body(*numbers[:30]), headers=headers
    )
    empty = await client.post("/fedex/track/v1/trackingnumbers", json=fedex_body(), headers=headers)
    assert too_many.status_code == 400
    assert len(thirty.json()["output"]["completeTrackResults"]) == 30
    assert empty.status_code == 400
    assert (
        empty.json()["errors"] == sample("fedex", "error-400-tracking-number-empty.json")["errors"]
    )


async def test_a_spent_daily_quota_answers_dhl_s_429_with_retry_after_until_the_reset(
    build: Callable[..., Starlette],
) -> None:
    async with make_client(build(quotas={"dhl": "2/day@00:00Z"})) as client:
        answers = [await dhl_track(client) for _ in range(3)]
        stats = (await client.get("/_emulator/stats")).json()
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json() == sample("dhl", "error-429-too-many-requests.json")
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert abs(int(answers[2].headers["Retry-After"]) - (midnight - now).total_seconds()) < 5
    assert stats["quota_refused"] == {"dhl": 1}
    assert stats["rate_limited"] == {"dhl": 1}


async def test_fedex_words_a_spent_daily_quota_without_retry_after(
    build: Callable[..., Starlette],
) -> None:
    async with make_client(build(quotas={"fedex": "1/day@00:00Z"})) as client:
        token = await fedex_token(client)
        headers = {"Authorization": f"Bearer {token}"}
        first = await client.post(
            "/fedex/track/v1/trackingnumbers", json=fedex_body(NUMBER), headers=headers
        )
        second = await client.post(
            "/fedex/track/v1/trackingnumbers", json=fedex_body(NUMBER), headers=headers
        )
    assert (first.status_code, second.status_code) == (200, 429)
    assert "Retry-After" not in second.headers
    assert second.json()["errors"][0]["message"] == (
        "Daily transaction quota exceeded. Retry after 12:00AM GMT"
    )
