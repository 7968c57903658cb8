"""FedEx real payloads normalize field by field, including reused numbers."""

from __future__ import annotations

import httpx
import pytest

from parcelwatch.carriers import fedex
from parcelwatch.carriers.base import TrackOutcome
from parcelwatch.carriers.errors import AuthError, InvalidNumberError
from parcelwatch.domain import Location, ShipmentStatus
from tests.carriers.conftest import sample, utc


def test_fedex_delivered_ground_shipment_normalizes_every_field() -> None:
    [result] = fedex.parse_track_response(["738488882438"], sample("fedex", "track-delivered"))

    assert result.outcome is TrackOutcome.FOUND
    info = result.info
    assert info is not None
    assert info.status is ShipmentStatus.DELIVERED
    assert info.status_detail == "Delivered"
    assert info.carrier_status_code == "DL"
    assert len(info.events) == 17
    newest, oldest = info.events[0], info.events[-1]
    assert newest.occurred_at == utc(2024, 8, 20, 16, 41, 57)
    assert newest.utc_offset_minutes == -240
    assert newest.status is ShipmentStatus.DELIVERED
    assert newest.location == Location("Blue Point", "NY", "11715", "US")
    assert info.events[1].status is ShipmentStatus.OUT_FOR_DELIVERY  # eventType OD
    # The pickup scan has a bare local midnight: read as UTC, offset unknown, sorted last.
    assert oldest.occurred_at == utc(2024, 8, 15)
    assert oldest.utc_offset_minutes is None
    assert oldest.carrier_status_code == "PU"
    assert oldest.location == Location("MANKATO", "MN", "56001", "US")
    assert info.events[-2].status is ShipmentStatus.INFO_RECEIVED  # OC: label information
    assert info.delivered_at == utc(2024, 8, 20, 16, 41, 57)
    assert info.estimated_delivery == utc(2024, 8, 21, 6)  # standard transit window end
    assert info.signed_by == "CREILLY"
    assert info.tracking_url == "https://www.fedex.com/fedextrack/?trknbr=738488882438"


def test_fedex_reused_number_reports_the_newest_shipment() -> None:
    payload = sample("fedex", "track-duplicate-number-in-transit-and-delivered")

    [result] = fedex.parse_track_response(["776094337676"], payload)

    info = result.info
    assert info is not None
    assert info.status is ShipmentStatus.DELIVERED  # shipped 2024-04-25, the later one
    assert info.signed_by == "D.HERRERA"
    assert info.delivered_at == utc(2024, 4, 26, 16, 26)
    assert len(info.events) == 8
    assert info.events[0].occurred_at == utc(2024, 4, 26, 16, 26)
    assert info.events[0].location == Location()
    assert info.events[-1].occurred_at == utc(2024, 4, 25, 15, 55)
    assert info.events[-1].status is ShipmentStatus.OUT_FOR_DELIVERY
    assert info.events[-2].status is ShipmentStatus.EXCEPTION  # DE: customer not available
    assert "Customer not available" in info.events[-2].description
    assert info.estimated_delivery == utc(2024, 4, 26, 6)


def test_fedex_in_transit_result_of_a_reused_number_normalizes_on_its_own() -> None:
    payload = sample("fedex", "track-duplicate-number-in-transit-and-delivered")
    in_transit = payload["output"]["completeTrackResults"][0]["trackResults"][0]

    info = fedex.parse_track_result("776094337676", in_transit)

    assert info.status is ShipmentStatus.IN_TRANSIT  # FD at destination, running late
    assert info.status_detail == "Running Late: At FedEx destination facility"
    assert len(info.events) == 10
    assert info.events[0].occurred_at == utc(2024, 4, 26, 14, 50)
    assert info.events[0].location == Location("CLOVIS", "CA", "93612", "US")
    assert info.events[1].status is ShipmentStatus.AVAILABLE_FOR_PICKUP  # HP
    assert info.events[2].status is ShipmentStatus.EXCEPTION  # DY delay
    assert info.events[-1].occurred_at == utc(2024, 4, 24, 20, 30, 57)
    assert info.events[-1].utc_offset_minutes == -300
    assert info.events[-1].status is ShipmentStatus.INFO_RECEIVED
    assert info.estimated_delivery == utc(2024, 4, 25, 17, 30)
    assert info.delivered_at is None
    assert info.signed_by is None


def test_fedex_choice_does_not_depend_on_the_order_of_track_results() -> None:
    payload = sample("fedex", "track-duplicate-number-in-transit-and-delivered")
    results = payload["output"]["completeTrackResults"][0]["trackResults"]

    chosen = fedex.choose_track_result(list(reversed(results)))

    assert chosen is not None
    assert chosen["latestStatusDetail"]["code"] == "DL"


def test_fedex_docs_example_mixes_a_found_and_a_not_found_number() -> None:
    payload = sample("fedex", "track-docs-example-with-not-found-result")

    found, missing = fedex.parse_track_response(["123456789012", "39936862321"], payload)

    assert found.outcome is TrackOutcome.FOUND
    assert found.info is not None
    assert found.info.status is ShipmentStatus.IN_TRANSIT  # PU picked up
    assert len(found.info.events) == 1
    assert found.info.events[0].occurred_at == utc(2018, 2, 2, 19, 1)
    assert found.info.events[0].location == Location("SEATTLE", "WA", "98101", "US")
    assert found.info.estimated_delivery == utc(2021, 10, 15, 6)
    assert found.info.signed_by is None  # not delivered
    assert missing.outcome is TrackOutcome.NOT_FOUND
    assert missing.message is not None
    assert "cannot be found" in missing.message


def test_fedex_number_missing_from_the_answer_fails_alone() -> None:
    payload = sample("fedex", "track-delivered")

    delivered, absent = fedex.parse_track_response(["738488882438", "999999999999"], payload)

    assert delivered.outcome is TrackOutcome.FOUND
    assert absent.outcome is TrackOutcome.ERROR


def test_fedex_400_empty_number_is_an_invalid_number() -> None:
    response = httpx.Response(400, json=sample("fedex", "error-400-tracking-number-empty"))

    [result] = fedex.results_from_response([""], response)

    assert isinstance(result.error, InvalidNumberError)
    assert "TRACKING.TRACKINGNUMBER.EMPTY" in str(result.error)


def test_fedex_401_not_authorized_is_an_auth_error() -> None:
    response = httpx.Response(401, json=sample("fedex", "error-401-not-authorized"))

    with pytest.raises(AuthError) as caught:
        fedex.results_from_response(["738488882438"], response)

    assert "NOT.AUTHORIZED.ERROR" in str(caught.value)
