"""Tracking number normalization and carrier detection on the formats of `carriers.formats`;
free text (a pasted email) is scanned for every number that fits one.

A number gets every carrier whose format it fits, each with its reason (`Candidate`);
`DetectedNumber.carrier` is that carrier only when there is exactly one. When two fit, the
caller asks the person: detection never picks one silently.

Free text: a number may be printed whole, in groups ("1Z 999 AA1 01 2345 6784") or with a
space between every character. The longest run of neighbouring chunks that fits a format
wins, and a run is never cut out of a longer printed number (a short group of digits right
before or after it means the number goes on), so the middle of a mistyped USPS number is
not reported as a DHL one. A format with no check digit says less: in free text it counts
when the text names the carrier, when its format starts with letters of the carrier's own
("TBA 5028 8727 4000", "1LS7…"), or when the number is printed in one piece and is more than
a count of digits: "SKU 123456789" is not a Purolator number, and 14 bare digits are DHL
eCommerce's only where DHL is named.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from parcelwatch.carriers.catalog import CARRIERS
from parcelwatch.carriers.formats import FORMATS, NumberFormat

__all__ = [
    "Candidate",
    "DetectedNumber",
    "detect_candidates",
    "detect_carrier",
    "find_tracking_numbers",
    "normalize_number",
]

_SEPARATORS = re.compile(r"[\s\-]+")
_CHUNK_EDGE = re.compile(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$")
_MAX_LENGTH = 40
_GROUP = 5  # the longest chunk read as a group of a longer printed number
_PREFIX = 4  # the longest letters-only chunk a printed number starts with ("TBA 0000…")


@dataclass(frozen=True, slots=True)
class Candidate:
    """One carrier a number fits, and the format that says so."""

    carrier: str
    format: str
    checked: bool  # the format's check digit holds (False: the format has none)

    @property
    def reason(self) -> str:
        proof = "pattern and check digit" if self.checked else "pattern only (no check digit)"
        return f"{self.format}: {proof}"


@dataclass(frozen=True, slots=True)
class DetectedNumber:
    tracking_number: str
    candidates: tuple[Candidate, ...]

    @property
    def carrier(self) -> str | None:
        """The carrier, when exactly one fits; None when the person has to choose."""
        return self.candidates[0].carrier if len(self.candidates) == 1 else None

    @property
    def ambiguous(self) -> bool:
        return len(self.candidates) > 1


def normalize_number(raw: str) -> str:
    """Remove spaces and dashes and upper-case: ' 1z-999 aa1 ' → '1Z999AA1'."""
    return _SEPARATORS.sub("", raw).upper()


def _weak(number_format: NumberFormat) -> bool:
    """A format without check digit that is only a count of digits (DHL eCommerce's 14)."""
    return not number_format.checked and number_format.pattern.fullmatch("0" * 14) is not None


# Those with a check digit first; the catalog's carriers only.
_ORDERED = tuple(f for f in sorted(FORMATS, key=lambda f: not f.checked) if f.carrier in CARRIERS)


def detect_candidates(tracking_number: str) -> tuple[Candidate, ...]:
    """Every carrier of the catalog whose format the (normalized) number fits, one candidate
    per carrier, those with a check digit first."""
    number = normalize_number(tracking_number)
    if not (number.isascii() and number.isalnum()) or len(number) > _MAX_LENGTH:
        return ()
    found: dict[str, Candidate] = {}
    for number_format in _ORDERED:
        if number_format.carrier not in found and number_format.fits(number):
            found[number_format.carrier] = Candidate(
                number_format.carrier, number_format.name, number_format.checked
            )
    return tuple(found.values())


def detect_carrier(tracking_number: str) -> str | None:
    """The one carrier the number fits; None when none does, or several (ask the person)."""
    candidates = detect_candidates(tracking_number)
    return candidates[0].carrier if len(candidates) == 1 else None


def find_tracking_numbers(text: str) -> list[DetectedNumber]:
    """Every tracking number in free text, in order of appearance, without repeats."""
    whole = normalize_number(_CHUNK_EDGE.sub("", text.strip()))
    if whole and len(whole) <= _MAX_LENGTH and whole.isalnum():
        single = detect_candidates(whole)
        if single:  # the text is one number, however it was spaced
            return [DetectedNumber(whole, single)]
    named = _carriers_named(text)
    found: dict[str, DetectedNumber] = {}
    for line in text.splitlines():
        # a lone dash belongs to the number around it ("1 L S 7 … 7 - 1")
        chunks = [_CHUNK_EDGE.sub("", chunk) for chunk in line.split() if chunk.strip("-")]
        start = 0
        while start < len(chunks):
            run = _longest_run(chunks, start, named)
            if run is None:
                start += 1
                continue
            end, detected = run
            if detected is not None:
                found.setdefault(detected.tracking_number, detected)
            start = end
    return list(found.values())


_FORMAT_OF = {(f.carrier, f.name): f for f in FORMATS}


def _stands_alone(candidate: Candidate, *, joined: bool) -> bool:
    """A candidate without check digit, in text that does not name its carrier: taken when
    its format starts with letters of its own, or when it is printed in one piece and is
    more than a count of digits."""
    number_format = _FORMAT_OF[(candidate.carrier, candidate.format)]
    return number_format.own_prefix or (not joined and not _weak(number_format))


def _carriers_named(text: str) -> frozenset[str]:
    """The carriers whose name (its first word: "DHL" for DHL eCommerce) the text mentions."""
    words = set(re.findall(r"[a-z]+", text.casefold()))
    return frozenset(
        code for code, info in CARRIERS.items() if info.name.split()[0].casefold() in words
    )


def _alnum(chunk: str) -> bool:
    """Letters and digits, dashes inside allowed ("1LS7119013618127-1")."""
    return chunk.replace("-", "").isalnum()


def _is_group(chunk: str) -> bool:
    return 0 < len(chunk) <= _GROUP and any(c.isdigit() for c in chunk)


def _can_start(chunk: str) -> bool:
    if not _alnum(chunk):
        return False
    return any(c.isdigit() for c in chunk) or (len(chunk) <= _PREFIX and chunk.isupper())


def _longest_run(
    chunks: list[str], start: int, named: frozenset[str]
) -> tuple[int, DetectedNumber | None] | None:
    """The end of the longest run from `start` that fits a format, and the number it is; the
    number is None when only formats free text does not take fit (the run is passed over
    whole: no part of it is read as another carrier's number)."""
    if not _can_start(chunks[start]):
        return None
    if start > 0 and _is_group(chunks[start - 1]) and len(chunks[start]) <= _GROUP:
        return None  # the printed number began earlier
    ends = []
    length = 0
    for end in range(start + 1, len(chunks) + 1):
        if not _alnum(chunks[end - 1]):
            break
        length += len(chunks[end - 1])
        if length > _MAX_LENGTH:
            break
        ends.append(end)
    passed_over: int | None = None
    for end in reversed(ends):
        if end < len(chunks) and _is_group(chunks[end]) and len(chunks[end - 1]) <= _GROUP:
            continue  # the printed number goes on
        number = normalize_number("".join(chunks[start:end]))
        candidates = detect_candidates(number)
        # One candidate free text can take is enough to take the number; it is then
        # reported with all its candidates, as `detect_candidates` gives them alone.
        if any(
            c.checked or c.carrier in named or _stands_alone(c, joined=end - start > 1)
            for c in candidates
        ):
            return end, DetectedNumber(number, candidates)
        if passed_over is None and candidates:
            passed_over = end
    return None if passed_over is None else (passed_over, None)
