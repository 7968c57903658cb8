"""Deterministic storylines: what happens to an emulated parcel, where, and when.

A number's storyline comes from a hash of the number and the seed (or a scenario pin). Its
timeline is fixed once the origin time is known; the clock only decides how much of it is
visible. Carrier modules render the carrier-neutral `Event`s in each wire format.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from parcelwatch.emulator.places import EU_HUBS, EU_PLACES, US_HUBS, US_PLACES, Place

__all__ = [
    "Event",
    "EventKind",
    "Region",
    "Storyline",
    "Timeline",
    "build_timeline",
    "choose_storyline",
    "find_number",
    "stable_hash",
]

Region = Literal["us", "eu"]


class Storyline(StrEnum):
    NORMAL = "normal"  # label -> accepted -> hubs -> out for delivery -> delivered
    FAILED_ATTEMPT = "failed_attempt"  # ... attempt failed, next day delivered
    EXCEPTION = "exception"  # weather delay at a hub, then held there
    RETURN_TO_SENDER = "return_to_sender"  # two failed attempts, returning, returned
    AVAILABLE_FOR_PICKUP = "available_for_pickup"  # waits at a post office / access point
    NEVER_MOVES = "never_moves"  # label created, forever
    CANCELLED = "cancelled"  # label created, then voided
    NOT_FOUND = "not_found"  # the carrier never heard of it


class EventKind(StrEnum):
    LABEL_CREATED = "label_created"
    ACCEPTED = "accepted"
    DEPARTED_FACILITY = "departed_facility"
    ARRIVED_FACILITY = "arrived_facility"
    IN_TRANSIT = "in_transit"
    ARRIVED_DESTINATION = "arrived_destination"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    DELIVERY_ATTEMPTED = "delivery_attempted"
    DELAYED = "delayed"
    HELD = "held"
    RETURNING = "returning"
    RETURNED = "returned"
    AVAILABLE_FOR_PICKUP = "available_for_pickup"
    CANCELLED = "cancelled"


# Share of numbers (out of 100) that follow each storyline when not pinned.
WEIGHTS: tuple[tuple[Storyline, int], ...] = (
    (Storyline.NORMAL, 50),
    (Storyline.FAILED_ATTEMPT, 10),
    (Storyline.EXCEPTION, 8),
    (Storyline.RETURN_TO_SENDER, 5),
    (Storyline.AVAILABLE_FOR_PICKUP, 7),
    (Storyline.NEVER_MOVES, 8),
    (Storyline.CANCELLED, 5),
    (Storyline.NOT_FOUND, 7),
)

SIGNERS = ("JOHN SMITH", "MARIA GARCIA", "LI WEI", "ANNA MUELLER", "DAVID HERRERA", "SARA COHEN")

Role = Literal["origin", "hub_a", "hub_b", "destination", "none"]
Window = tuple[int, int] | None  # local hours [start, end) the event must fall in


@dataclass(frozen=True, slots=True)
class Step:
    kind: EventKind
    role: Role
    min_hours: float
    max_hours: float
    window: Window = None


_TRANSIT = (
    Step(EventKind.LABEL_CREATED, "origin", 0, 0),
    Step(EventKind.ACCEPTED, "origin", 3, 20, (8, 18)),
    Step(EventKind.DEPARTED_FACILITY, "origin", 2, 6),
    Step(EventKind.ARRIVED_FACILITY, "hub_a", 6, 16),
    Step(EventKind.DEPARTED_FACILITY, "hub_a", 2, 8),
    Step(EventKind.IN_TRANSIT, "none", 3, 10),
    Step(EventKind.ARRIVED_FACILITY, "hub_b", 3, 10),
    Step(EventKind.DEPARTED_FACILITY, "hub_b", 2, 6),
    Step(EventKind.ARRIVED_DESTINATION, "destination", 3, 10),
)
_OUT = Step(EventKind.OUT_FOR_DELIVERY, "destination", 1, 4, (7, 10))
_DELIVERED = Step(EventKind.DELIVERED, "destination", 1, 8, (10, 19))
_ATTEMPT = Step(EventKind.DELIVERY_ATTEMPTED, "destination", 1, 8, (10, 19))

TEMPLATES: dict[Storyline, tuple[Step, ...]] = {
    Storyline.NORMAL: (*_TRANSIT, _OUT, _DELIVERED),
    Storyline.FAILED_ATTEMPT: (*_TRANSIT, _OUT, _ATTEMPT, _OUT, _DELIVERED),
    Storyline.EXCEPTION: (
        *_TRANSIT[:5],
        Step(EventKind.DELAYED, "hub_a", 1, 4),
        Step(EventKind.HELD, "hub_a", 10, 20),
    ),
    Storyline.RETURN_TO_SENDER: (
        *_TRANSIT,
        _OUT,
        _ATTEMPT,
        _OUT,
        _ATTEMPT,
        Step(EventKind.RETURNING, "destination", 20, 30),
        Step(EventKind.RETURNED, "origin", 48, 72, (10, 19)),
    ),
    Storyline.AVAILABLE_FOR_PICKUP: (
        *_TRANSIT,
        Step(EventKind.AVAILABLE_FOR_PICKUP, "destination", 1, 5, (8, 18)),
    ),
    Storyline.NEVER_MOVES: (_TRANSIT[0],),
    Storyline.CANCELLED: (_TRANSIT[0], Step(EventKind.CANCELLED, "origin", 12, 36)),
    Storyline.NOT_FOUND: (),
}


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    at: datetime  # aware UTC
    place: Place | None  # None for "in transit to next facility" scans
    clock_place: Place  # whose wall clock tells the local time (the last known place)
    signer: str | None = None

    @property
    def local_at(self) -> datetime:
        """The wall-clock time where it happened (aware, that place's offset)."""
        return self.clock_place.local(self.at)


@dataclass(frozen=True, slots=True)
class Timeline:
    """One number's whole planned history; `visible(now)` is what a carrier reports."""

    number: str
    storyline: Storyline
    started_at: datetime
    origin: Place
    destination: Place
    events: tuple[Event, ...]  # oldest first, including the future
    planned_delivery: datetime | None  # the delivery event's time, when the story has one
    seed: int = 0

    def visible(self, now: datetime) -> list[Event]:
        """Events that have happened by `now`, newest first (as most carriers list them)."""
        return [event for event in reversed(self.events) if event.at <= now]

    def variant(self, salt: str, choices: int) -> int:
        """A stable per-number choice (e.g. which DHL division), in range(choices)."""
        return stable_hash(self.seed, self.number, salt) % choices


def stable_hash(seed: int, *parts: str) -> int:
    digest = hashlib.sha256(":".join([str(seed), *parts]).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _fraction(seed: int, *parts: str) -> float:
    return stable_hash(seed, *parts) / 2**64


def choose_storyline(number: str, seed: int = 0) -> Storyline:
    """The hash-chosen storyline of an unpinned number."""
    slot = stable_hash(seed, number, "storyline") % sum(weight for _, weight in WEIGHTS)
    for storyline, weight in WEIGHTS:
        if slot < weight:
            return storyline
        slot -= weight
    raise AssertionError("weights exhausted")  # pragma: no cover


def find_number(storyline: Storyline, *, seed: int = 0, prefix: str = "EMU") -> str:
    """The first `prefix` + counter number whose hash-chosen storyline is `storyline`."""
    counter = 0
    while True:
        number = f"{prefix}{counter:08d}"
        if choose_storyline(number, seed) is storyline:
            return number
        counter += 1


def _pick(places: Sequence[Place], seed: int, number: str, salt: str, avoid: Place | None) -> Place:
    candidates = [place for place in places if place != avoid]
    return candidates[stable_hash(seed, number, salt) % len(candidates)]


def _fit_window(moment: datetime, place: Place, window: Window, jitter: float) -> datetime:
    if window is None:
        return moment
    start, end = window
    local = place.local(moment)
    if start <= local.hour < end:
        return moment
    day = local if local.hour < start else local + timedelta(days=1)
    begin = day.replace(hour=start, minute=0, second=0, microsecond=0)
    return begin + timedelta(minutes=jitter * 60 * min(2, end - start))


def build_timeline(
    number: str,
    storyline: Storyline,
    started_at: datetime,
    *,
    region: Region = "us",
    seed: int = 0,
) -> Timeline:
    """The full, deterministic history of `number` following `storyline` from `started_at`."""
    places, hubs = (US_PLACES, US_HUBS) if region == "us" else (EU_PLACES, EU_HUBS)
    origin = _pick(places, seed, number, "origin", None)
    destination = _pick(places, seed, number, "destination", origin)
    hub_a = _pick(hubs, seed, number, "hub_a", None)
    hub_b = _pick(hubs, seed, number, "hub_b", hub_a)
    by_role: dict[Role, Place | None] = {
        "origin": origin,
        "hub_a": hub_a,
        "hub_b": hub_b,
        "destination": destination,
        "none": None,
    }
    signer = SIGNERS[stable_hash(seed, number, "signer") % len(SIGNERS)]
    events: list[Event] = []
    moment = started_at
    last_place = origin
    for index, step in enumerate(TEMPLATES[storyline]):
        jitter = _fraction(seed, number, "step", str(index))
        hours = step.min_hours + (step.max_hours - step.min_hours) * jitter
        moment = moment + timedelta(hours=hours)
        if index:
            moment += timedelta(seconds=int(jitter * 59))
        place = by_role[step.role]
        moment = _fit_window(moment, place or last_place, step.window, jitter)
        last_place = place or last_place
        signed = step.kind in (EventKind.DELIVERED, EventKind.RETURNED)
        events.append(Event(step.kind, moment, place, last_place, signer if signed else None))
    planned = next((e.at for e in events if e.kind is EventKind.DELIVERED), None)
    return Timeline(
        number, storyline, started_at, origin, destination, tuple(events), planned, seed
    )
