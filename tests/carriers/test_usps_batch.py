"""USPS Tracking 3.2 (v3r2) batches: the documented answers parse per number, the client sends
one `POST` a batch, and a per-number error counts against that number only.

USPS publishes no recorded v3r2 batch answer, so the payloads here are built from the shared
samples, as the spec composes them: a 200 is an array of the same tracking bodies v3 returns
(`tracking-v3-detail-*`), and a 207 entry is a tracking body with `statusCode` "200" or the
`ErrorMessage` (`tracking-v3r2-error-404-not-available`) with `statusCode` and
`trackingNumber` added. Where a sample is adapted beyond that, the test says how.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from parcelwatch.carriers import usps
from parcelwatch.carriers.base import TrackOutcome
from parcelwatch.carriers.errors import (
    BadResponseError,
    BatchRefusedError,
    InvalidNumberError,
    NumberError,
    UnavailableError,
)
from parcelwatch.carriers.usps import UspsProvider
from parcelwatch.domain import ShipmentStatus
from tests.carriers.conftest import Recorder, reply, sample

pytestmark = pytest.mark.anyio

DELIVERED = "9400109104250532908587"  # the number in tracking-v3-detail-delivered
ACCEPTED = "9400111899223847199999"  # stands in for the masked XXXX… of the accepted sample
NOT_YET = "9205590982952107001084"
INVALID = "94001X"
TOKEN = {"access_token": "usps-token-1", "token_type": "Bearer", "expires_in": 28799}
BATCH_PATH = "/usps/tracking/v3r2/tracking"


def delivered() -> dict[str, Any]:
    return dict(sample("usps", "tracking-v3-detail-delivered"))


def accepted() -> dict[str, Any]:
    """The accepted sample, its masked number replaced by a real-looking one."""
    return {**sample("usps", "tracking-v3-detail-accepted-in-transit"), "trackingNumber": ACCEPTED}


def not_available(number: str) -> dict[str, Any]:
    """The v3r2 404 sample as a 207 entry."""
    body = sample("usps", "tracking-v3r2-error-404-not-available")
    return {**body, "statusCode": "404", "trackingNumber": number}


def error_entry(number: str, status: int, message: str) -> dict[str, Any]:
    """The v3r2 404 sample's envelope with another status and message (adapted: USPS
    publishes no 400 or 503 entry)."""
    body = sample("usps", "tracking-v3r2-error-404-not-available")
    error = {"code": str(status), "message": message, "errors": []}
    return {**body, "error": error, "statusCode": str(status), "trackingNumber": number}


def provider(http: httpx.AsyncClient, **options: Any) -> UspsProvider:
    return UspsProvider(
        client=http,
        base_url="http://emu.test/usps",
        client_id="id",
        client_secret="secret",
        timeout=5,
        **options,
    )


def test_a_200_batch_answer_gives_each_number_its_own_tracking() -> None:
    results = usps.parse_batch([DELIVERED, ACCEPTED], [delivered(), accepted()])

    assert [r.tracking_number for r in results] == [DELIVERED, ACCEPTED]
    assert [r.outcome for r in results] == [TrackOutcome.FOUND, TrackOutcome.FOUND]
    assert results[0].info is not None
    assert results[0].info.status is ShipmentStatus.DELIVERED
    assert len(results[0].info.events) == 12
    assert results[1].info is not None
    assert results[1].info.status is ShipmentStatus.IN_TRANSIT


def test_entries_are_matched_by_number_whatever_their_order() -> None:
    results = usps.parse_batch([ACCEPTED, DELIVERED], [delivered(), accepted()])

    assert results[0].info is not None
    assert results[0].info.status is ShipmentStatus.IN_TRANSIT
    assert results[1].info is not None
    assert results[1].info.status is ShipmentStatus.DELIVERED


def test_a_207_mixed_batch_counts_each_error_against_its_own_number_only() -> None:
    answer = [
        {**delivered(), "statusCode": "200"},
        not_available(NOT_YET),
        error_entry(INVALID, 400, "Invalid tracking number: 94001X"),
        {**accepted(), "statusCode": "200"},
    ]

    results = usps.parse_batch([DELIVERED, NOT_YET, INVALID, ACCEPTED], answer)

    found, not_yet, invalid, moving = results
    assert found.outcome is TrackOutcome.FOUND
    assert found.info is not None
    assert found.info.status is ShipmentStatus.DELIVERED
    assert not_yet.outcome is TrackOutcome.NOT_FOUND
    assert not_yet.message is not None
    assert "150006" in not_yet.message
    assert invalid.outcome is TrackOutcome.ERROR
    assert isinstance(invalid.error, InvalidNumberError)
    assert "Invalid tracking number" in str(invalid.error)
    assert moving.outcome is TrackOutcome.FOUND


def test_a_busy_entry_is_that_numbers_transient_failure_and_a_refused_one_its_own() -> None:
    answer = [
        error_entry(DELIVERED, 503, "Service Unavailable"),
        error_entry(ACCEPTED, 403, "Not authorized to track this item."),
    ]

    busy, refused = usps.parse_batch([DELIVERED, ACCEPTED], answer)

    assert isinstance(busy.error, UnavailableError)  # deferred by the engine, not counted
    assert isinstance(refused.error, NumberError)  # counted against that shipment
    assert "403" in str(refused.error)


def test_a_number_the_answer_leaves_out_fails_alone() -> None:
    first, missing = usps.parse_batch([DELIVERED, ACCEPTED], [delivered()])

    assert first.outcome is TrackOutcome.FOUND
    assert isinstance(missing.error, BadResponseError)


def test_a_batch_answer_that_is_not_an_array_is_a_bad_response() -> None:
    with pytest.raises(BadResponseError):
        usps.parse_batch([DELIVERED, ACCEPTED], {"trackingEvents": []})


def test_a_404_for_the_whole_batch_means_no_number_is_known_yet() -> None:
    response = httpx.Response(404, json=sample("usps", "tracking-v3r2-error-404-not-available"))

    results = usps.results_from_batch([NOT_YET, DELIVERED], response)

    assert [r.outcome for r in results] == [TrackOutcome.NOT_FOUND] * 2
    assert all("not yet available" in (r.message or "") for r in results)


def test_a_404_without_the_usps_error_body_is_not_taken_for_not_found() -> None:
    response = httpx.Response(404, text="<html>Not Found</html>")

    with pytest.raises(BadResponseError):
        usps.results_from_batch([NOT_YET, DELIVERED], response)


async def test_one_post_carries_the_whole_batch_as_a_json_array(
    http: httpx.AsyncClient, recorder: Recorder
) -> None:
    recorder.on("/usps/oauth2/v3/token", reply(200, TOKEN))
    recorder.on(
        BATCH_PATH, reply(207, [{**delivered(), "statusCode": "200"}, not_available(NOT_YET)])
    )

    results = await provider(http).track([DELIVERED, NOT_YET], carrier="usps")

    assert [r.outcome for r in results] == [TrackOutcome.FOUND, TrackOutcome.NOT_FOUND]
    [call] = recorder.calls(BATCH_PATH)
    assert call.method == "POST"
    assert json.loads(call.content) == [{"trackingNumber": DELIVERED}, {"trackingNumber": NOT_YET}]
    assert "expand" not in call.url.params  # v3r2 bodies carry the detail
    assert call.headers["Authorization"] == "Bearer usps-token-1"


async def test_a_refused_batch_names_usps_batch_size(
    http: httpx.AsyncClient, recorder: Recorder
) -> None:
    recorder.on("/usps/oauth2/v3/token", reply(200, TOKEN))
    refused = error_entry("", 400, "A request may contain at most 35 tracking numbers.")
    recorder.on(BATCH_PATH, reply(400, {k: refused[k] for k in ("apiVersion", "error")}))

    with pytest.raises(BatchRefusedError, match="lower USPS_BATCH_SIZE"):
        await provider(http).track([DELIVERED, NOT_YET], carrier="usps")


async def test_the_batch_size_bounds_what_one_call_may_carry(http: httpx.AsyncClient) -> None:
    carrier = provider(http, batch_size=2)

    assert carrier.max_batch == 2
    with pytest.raises(ValueError, match="at most 2"):
        await carrier.track([DELIVERED, ACCEPTED, NOT_YET], carrier="usps")


def test_v3_carries_one_number_a_request_whatever_the_batch_size() -> None:
    assert UspsProvider.batch_limit({"api_version": "v3", "batch_size": 35}) == 1
    assert UspsProvider.batch_limit({"api_version": "v3r2", "batch_size": 35}) == 35
    assert UspsProvider.own_batch_size  # USPS_BATCH_SIZE, not AUTO_UPDATE_BATCH_SIZE
