"""Tracking number normalization and carrier detection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parcelwatch.carriers.catalog import CARRIERS
from parcelwatch.carriers.detect import (
    detect_candidates,
    detect_carrier,
    find_tracking_numbers,
    normalize_number,
)

PUBLISHED = json.loads(
    (Path(__file__).parent / "fixtures" / "tracking-numbers" / "published.json").read_text()
)["numbers"]
# Published numbers that also fit another carrier's published format, check digit included:
# the answer is a choice between the two.
FORMAT_COLLISIONS = {"287809468872": "fedex", "320610804900": "fedex", "JFV247545960": "dhl"}


@pytest.mark.parametrize(
    ("number", "carrier"),
    [
        ("1Z5R89390357567127", "ups"),
        ("9361289673090019555035", "usps"),
        ("9205590982952107001084", "usps"),
        ("123456789012", "fedex"),
        ("1z 5r8 939-0357567127", "ups"),
    ],
)
def test_known_formats_are_detected(number: str, carrier: str) -> None:
    assert detect_carrier(number) == carrier


def test_a_number_failing_its_check_digit_is_not_detected() -> None:
    assert detect_carrier("1Z5R89390357567128") is None


@given(st.text(alphabet="abcdefXYZ0123456789 -", max_size=40))
def test_normalizing_is_idempotent_and_leaves_only_upper_alphanumerics(raw: str) -> None:
    once = normalize_number(raw)
    assert normalize_number(once) == once
    assert once == once.upper()
    assert " " not in once
    assert "-" not in once


@given(st.text(max_size=300))
def test_scanning_any_text_never_fails_and_finds_only_valid_numbers(text: str) -> None:
    for found in find_tracking_numbers(text):
        assert detect_carrier(found.tracking_number) == found.carrier
        assert found.candidates == detect_candidates(found.tracking_number)


def test_numbers_printed_in_groups_and_repeated_are_found_once() -> None:
    text = "UPS: 1Z 5R8 939 03 5756 7127 (again: 1Z5R89390357567127)"
    found = find_tracking_numbers(text)
    assert [(n.tracking_number, n.carrier) for n in found] == [("1Z5R89390357567127", "ups")]


@pytest.mark.parametrize(
    "row", PUBLISHED, ids=[f"{r['carrier']}:{r['number'].strip()}" for r in PUBLISHED]
)
def test_every_published_test_number_gets_its_carrier_and_no_unrelated_one(
    row: dict[str, object],
) -> None:
    number, carrier = str(row["number"]), str(row["carrier"])
    allowed = {carrier, *row.get("also", [])}  # type: ignore[misc]
    if normalize_number(number) in FORMAT_COLLISIONS:
        allowed.add(FORMAT_COLLISIONS[normalize_number(number)])

    proposed = {c.carrier for c in detect_candidates(number)}

    assert carrier in proposed
    assert proposed <= allowed


@pytest.mark.parametrize(
    ("number", "carrier", "family"),
    [
        ("GM2951173225174494", "dhl_ecommerce", "DHL eCommerce"),
        ("GM9E44608A27984866BA2D", "dhl_ecommerce", "DHL eCommerce"),
        ("60120172242323", "dhl_ecommerce", "DHL eCommerce (14 digits)"),
        ("LX17635036", "lasership", "LaserShip L"),
        ("1LS717793482164", "lasership", "LaserShip 1LS7 (15)"),
        ("1LS7119013618127-1", "lasership", "LaserShip 1LS7 (18)"),
        ("1LS CX VE00 58631Y", "lasership", "LaserShip 1LSCX"),
        ("320595463938", "purolator_ca", "Purolator (12 digits)"),
        ("KYV009956937", "purolator_ca", "Purolator (3 letters + 9 digits)"),
        ("0073938000549297", "canada_post", "Canada Post (16 digits)"),
        ("K2479825491", "ups", "UPS waybill"),
        ("TBC000000000000", "amazon_shipping", "Amazon Logistics (TBA/TBC/TBM)"),
        ("TBM502887274000", "amazon_shipping", "Amazon Logistics (TBA/TBC/TBM)"),
        ("C1004444443", "amazon_shipping", "Amazon international (C + 10 digits)"),
        ("D10011354453707", "ontrac", "OnTrac D"),
    ],
)
def test_each_family_the_old_package_missed_is_detected(
    number: str, carrier: str, family: str
) -> None:
    [candidate] = detect_candidates(number)
    assert (candidate.carrier, candidate.format) == (carrier, family)
    assert detect_carrier(number) == carrier


def test_a_waybill_failing_its_check_digit_is_not_detected() -> None:
    assert detect_candidates("K2479825492") == ()


@pytest.mark.parametrize(
    ("printed", "number", "carrier"),
    [
        (" 0 3 0 7   1 7 9 0   0 0 0 5   2 3 4 8   3 7 4 1 ", "03071790000523483741", "usps"),
        (" 1 Z 8 V 9 2 A 7 0 3 6 7 2 0 3 0 2 4 ", "1Z8V92A70367203024", "ups"),
        (" 1 L S 7 1 1 9 0 1 3 6 1 8 1 2 7 - 1 ", "1LS71190136181271", "lasership"),
        (" 9 6 1 1 0 2 0 9 8 7 6 5 4 3 1 2 3 4 5 6 7 2 ", "9611020987654312345672", "fedex"),
    ],
)
def test_numbers_with_a_space_between_every_character_are_found_whole_in_text(
    printed: str, number: str, carrier: str
) -> None:
    name = CARRIERS[carrier].name
    found = find_tracking_numbers(f"Shipped with {name}! Tracking number:{printed}— thanks.")

    assert [(n.tracking_number, n.carrier) for n in found] == [(number, carrier)]


def test_part_of_a_spaced_number_is_never_attributed_to_dhl() -> None:
    # Ten of these twenty digits (7900005234) satisfy DHL's mod-7 check on their own: the
    # pinned package's scan reported them as a DHL number.
    assert detect_carrier("7900005234") == "dhl"
    for spaced in (
        "0 3 0 7 1 7 9 0 0 0 0 5 2 3 4 8 3 7 4 1",
        " 5 6 8 2   8 3 6 1   0 0 1 2   0 0 0 ",
        " 4 2 0 1 0 2 8 2 0 0 0 0 9 2 6 1 2 9 0 1 1 3 1 8 5 4 1 7 4 6 8 5 1 0 ",
    ):
        found = find_tracking_numbers(f"Tracking: {spaced}")

        assert len(found) == 1
        assert "dhl" not in {c.carrier for c in found[0].candidates}


def test_no_number_is_cut_out_of_a_longer_printed_number_that_fails_its_check() -> None:
    # The whole number fails USPS's check; its middle groups pass FedEx's 12-digit one.
    assert detect_carrier("100234567890") == "fedex"
    assert find_tracking_numbers("USPS tracking 9400 1002 3456 7890 4284 96") == []


def test_a_number_two_carriers_fit_lists_both_with_their_reasons_and_picks_none() -> None:
    [found] = find_tracking_numbers("Your parcel: 287809468872")

    assert found.carrier is None
    assert found.ambiguous
    assert [(c.carrier, c.reason) for c in found.candidates] == [
        ("fedex", "FedEx Express (12 digits): pattern and check digit"),
        ("purolator_ca", "Purolator (12 digits): pattern and check digit"),
    ]
    assert detect_carrier("287809468872") is None


def test_a_format_without_check_digit_is_said_to_be_pattern_only() -> None:
    [candidate] = detect_candidates("TBA502887274000")
    assert not candidate.checked
    assert candidate.reason == "Amazon Logistics (TBA/TBC/TBM): pattern only (no check digit)"


def test_fourteen_bare_digits_in_text_are_dhl_ecommerce_only_where_dhl_is_named() -> None:
    assert find_tracking_numbers("Order 60120172242323 confirmed, see you soon") == []
    found = find_tracking_numbers("Your DHL eCommerce number 60120172242323 is ready")
    assert [(n.tracking_number, n.carrier) for n in found] == [("60120172242323", "dhl_ecommerce")]
    # Typed alone (the add form), the number is its own context.
    assert [n.carrier for n in find_tracking_numbers("60120172242323")] == ["dhl_ecommerce"]


def test_words_and_numbers_joined_are_no_pattern_only_number_unless_the_carrier_is_named() -> None:
    # "SKU" + 9 digits has the shape of a Purolator number, which has no check digit.
    assert detect_carrier("SKU123456789") == "purolator_ca"
    assert find_tracking_numbers("Red shoes, SKU 123456789, size 9") == []
    found = find_tracking_numbers("Your Purolator PIN: KYV 009 956 937")
    assert [(n.tracking_number, n.carrier) for n in found] == [("KYV009956937", "purolator_ca")]
    # Printed in one piece, a lettered pattern-only number stands on its own.
    found = find_tracking_numbers("Track it: TBA502887274000")
    assert [n.carrier for n in found] == ["amazon_shipping"]


def test_a_pattern_only_number_in_pieces_needs_its_own_prefix_or_its_carrier_named() -> None:
    # TBA is Amazon's own: spaced out, the number is still Amazon's, and its twelve zeros
    # (which fit FedEx's and Purolator's 12-digit formats) are never read on their own.
    assert {c.carrier for c in detect_candidates("000000000000")} == {"fedex", "purolator_ca"}
    found = find_tracking_numbers("Tracking: T B A 0 0 0 0 0 0 0 0 0 0 0 0 today")
    assert [(n.tracking_number, n.carrier) for n in found] == [
        ("TBA000000000000", "amazon_shipping")
    ]
    # "LX" + 8 digits (LaserShip, no check digit) in pieces: only where LaserShip is named.
    assert find_tracking_numbers("Ref LX 176 35035 today") == []
    found = find_tracking_numbers("LaserShip ref LX 176 35035 today")
    assert [n.carrier for n in found] == ["lasership"]
