"""Carrier detection against the carriers' published test numbers, per carrier.

Reads tests/fixtures/tracking-numbers/published.json (sources noted there) and detects each
number twice: alone, as a person types it into the add form, and inside a sentence of a
pasted email. Prints, per carrier of the catalog: numbers, recall (the right carrier is
among the candidates), numbers answered with a choice of carriers (the number fits the
formats of two: each is listed, with whether the corpus knows the second carrier), and
wrong answers (the right carrier not among those proposed, another one is). Exits 1 when
any carrier's recall is 98% or less or any answer is wrong.

    .venv/bin/python bench/detection_recall.py
    .venv/bin/python bench/detection_recall.py --json

The figures of the `tracking-numbers` package (0.1.8) that detection used before are in
CHANGELOG.md (50% of these numbers overall, none for five carriers).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from parcelwatch.carriers.catalog import CARRIERS
from parcelwatch.carriers.detect import detect_candidates, find_tracking_numbers

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "tracking-numbers"
TARGET = 0.98

# a number as printed, and its carrier (for the email around it) → the carriers proposed
Detector = Callable[[str, str], Sequence[str]]


@dataclass
class Tally:
    numbers: int = 0
    found: int = 0
    several: list[str] = field(default_factory=list)  # answered with a choice
    unexpected: int = 0  # ... of which the corpus knows no second carrier
    wrong: list[str] = field(default_factory=list)  # the right carrier not proposed
    missed: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.found / self.numbers if self.numbers else 0.0


def alone(printed: str, carrier: str) -> list[str]:
    return [c.carrier for c in detect_candidates(printed)]


def _scan(text: str) -> list[str]:
    return [c.carrier for n in find_tracking_numbers(text) for c in n.candidates]


def in_text(printed: str, carrier: str) -> list[str]:
    """In an email that names the carrier, as shipping emails do."""
    name = CARRIERS[carrier].name
    return _scan(f"Your parcel is on its way. {name} tracking number: {printed} (keep this).")


def in_text_unnamed(printed: str, carrier: str) -> list[str]:
    """In text that does not name the carrier: a bare 14-digit run is not taken for DHL
    eCommerce's format (it has no check digit), so this mode is shown, not judged."""
    return _scan(f"Your parcel is on its way. Tracking number: {printed} (keep this).")


def measure(rows: Sequence[dict[str, object]], detector: Detector) -> dict[str, Tally]:
    tallies = {code: Tally() for code in CARRIERS}
    for row in rows:
        carrier, printed = str(row["carrier"]), str(row["number"])
        allowed = {carrier, *(str(c) for c in row.get("also", []))}  # type: ignore[attr-defined]
        proposed = list(dict.fromkeys(detector(printed, carrier)))
        tally = tallies[carrier]
        tally.numbers += 1
        tally.found += carrier in proposed
        if carrier not in proposed:
            tally.missed.append(printed)
            tally.wrong += [f"{printed!r} → {c}" for c in proposed]
        elif len(proposed) > 1:
            tally.several.append(f"{printed!r} → {' or '.join(proposed)}")
            tally.unexpected += any(c not in allowed for c in proposed)
    return tallies


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = parser.parse_args(argv)
    rows = json.loads((CORPUS / "published.json").read_text())["numbers"]
    modes: dict[str, Detector] = {
        "alone": alone,
        "in text naming the carrier": in_text,
        "in text not naming it (shown, not judged)": in_text_unnamed,
    }
    results = {mode: measure(rows, detector) for mode, detector in modes.items()}
    judged = [tallies for mode, tallies in results.items() if "not judged" not in mode]
    ok = all(
        (t.recall > TARGET or not t.numbers) and not t.wrong
        for tallies in judged
        for t in tallies.values()
    )
    if args.json:
        document = {
            mode: {
                code: {
                    "numbers": t.numbers,
                    "recall": round(t.recall, 4),
                    "several_candidates": t.several,
                    "several_without_second_carrier": t.unexpected,
                    "wrong": t.wrong,
                    "missed": t.missed,
                }
                for code, t in tallies.items()
            }
            for mode, tallies in results.items()
        }
        print(json.dumps(document, indent=2))
        return 0 if ok else 1
    for mode, tallies in results.items():
        print(f"\n{mode}:")
        print(f"  {'carrier':<16} {'numbers':>7} {'recall':>7} {'choice':>6} {'wrong':>5}")
        for code, t in tallies.items():
            recall = f"{t.recall:.1%}" if t.numbers else "-"
            print(f"  {code:<16} {t.numbers:>7} {recall:>7} {len(t.several):>6} {len(t.wrong):>5}")
        total = sum(t.numbers for t in tallies.values())
        found = sum(t.found for t in tallies.values())
        print(f"  {'all':<16} {total:>7} {found / total:>7.1%}")
        for t in tallies.values():
            for missed in t.missed:
                print(f"  missed: {missed!r}")
            for wrong in t.wrong:
                print(f"  wrong:  {wrong}")
            for several in t.several if mode == "alone" else ():
                print(f"  choice: {several}")
    print(
        "\ncarriers without published test numbers: "
        + ", ".join(code for code, t in next(iter(results.values())).items() if not t.numbers)
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
