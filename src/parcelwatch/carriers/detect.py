"""Tracking number normalization and carrier detection, on the `tracking-numbers` package's
patterns and check digits; free text (a pasted email) is scanned for every valid number."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tracking_numbers import get_tracking_number

from parcelwatch.carriers.catalog import CARRIERS

__all__ = ["DetectedNumber", "detect_carrier", "find_tracking_numbers", "normalize_number"]

# tracking-numbers courier codes → our carrier codes
_COURIERS = {
    "usps": "usps",
    "ups": "ups",
    "fedex": "fedex",
    "dhl": "dhl",
    "ontrac": "ontrac",
    "amazon": "amazon_shipping",
}
# UPU S10 numbers (e.g. LZ123456789US) belong to the postal operator of their country suffix.
_S10_COUNTRIES = {
    "US": "usps",
    "CA": "canada_post",
    "GB": "royal_mail",
    "AU": "australia_post",
    "DE": "dhl",
}
_SEPARATORS = re.compile(r"[\s\-]+")
_CHUNK_EDGE = re.compile(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$")
_MAX_CHUNKS = 10  # numbers printed in groups: "1Z 999 AA1 01 2345 6784"
_MAX_LENGTH = 40


@dataclass(frozen=True, slots=True)
class DetectedNumber:
    tracking_number: str
    carrier: str


def normalize_number(raw: str) -> str:
    """Remove spaces and dashes and upper-case: ' 1z-999 aa1 ' → '1Z999AA1'."""
    return _SEPARATORS.sub("", raw).upper()


def detect_carrier(tracking_number: str) -> str | None:
    """The carrier whose pattern and check digit the (normalized) number satisfies."""
    number = normalize_number(tracking_number)
    if not number.isalnum() or len(number) > _MAX_LENGTH:
        return None
    found = get_tracking_number(number)
    if found is None:
        return None
    code = found.courier.code
    if code == "s10":
        return _S10_COUNTRIES.get(number[-2:])
    carrier = _COURIERS.get(code)
    return carrier if carrier in CARRIERS else None


def find_tracking_numbers(text: str) -> list[DetectedNumber]:
    """Every valid tracking number in free text, in order of appearance, without repeats.

    Numbers may be printed whole or in space-separated groups; the longest run of
    neighbouring chunks that forms a valid number wins."""
    found: dict[str, DetectedNumber] = {}
    for line in text.splitlines():
        chunks = [_CHUNK_EDGE.sub("", chunk) for chunk in line.split()]
        start = 0
        while start < len(chunks):
            end = _longest_valid_run(chunks, start)
            if end is None:
                start += 1
                continue
            number = normalize_number("".join(chunks[start:end]))
            carrier = detect_carrier(number)
            if carrier and number not in found:
                found[number] = DetectedNumber(number, carrier)
            start = end
    return list(found.values())


def _longest_valid_run(chunks: list[str], start: int) -> int | None:
    if not chunks[start] or not any(c.isdigit() for c in chunks[start]):
        return None
    limit = min(len(chunks), start + _MAX_CHUNKS)
    for end in range(limit, start, -1):
        if not all(chunks[start:end]):
            continue
        candidate = normalize_number("".join(chunks[start:end]))
        if len(candidate) <= _MAX_LENGTH and detect_carrier(candidate):
            return end
    return None
