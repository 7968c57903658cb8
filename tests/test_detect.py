"""Tracking number normalization and carrier detection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parcelwatch.carriers.detect import detect_carrier, find_tracking_numbers, normalize_number


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


def test_numbers_printed_in_groups_and_repeated_are_found_once() -> None:
    text = "UPS: 1Z 5R8 939 03 5756 7127 (again: 1Z5R89390357567127)"
    found = find_tracking_numbers(text)
    assert [(n.tracking_number, n.carrier) for n in found] == [("1Z5R89390357567127", "ups")]
