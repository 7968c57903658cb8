"""Status tables: explicit, no guessing; unknown codes are kept, logged and counted."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from parcelwatch.carriers import dhl, fedex, shipengine, statuses, ups, usps
from parcelwatch.carriers.statuses import normalize_status
from parcelwatch.domain import ShipmentStatus
from parcelwatch.ops.metrics import UNKNOWN_STATUS_CODES

ALL_TABLES = {
    "usps-events": usps.USPS_EVENT_CODES,
    "usps-categories": usps.USPS_STATUS_CATEGORIES,
    "ups-types": ups.UPS_STATUS_TYPES,
    "ups-codes": ups.UPS_STATUS_CODES,
    "fedex": fedex.FEDEX_STATUS_CODES,
    "fedex-derived": fedex.FEDEX_DERIVED_CODES,
    "dhl": dhl.DHL_STATUS_CODES,
    "shipengine": shipengine.SHIPENGINE_STATUS_CODES,
    "shipengine-detail": shipengine.SHIPENGINE_DETAIL_CODES,
}


def _unknown_count(carrier: str) -> float:
    return UNKNOWN_STATUS_CODES.labels(provider=carrier)._value.get()


def test_unmapped_code_is_unknown_logged_and_counted() -> None:
    before = _unknown_count("ups")

    with capture_logs() as logs:
        status = normalize_status("ups", [(ups.UPS_STATUS_TYPES, "ZZ")], text="Something new")

    assert status is ShipmentStatus.UNKNOWN
    assert _unknown_count("ups") == before + 1
    assert logs[0]["codes"] == ["ZZ"]
    assert logs[0]["text"] == "Something new"


def test_undeliverable_is_not_mistaken_for_delivered() -> None:
    # USPS 05 "Undeliverable as Addressed" and DHL "failure" must never read as delivered.
    assert statuses.lookup(usps.USPS_EVENT_CODES, "05") is ShipmentStatus.EXCEPTION
    assert statuses.lookup(usps.USPS_STATUS_CATEGORIES, "Undeliverable") is None
    assert statuses.lookup(dhl.DHL_STATUS_CODES, "failure") is ShipmentStatus.EXCEPTION


def test_more_specific_candidate_wins() -> None:
    status = normalize_status(
        "fedex",
        [(fedex.FEDEX_STATUS_CODES, "OD"), (fedex.FEDEX_DERIVED_CODES, "IT")],
    )

    assert status is ShipmentStatus.OUT_FOR_DELIVERY


def test_lookup_ignores_case_and_blanks() -> None:
    assert statuses.lookup(usps.USPS_STATUS_CATEGORIES, " in   TRANSIT ") is (
        ShipmentStatus.IN_TRANSIT
    )


def test_every_documented_shipengine_and_dhl_code_is_mapped() -> None:
    for code in ("UN", "AC", "IT", "DE", "EX", "AT", "NY", "SP"):
        assert statuses.lookup(shipengine.SHIPENGINE_STATUS_CODES, code) is not None
    for code in ("pre-transit", "transit", "delivered", "failure", "unknown"):
        assert statuses.lookup(dhl.DHL_STATUS_CODES, code) is not None


KNOWN = {key for table in ALL_TABLES.values() for key in table}


@given(st.text(max_size=40).filter(lambda code: code.strip().casefold() not in KNOWN))
def test_any_unknown_code_maps_to_unknown_and_never_raises(code: str) -> None:
    for carrier, table in ALL_TABLES.items():
        assert normalize_status(carrier, [(table, code)], text=code) is ShipmentStatus.UNKNOWN


@given(st.one_of(st.none(), st.text(max_size=20), st.integers(), st.lists(st.integers())))
def test_any_json_value_as_a_ups_activity_never_raises(value: object) -> None:
    from parcelwatch.carriers import ups

    raw = {"date": value, "time": value, "status": {"type": value}, "location": value}
    event = ups.parse_activity(raw)  # type: ignore[arg-type]

    assert event is None or event.occurred_at.tzinfo is not None
