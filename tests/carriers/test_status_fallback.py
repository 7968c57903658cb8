"""A shipment's status falls back from the current status to the newest event, then to the
simplified text, before it is ever `unknown`; the same rule for every provider.

Each test starts from one real payload in tests/fixtures/carrier-samples and changes only
the fields the scenario is about (said in the test)."""

from __future__ import annotations

from typing import Any

from parcelwatch.carriers import dhl, fedex, shipengine, ups
from parcelwatch.carriers.base import TrackOutcome
from parcelwatch.domain import ShipmentStatus, TrackInfo
from parcelwatch.ops.metrics import UNKNOWN_STATUS_CODES
from tests.carriers.conftest import sample


def _unknown_count(provider: str) -> float:
    return UNKNOWN_STATUS_CODES.labels(provider=provider)._value.get()


def _ups_package(payload: dict[str, Any]) -> dict[str, Any]:
    package: dict[str, Any] = payload["trackResponse"]["shipment"][0]["package"][0]
    return package


def _ups_info(tracking_number: str, payload: object) -> TrackInfo:
    result = ups.parse_track_response(tracking_number, payload)
    assert result.outcome is TrackOutcome.FOUND
    assert result.info is not None
    return result.info


def test_ups_current_status_with_only_code_and_description_takes_the_newest_activity() -> None:
    # Adapted: the delivered sample has no currentStatus; it is given the shape some UPS
    # responses carry (a `code` and a `description`, no `type` or `statusCode`).
    payload = sample("ups", "track-v1-details-delivered")
    _ups_package(payload)["currentStatus"] = {"code": "FS", "description": "Delivered"}
    before = _unknown_count("ups")

    info = _ups_info("1Z1442YY7229014688", payload)

    assert info.status is ShipmentStatus.DELIVERED
    assert info.delivered_at is not None
    assert info.carrier_status_code == "FS"
    assert _unknown_count("ups") == before


def test_ups_unmapped_current_status_without_activity_takes_the_simplified_text() -> None:
    # Adapted: the schema example's currentStatus loses `type` and `statusCode`, and its
    # activity list is emptied, so only `simplifiedTextDescription` ("Delivered") is left.
    payload = sample("ups", "track-v1-details-schema-example")
    package = _ups_package(payload)
    for field in ("type", "statusCode"):
        package["currentStatus"].pop(field)
    package["activity"] = []

    assert _ups_info("1Z023E2X0214323462", payload).status is ShipmentStatus.DELIVERED


def test_ups_status_nothing_maps_is_unknown_and_counted_once() -> None:
    # Adapted: as above, with a simplified text UPS has never documented.
    payload = sample("ups", "track-v1-details-schema-example")
    package = _ups_package(payload)
    package["currentStatus"] = {"code": "ZZ", "description": "Something new"}
    package["currentStatus"]["simplifiedTextDescription"] = "Teleported"
    package["activity"] = []
    before = _unknown_count("ups")

    assert _ups_info("1Z023E2X0214323462", payload).status is ShipmentStatus.UNKNOWN
    assert _unknown_count("ups") == before + 1


def test_ups_mapped_current_status_still_decides_over_the_newest_activity() -> None:
    # Unchanged schema example: currentStatus type X (exception) is mapped, so it decides.
    payload = sample("ups", "track-v1-details-schema-example")

    assert _ups_info("1Z023E2X0214323462", payload).status is ShipmentStatus.EXCEPTION


def test_fedex_unmapped_latest_status_takes_the_newest_scan() -> None:
    # Adapted: latestStatusDetail's code and derivedCode become codes FedEx never documented.
    payload = sample("fedex", "track-delivered")
    result = payload["output"]["completeTrackResults"][0]["trackResults"][0]
    result["latestStatusDetail"].update(code="ZZ", derivedCode="ZZ")

    info = fedex.parse_track_result("738488882438", result)

    assert info.status is ShipmentStatus.DELIVERED


def test_dhl_unmapped_current_status_takes_the_newest_event() -> None:
    # Adapted: the docs example's current statusCode becomes one DHL never documented; its
    # one event keeps `pre-transit`.
    payload = sample("dhl", "track-shipments-docs-example")
    shipment = payload["shipments"][0]
    shipment["status"]["statusCode"] = "teleported"

    info = dhl.parse_shipment("7777777770", shipment)

    assert info.status is ShipmentStatus.INFO_RECEIVED


def test_shipengine_status_the_carrier_calls_unknown_takes_the_newest_event() -> None:
    # Adapted: the delivered sample says `UN` (unknown) at the top and `DE` on its newest
    # event, as ShipEngine answers while the carrier's summary lags its scans.
    payload = sample("shipengine", "tracking-get-delivered")
    payload["status_code"] = "UN"
    payload["events"][0]["status_code"] = "DE"
    before = _unknown_count("shipengine")

    info = shipengine.parse_tracking("1Z932R800390810600", payload, carrier="ups")

    assert info.status is ShipmentStatus.DELIVERED
    assert _unknown_count("shipengine") == before
