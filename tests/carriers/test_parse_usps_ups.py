"""USPS and UPS real payloads normalize field by field."""

from __future__ import annotations

import httpx
import pytest

from parcelwatch.carriers import ups, usps
from parcelwatch.carriers.base import TrackOutcome
from parcelwatch.carriers.errors import AuthError, InvalidNumberError, RateLimitedError
from parcelwatch.domain import Location, ShipmentStatus
from tests.carriers.conftest import sample, utc


def test_usps_delivered_parcel_locker_normalizes_every_field() -> None:
    payload = sample("usps", "tracking-v3-detail-delivered")
    info = usps.parse_tracking("9400109104250532908587", payload)

    assert info.status is ShipmentStatus.DELIVERED
    assert info.status_detail == "Delivered, Parcel Locker"
    assert info.carrier_status_code == "Delivered"
    assert len(info.events) == 12
    newest, oldest = info.events[0], info.events[-1]
    assert newest.occurred_at == utc(2024, 11, 22, 18, 58, 40)  # from GMTTimestamp
    assert newest.utc_offset_minutes == -300
    assert newest.status is ShipmentStatus.DELIVERED
    assert newest.carrier_status_code == "01"
    assert newest.location == Location("HERNANDO", "FL", "34442", None)
    assert oldest.occurred_at == utc(2024, 11, 15, 16, 32, 33)
    assert oldest.status is ShipmentStatus.INFO_RECEIVED
    assert oldest.location == Location("SPRINGFIELD GARDENS", "NY", "11413", None)
    assert [e.occurred_at for e in info.events] == sorted(
        (e.occurred_at for e in info.events), reverse=True
    )
    assert info.events[1].status is ShipmentStatus.OUT_FOR_DELIVERY
    assert info.delivered_at == utc(2024, 11, 22, 18, 58, 40)
    assert info.estimated_delivery is None
    assert info.signed_by is None  # the delivery scan's `name` is null
    assert info.tracking_url == (
        "https://tools.usps.com/go/TrackConfirmAction?tLabels=9400109104250532908587"
    )


def test_usps_accepted_item_is_in_transit_with_its_single_scan() -> None:
    info = usps.parse_tracking(
        "XXXXXXXXXXXXXXXXXXXX", sample("usps", "tracking-v3-detail-accepted-in-transit")
    )

    assert info.status is ShipmentStatus.IN_TRANSIT
    assert info.status_detail == "USPS in possession of item"
    assert len(info.events) == 1
    event = info.events[0]
    assert event.occurred_at == utc(2023, 8, 2, 7, 31)  # labelled Z by USPS, taken as UTC
    assert event.utc_offset_minutes is None  # Z says nothing about the local offset
    assert event.location == Location("RICHMOND", "VA", "23227", None)
    assert info.estimated_delivery is None
    assert info.delivered_at is None
    assert info.signed_by is None


def test_usps_404_status_not_yet_available_is_not_found() -> None:
    response = httpx.Response(404, json=sample("usps", "tracking-v3r2-error-404-not-available"))

    result = usps.result_from_response("9205590982952107001084", response)

    assert result.outcome is TrackOutcome.NOT_FOUND
    assert result.message is not None
    assert "150006" in result.message
    assert "not yet available" in result.message


def test_usps_401_names_the_missing_tracking_scope() -> None:
    response = httpx.Response(401, json=sample("usps", "tracking-v3-error-401-unauthorized"))

    with pytest.raises(AuthError) as caught:
        usps.result_from_response("9400109104250532908587", response)

    assert "tracking` scope" in str(caught.value)
    assert "client application identifier is invalid" in str(caught.value)


def test_usps_400_is_an_invalid_number_for_that_number_only() -> None:
    response = httpx.Response(400, json={"error": {"code": "400", "message": "Bad number"}})

    result = usps.result_from_response("123", response)

    assert result.outcome is TrackOutcome.ERROR
    assert isinstance(result.error, InvalidNumberError)


def test_ups_delivered_package_normalizes_every_field() -> None:
    result = ups.parse_track_response(
        "1Z1442YY7229014688", sample("ups", "track-v1-details-delivered")
    )

    assert result.outcome is TrackOutcome.FOUND
    info = result.info
    assert info is not None
    assert info.status is ShipmentStatus.DELIVERED
    assert info.status_detail == "DELIVERED"
    assert len(info.events) == 2
    newest, oldest = info.events
    assert newest.occurred_at == utc(2022, 1, 26, 16, 30)
    assert newest.utc_offset_minutes is None  # local time, no gmt fields in this payload
    assert newest.status is ShipmentStatus.DELIVERED
    assert newest.carrier_status_code == "F4"
    assert newest.location == Location("PARAMUS", "NJ", None, "US")
    assert oldest.occurred_at == utc(2022, 1, 26, 15, 16, 41)
    assert oldest.status is ShipmentStatus.INFO_RECEIVED  # type M: label created
    assert oldest.location == Location(None, None, None, "US")
    assert info.delivered_at == utc(2022, 1, 26, 16, 30)
    assert info.estimated_delivery is None
    assert info.signed_by is None
    assert info.tracking_url == "https://www.ups.com/track?tracknum=1Z1442YY7229014688"


def test_ups_schema_example_with_placeholders_parses_without_inventing_values() -> None:
    result = ups.parse_track_response(
        "1Z023E2X0214323462", sample("ups", "track-v1-details-schema-example")
    )

    info = result.info
    assert info is not None
    assert info.status is ShipmentStatus.EXCEPTION  # currentStatus type X
    assert info.status_detail == "Your package was released by the customs agency."
    assert info.carrier_status_code == "SR"
    assert len(info.events) == 1
    assert info.events[0].occurred_at == utc(2021, 2, 10, 7, 13, 56)
    assert info.events[0].location == Location("Wayne", "NJ", "07470", "US")
    assert info.estimated_delivery is None  # deliveryDate "string" does not parse
    assert info.delivered_at is None
    assert info.signed_by is None  # receivedBy only counts once delivered


def test_ups_tw0001_warning_inside_a_200_is_not_found() -> None:
    result = ups.parse_track_response(
        "1Z5629230309413682", sample("ups", "track-v1-not-found-200-warning")
    )

    assert result.outcome is TrackOutcome.NOT_FOUND
    assert result.message == "Tracking Information Not Found"


def test_ups_tv1002_is_an_invalid_number() -> None:
    response = httpx.Response(400, json=sample("ups", "error-invalid-inquiry-number"))

    result = ups.result_from_response("1Z", response)

    assert result.outcome is TrackOutcome.ERROR
    assert isinstance(result.error, InvalidNumberError)
    assert "TV1002 Invalid inquiry number" in str(result.error)


def test_ups_429_carries_retry_after() -> None:
    response = httpx.Response(
        429, json=sample("ups", "error-429-too-many-requests"), headers={"Retry-After": "17"}
    )

    with pytest.raises(RateLimitedError) as caught:
        ups.result_from_response("1Z1442YY7229014688", response)

    assert caught.value.retry_after == 17
    assert "10429" in str(caught.value)
