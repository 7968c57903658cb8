"""Each client over `httpx.MockTransport` serving real payloads: success and every failure."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import parse_qs

import httpx
import pytest

from parcelwatch.carriers.base import Provider, TrackOutcome
from parcelwatch.carriers.dhl import DhlProvider
from parcelwatch.carriers.errors import (
    AuthError,
    BadResponseError,
    BatchRefusedError,
    RateLimitedError,
    UnavailableError,
)
from parcelwatch.carriers.fedex import FedexProvider
from parcelwatch.carriers.shipengine import ShipEngineProvider
from parcelwatch.carriers.ups import UpsProvider
from parcelwatch.carriers.usps import UspsProvider
from parcelwatch.domain import ShipmentStatus
from tests.carriers.conftest import Recorder, reply, sample

pytestmark = pytest.mark.anyio

SECRET = "s3cr3t-value-never-shown"
USPS_TOKEN = {"access_token": "usps-token-1", "token_type": "Bearer", "expires_in": 28799}
UPS_TOKEN = {"access_token": "ups-token-1", "token_type": "Bearer", "expires_in": "14399"}
FEDEX_TOKEN = {"access_token": "fedex-token-1", "token_type": "bearer", "expires_in": 3599}
USPS_NUMBER = "9400109104250532908587"
UPS_NUMBER = "1Z1442YY7229014688"


def usps(http: httpx.AsyncClient, api_version: str = "v3") -> UspsProvider:
    """A USPS client; these tests speak v3 (one GET a number) unless they say otherwise."""
    return UspsProvider(
        client=http,
        base_url="http://emu.test/usps",
        client_id="id",
        client_secret=SECRET,
        timeout=5,
        api_version=api_version,
    )


def ups(http: httpx.AsyncClient) -> UpsProvider:
    return UpsProvider(
        client=http, base_url="http://emu.test/ups", client_id="id", client_secret=SECRET
    )


def fedex(http: httpx.AsyncClient) -> FedexProvider:
    return FedexProvider(
        client=http, base_url="http://emu.test/fedex", client_id="key", client_secret=SECRET
    )


async def test_usps_tracks_a_number_under_the_base_url_prefix(
    http: httpx.AsyncClient, recorder: Recorder
) -> None:
    recorder.on("/usps/oauth2/v3/token", reply(200, USPS_TOKEN))
    path = f"/usps/tracking/v3/tracking/{USPS_NUMBER}"
    recorder.on(path, reply(200, sample("usps", "tracking-v3-detail-delivered")))

    [result] = await usps(http).track([USPS_NUMBER], carrier="usps")

    assert result.outcome is TrackOutcome.FOUND
    assert result.info is not None
    assert result.info.status is ShipmentStatus.DELIVERED
    [token_call] = recorder.calls("/usps/oauth2/v3/token")
    form = parse_qs(token_call.content.decode())
    assert form["grant_type"] == ["client_credentials"]
    assert form["client_id"] == ["id"]
    [track_call] = recorder.calls(path)
    assert track_call.url.params["expand"] == "DETAIL"
    assert track_call.headers["Authorization"] == "Bearer usps-token-1"


async def test_token_is_fetched_once_and_reused(
    http: httpx.AsyncClient, recorder: Recorder
) -> None:
    recorder.on("/usps/oauth2/v3/token", reply(200, USPS_TOKEN))
    recorder.on(
        f"/usps/tracking/v3/tracking/{USPS_NUMBER}",
        reply(200, sample("usps", "tracking-v3-detail-delivered")),
    )
    carrier = usps(http)

    for _ in range(3):
        await carrier.track([USPS_NUMBER], carrier="usps")

    assert len(recorder.calls("/usps/oauth2/v3/token")) == 1
    assert len(recorder.requests) == 4


async def test_expired_token_mid_run_is_refreshed_once_and_the_call_repeated(
    http: httpx.AsyncClient, recorder: Recorder
) -> None:
    recorder.on(
        "/fedex/oauth/token",
        reply(200, FEDEX_TOKEN),
        reply(200, {**FEDEX_TOKEN, "access_token": "fedex-token-2"}),
    )
    recorder.on(
        "/fedex/track/v1/trackingnumbers",
        reply(200, sample("fedex", "track-delivered")),
        reply(401, sample("fedex", "error-401-not-authorized")),
        reply(200, sample("fedex", "track-delivered")),
    )
    carrier = fedex(http)

    first = await carrier.track(["738488882438"], carrier="fedex")
    second = await carrier.track(["738488882438"], carrier="fedex")

    assert first[0].outcome is TrackOutcome.FOUND
    assert second[0].outcome is TrackOutcome.FOUND
    assert len(recorder.calls("/fedex/oauth/token")) == 2
    auth = [r.headers["Authorization"] for r in recorder.calls("/fedex/track/v1/trackingnumbers")]
    assert auth == ["Bearer fedex-token-1", "Bearer fedex-token-1", "Bearer fedex-token-2"]


async def test_a_second_401_after_refresh_is_an_auth_error_naming_the_scope(
    http: httpx.AsyncClient, recorder: Recorder
) -> None:
    recorder.on("/usps/oauth2/v3/token", reply(200, USPS_TOKEN))
    recorder.on(
        f"/usps/tracking/v3/tracking/{USPS_NUMBER}",
        reply(401, sample("usps", "tracking-v3-error-401-unauthorized")),
    )

    with pytest.raises(AuthError) as caught:
        await usps(http).track([USPS_NUMBER], carrier="usps")

    assert len(recorder.calls("/usps/oauth2/v3/token")) == 2  # refreshed exactly once
    assert "tracking` scope" in str(caught.value)


async def test_wrong_client_secret_is_an_auth_error_without_the_secret(
    http: httpx.AsyncClient, recorder: Recorder
) -> None:
    recorder.on(
        "/usps/oauth2/v3/token", reply(401, sample("usps", "oauth-token-error-invalid-client"))
    )

    with pytest.raises(AuthError) as caught:
        await usps(http).track([USPS_NUMBER], carrier="usps")

    message = str(caught.value)
    assert "invalid_client" in message
    assert "USPS_CLIENT_ID / USPS_CLIENT_SECRET" in message
    assert SECRET not in message
    assert not recorder.calls(f"/usps/tracking/v3/tracking/{USPS_NUMBER}")


async def test_429_with_an_http_date_retry_after_is_rate_limited(
    http: httpx.AsyncClient, recorder: Recorder
) -> None:
    later = datetime.now(UTC) + timedelta(seconds=120)
    recorder.on("/ups/security/v1/oauth/token", reply(200, UPS_TOKEN))
    recorder.on(
        f"/ups/api/track/v1/details/{UPS_NUMBER}",
        reply(
            429,
            sample("ups", "error-429-too-many-requests"),
            headers={"Retry-After": format_datetime(later, usegmt=True)},
        ),
    )

    with pytest.raises(RateLimitedError) as caught:
        await ups(http).track([UPS_NUMBER], carrier="ups")

    assert caught.value.retry_after is not None
    assert 100 <= caught.value.retry_after <= 120


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_unavailable(
    http: httpx.AsyncClient, recorder: Recorder, status: int
) -> None:
    recorder.on("/ups/security/v1/oauth/token", reply(200, UPS_TOKEN))
    recorder.on(
        f"/ups/api/track/v1/details/{UPS_NUMBER}", reply(status, content=b"<html>oops</html>")
    )

    with pytest.raises(UnavailableError):
        await ups(http).track([UPS_NUMBER], carrier="ups")


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout("slow"), httpx.ConnectError("refused"), httpx.RemoteProtocolError("reset")],
)
async def test_timeouts_and_broken_connections_are_unavailable(failure: httpx.HTTPError) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise failure

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        carrier = DhlProvider(client=client, base_url="http://emu.test/dhl", api_key="k")
        with pytest.raises(UnavailableError) as caught:
            await carrier.track(["7777777770"], carrier="dhl")

    assert str(caught.value).startswith("dhl: ")


@pytest.mark.parametrize(
    "answer",
    [reply(200, content=b'{"trackResponse": {"shipment": [{'), reply(200, {"unexpected": 1})],
    ids=["truncated-json", "wrong-shape"],
)
async def test_malformed_bodies_are_bad_responses(
    http: httpx.AsyncClient, recorder: Recorder, answer: object
) -> None:
    recorder.on("/ups/security/v1/oauth/token", reply(200, UPS_TOKEN))
    recorder.on(f"/ups/api/track/v1/details/{UPS_NUMBER}", answer)  # type: ignore[arg-type]

    with pytest.raises(BadResponseError):
        await ups(http).track([UPS_NUMBER], carrier="ups")


async def test_ups_sends_basic_auth_and_a_fresh_trans_id_per_request(
    http: httpx.AsyncClient, recorder: Recorder
) -> None:
    recorder.on("/ups/security/v1/oauth/token", reply(200, UPS_TOKEN))
    recorder.on(
        f"/ups/api/track/v1/details/{UPS_NUMBER}",
        reply(401, {"response": {"errors": [{"code": "250002", "message": "Invalid"}]}}),
        reply(200, sample("ups", "track-v1-details-delivered")),
    )

    [result] = await ups(http).track([UPS_NUMBER], carrier="ups")

    assert result.outcome is TrackOutcome.FOUND
    token_call = recorder.calls("/ups/security/v1/oauth/token")[0]
    assert token_call.headers["Authorization"].startswith("Basic ")
    assert parse_qs(token_call.content.decode()) == {"grant_type": ["client_credentials"]}
    calls = recorder.calls(f"/ups/api/track/v1/details/{UPS_NUMBER}")
    trans_ids = {c.headers["transId"] for c in calls}
    assert len(trans_ids) == 2
    assert all(c.headers["transactionSrc"] == "parcelwatch" for c in calls)


async def test_ups_not_found_inside_a_200_is_not_found(
    http: httpx.AsyncClient, recorder: Recorder
) -> None:
    recorder.on("/ups/security/v1/oauth/token", reply(200, UPS_TOKEN))
    recorder.on(
        "/ups/api/track/v1/details/1Z5629230309413682",
        reply(200, sample("ups", "track-v1-not-found-200-warning")),
    )

    [result] = await ups(http).track(["1Z5629230309413682"], carrier="ups")

    assert result.outcome is TrackOutcome.NOT_FOUND


async def test_fedex_batch_mixes_found_and_not_found_in_one_request(
    http: httpx.AsyncClient, recorder: Recorder
) -> None:
    recorder.on("/fedex/oauth/token", reply(200, FEDEX_TOKEN))
    recorder.on(
        "/fedex/track/v1/trackingnumbers",
        reply(200, sample("fedex", "track-docs-example-with-not-found-result")),
    )

    results = await fedex(http).track(["123456789012", "39936862321"], carrier="fedex")

    assert [r.outcome for r in results] == [TrackOutcome.FOUND, TrackOutcome.NOT_FOUND]
    [call] = recorder.calls("/fedex/track/v1/trackingnumbers")
    body = json.loads(call.content)
    assert body["includeDetailedScans"] is True
    numbers = [i["trackingNumberInfo"]["trackingNumber"] for i in body["trackingInfo"]]
    assert numbers == ["123456789012", "39936862321"]


async def test_fedex_400_for_a_batch_is_refused_whole_and_not_split_by_the_client(
    http: httpx.AsyncClient, recorder: Recorder
) -> None:
    # The engine splits a refused batch within the budget (tests/sync/test_with_emulator.py
    # test_a_fedex_batch_refused_for_one_empty_number_is_split_within_the_budget).
    recorder.on("/fedex/oauth/token", reply(200, FEDEX_TOKEN))
    recorder.on(
        "/fedex/track/v1/trackingnumbers",
        reply(400, sample("fedex", "error-400-tracking-number-empty")),
    )

    with pytest.raises(BatchRefusedError, match="TRACKING.TRACKINGNUMBER.EMPTY"):
        await fedex(http).track(["738488882438", ""], carrier="fedex")

    assert len(recorder.calls("/fedex/track/v1/trackingnumbers")) == 1


async def test_fedex_refuses_more_than_thirty_numbers(http: httpx.AsyncClient) -> None:
    with pytest.raises(ValueError, match="30"):
        await fedex(http).track([str(n) for n in range(31)], carrier="fedex")


async def test_dhl_sends_its_api_key_header_and_maps_404_to_not_found(
    http: httpx.AsyncClient, recorder: Recorder
) -> None:
    recorder.on("/dhl/track/shipments", reply(404, sample("dhl", "error-404-not-found")))
    carrier = DhlProvider(client=http, base_url="http://emu.test/dhl", api_key="dhl-key")

    [result] = await carrier.track(["8264715546"], carrier="dhl")

    assert result.outcome is TrackOutcome.NOT_FOUND
    [call] = recorder.requests
    assert call.headers["DHL-API-Key"] == "dhl-key"
    assert call.url.params["trackingNumber"] == "8264715546"


async def test_shipengine_asks_with_its_own_carrier_code(
    http: httpx.AsyncClient, recorder: Recorder
) -> None:
    recorder.on(
        "/shipengine/v1/tracking", reply(200, sample("shipengine", "tracking-get-delivered"))
    )
    carrier = ShipEngineProvider(client=http, base_url="http://emu.test/shipengine", api_key="se")

    [result] = await carrier.track(["1Z932R800390810600"], carrier="dhl")

    assert result.outcome is TrackOutcome.FOUND
    [call] = recorder.requests
    assert call.headers["API-Key"] == "se"
    assert call.url.params["carrier_code"] == "dhl_express"
    assert result.info is not None
    assert result.info.tracking_url is not None
    assert "dhl.com" in result.info.tracking_url


@pytest.mark.parametrize("make", [usps, ups, fedex], ids=["usps", "ups", "fedex"])
async def test_check_of_an_oauth_carrier_is_a_token_fetch(
    http: httpx.AsyncClient, recorder: Recorder, make: object
) -> None:
    for path in ("/usps/oauth2/v3/token", "/ups/security/v1/oauth/token", "/fedex/oauth/token"):
        recorder.on(path, reply(200, USPS_TOKEN))
    carrier: Provider = make(http)  # type: ignore[operator]

    await carrier.check()

    assert len(recorder.requests) == 1


async def test_usps_check_fails_when_the_token_lacks_the_tracking_scope(
    http: httpx.AsyncClient, recorder: Recorder
) -> None:
    recorder.on("/usps/oauth2/v3/token", reply(200, {**USPS_TOKEN, "scope": "addresses prices"}))

    with pytest.raises(AuthError, match="tracking scope"):
        await usps(http).check()


async def test_ups_code_only_current_status_is_delivered_through_the_provider(
    http: httpx.AsyncClient, recorder: Recorder
) -> None:
    # Adapted: the delivered sample given a currentStatus of only `code` and `description`.
    payload = sample("ups", "track-v1-details-delivered")
    package = payload["trackResponse"]["shipment"][0]["package"][0]
    package["currentStatus"] = {"code": "FS", "description": "Delivered"}
    recorder.on("/ups/security/v1/oauth/token", reply(200, UPS_TOKEN))
    recorder.on(f"/ups/api/track/v1/details/{UPS_NUMBER}", reply(200, payload))

    [result] = await ups(http).track([UPS_NUMBER], carrier="ups")

    assert result.outcome is TrackOutcome.FOUND
    assert result.info is not None
    assert result.info.status is ShipmentStatus.DELIVERED
