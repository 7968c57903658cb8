"""DHL and ShipEngine real payloads normalize field by field."""

from __future__ import annotations

import copy

import httpx
import pytest

from parcelwatch.carriers import dhl, shipengine
from parcelwatch.carriers.base import TrackOutcome
from parcelwatch.carriers.errors import (
    AuthError,
    BadResponseError,
    InvalidNumberError,
    RateLimitedError,
)
from parcelwatch.domain import Location, ShipmentStatus
from parcelwatch.webhooks import shipengine as shipengine_webhooks
from tests.carriers.conftest import sample, utc


def test_dhl_docs_example_follows_status_code_not_the_contradicting_text() -> None:
    result = dhl.parse_shipments_response(
        "7777777770", sample("dhl", "track-shipments-docs-example")
    )

    info = result.info
    assert info is not None
    assert info.status is ShipmentStatus.INFO_RECEIVED  # statusCode pre-transit
    assert info.carrier_status_code == "pre-transit"
    assert info.carrier_status_text == "DELIVERED"  # raw text kept, never parsed
    assert info.status_detail == "JESSICA"
    assert len(info.events) == 1
    event = info.events[0]
    assert event.occurred_at == utc(2018, 3, 2, 7, 53, 47)  # no offset: read as UTC
    assert event.utc_offset_minutes is None
    assert event.location == Location("Oderweg 2, AMSTERDAM", None, "1043 AG", "NL")
    assert info.estimated_delivery == utc(2018, 8, 3)
    assert info.delivered_at is None  # proof of delivery only counts once delivered
    assert info.signed_by is None
    assert info.tracking_url == (
        "https://www.dhl.com/global-en/home/tracking.html?tracking-id=7777777770"
    )


def test_dhl_delivered_shipment_takes_time_and_signer_from_proof_of_delivery() -> None:
    payload = copy.deepcopy(sample("dhl", "track-shipments-docs-example"))
    payload["shipments"][0]["status"]["statusCode"] = "delivered"

    info = dhl.parse_shipments_response("7777777770", payload).info

    assert info is not None
    assert info.status is ShipmentStatus.DELIVERED
    assert info.delivered_at == utc(2018, 9, 5, 16, 33)
    assert info.signed_by == "John"


def test_dhl_404_problem_is_not_found() -> None:
    response = httpx.Response(404, json=sample("dhl", "error-404-not-found"))

    result = dhl.result_from_response("8264715546", response)

    assert result.outcome is TrackOutcome.NOT_FOUND
    assert result.message == "No shipment with given tracking number found."


def test_dhl_429_quota_is_rate_limited_with_retry_after() -> None:
    response = httpx.Response(
        429, json=sample("dhl", "error-429-too-many-requests"), headers={"Retry-After": "60"}
    )

    with pytest.raises(RateLimitedError) as caught:
        dhl.result_from_response("7777777770", response)

    assert caught.value.retry_after == 60
    assert "Too many requests within defined time period" in str(caught.value)


def test_shipengine_delivered_normalizes_every_field() -> None:
    payload = sample("shipengine", "tracking-get-delivered")

    result = shipengine.result_from_payload("1Z932R800390810600", payload, carrier="ups")

    info = result.info
    assert info is not None
    assert info.status is ShipmentStatus.DELIVERED
    assert info.status_detail == "DELIVERED"
    assert info.carrier_status_code == "DE"
    assert len(info.events) == 1
    event = info.events[0]
    assert event.occurred_at == utc(2019, 9, 13, 12, 32)
    assert event.utc_offset_minutes == -420  # carrier_occurred_at 05:32 local
    assert event.status is ShipmentStatus.UNKNOWN  # v1 events carry no normalized status
    assert event.carrier_status_code == "U1"
    assert event.location == Location("OCEANSIDE", "CA", "92056", None)
    assert info.estimated_delivery == utc(2019, 7, 27, 11, 59, 3, 289000)
    assert info.delivered_at == utc(2019, 7, 27, 11, 59, 3, 289000)
    assert info.signed_by is None  # signer ""
    assert info.tracking_url == "https://www.ups.com/track?tracknum=1Z932R800390810600"


def test_shipengine_un_status_stays_unknown_with_the_raw_code() -> None:
    payload = sample("shipengine", "tracking-get-status-unknown")

    result = shipengine.result_from_payload("1026167028310292", payload, carrier="fedex")

    info = result.info
    assert info is not None
    assert result.outcome is TrackOutcome.FOUND
    assert info.status is ShipmentStatus.UNKNOWN
    assert info.carrier_status_code == "UN"
    assert info.status_detail == "Electronic information submitted by shipper"
    assert len(info.events) == 1
    assert info.events[0].occurred_at == utc(2021, 7, 10, 2, 58, 1)
    assert info.events[0].utc_offset_minutes is None
    assert info.events[0].location == Location()
    assert info.estimated_delivery == utc(2021, 7, 19, 7)
    assert info.delivered_at is None
    assert info.signed_by is None


def test_shipengine_webhook_data_parses_like_a_tracking_response() -> None:
    event = sample("shipengine", "webhook-track-event")

    info = shipengine.parse_tracking("1Z932R800390810600", event["data"], carrier="ups")

    assert event["resource_type"] == "API_TRACK"
    assert info == shipengine.parse_tracking(
        "1Z932R800390810600", sample("shipengine", "tracking-get-delivered"), carrier="ups"
    )


def test_shipengine_track_event_names_its_number_and_parcelwatch_carrier() -> None:
    push = shipengine_webhooks.parse_track_event(sample("shipengine", "webhook-track-event"))

    assert push.tracking_number == "1Z932R800390810600"
    assert push.carrier == "ups"
    assert push.info.status is ShipmentStatus.DELIVERED
    assert push.info.events[0].occurred_at == utc(2019, 9, 13, 12, 32)


def test_shipengine_track_event_maps_shipengine_codes_back_to_parcelwatch_carriers() -> None:
    body = copy.deepcopy(sample("shipengine", "webhook-track-event"))
    body["resource_url"] = body["resource_url"].replace(
        "carrier_code=ups", "carrier_code=dhl_express"
    )

    assert shipengine_webhooks.parse_track_event(body).carrier == "dhl"


def test_a_webhook_that_is_not_a_track_event_is_a_bad_response() -> None:
    with pytest.raises(BadResponseError):
        shipengine_webhooks.parse_track_event({"resource_type": "API_BATCH", "data": {}})


def test_shipengine_not_yet_in_system_without_events_is_not_found() -> None:
    payload = {"tracking_number": "1", "status_code": "NY", "events": []}

    result = shipengine.result_from_payload("1", payload, carrier="ups")

    assert result.outcome is TrackOutcome.NOT_FOUND


def test_shipengine_401_is_an_auth_error() -> None:
    response = httpx.Response(401, json=sample("shipengine", "error-401-unauthorized"))

    with pytest.raises(AuthError) as caught:
        shipengine.result_from_response("1", response, carrier="ups")

    assert "unauthorized The API key is invalid" in str(caught.value)


def test_shipengine_429_carries_retry_after() -> None:
    response = httpx.Response(
        429,
        json=sample("shipengine", "error-429-rate-limit-exceeded"),
        headers={"Retry-After": "30"},
    )

    with pytest.raises(RateLimitedError) as caught:
        shipengine.result_from_response("1", response, carrier="ups")

    assert caught.value.retry_after == 30
    assert "rate_limit_exceeded" in str(caught.value)


def test_shipengine_400_validation_is_an_invalid_number() -> None:
    response = httpx.Response(400, json=sample("shipengine", "error-400-validation"))

    result = shipengine.result_from_response("1", response, carrier="ups")

    assert isinstance(result.error, InvalidNumberError)
    assert "request_body_required" in str(result.error)


def test_shipengine_uses_its_own_code_for_dhl() -> None:
    assert shipengine.shipengine_carrier_code("dhl") == "dhl_express"
    assert shipengine.shipengine_carrier_code("canada_post") == "canada_post"
    assert shipengine.shipengine_carrier_code("some_new_carrier") == "some_new_carrier"
