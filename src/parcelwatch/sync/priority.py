"""Which due shipments a short budget is spent on first: the check priority classes.

A shipment's class is set whenever its status is written (`sync.writer`) and read by the
claim (`sync.claims`), which takes the due shipments class by class, each class oldest due
first and in turns across people (`shipments.check_owner`, the first person tracking it):

0. **urgent**: out for delivery, delivery attempted, exception, available for pickup: a
   change is near and a person waits for it;
1. **arriving**: in transit with an estimated delivery today or tomorrow (UTC), or late;
2. **moving**: any other open status (in transit, returning, unknown);
3. **waiting**: label created (`info_received`), not found yet (`pending`), and anything but
   out for delivery with no new event for two days: the carrier has little to say, so they
   are checked last and, under a short budget, slowest.

The classes share a short budget by weight, not strictly (`WEIGHTS`, `ClassTurns`): of 15
calls, about 8 go to urgent shipments, 4 to arriving, 2 to moving and 1 to waiting ones while
each class has shipments due, so a class that keeps coming due (a parcel held for days is an
"exception" every hour) never starves the others, and a new shipment's first check comes.

The class is computed when the shipment is written, so "tomorrow" is the day after that
check; an in-transit shipment is checked again well before its estimate moves a class. A
shipment never checked yet is "moving": nothing says it is not.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import IntEnum

from parcelwatch.domain import ShipmentStatus

__all__ = ["STILL", "WEIGHTS", "CheckPriority", "ClassTurns", "check_priority"]


class CheckPriority(IntEnum):
    URGENT = 0
    ARRIVING = 1
    MOVING = 2
    WAITING = 3


WEIGHTS = {
    CheckPriority.URGENT: 8,
    CheckPriority.ARRIVING: 4,
    CheckPriority.MOVING: 2,
    CheckPriority.WAITING: 1,
}


class ClassTurns:
    """Whose turn a short claim is (stride scheduling): each class's pass grows by 1/weight
    per shipment it got; the claim takes the classes lowest pass first. A class with nothing
    due does not save up turns: it catches up with the others when it gets one again."""

    def __init__(self) -> None:
        self.passes = dict.fromkeys(CheckPriority, 0.0)

    def order(self) -> list[CheckPriority]:
        return sorted(CheckPriority, key=lambda c: (self.passes[c], c))

    def took(self, classes: list[int]) -> None:
        if not classes:
            return
        taken = {CheckPriority(c) for c in classes}
        floor = min(self.passes[c] for c in taken)
        for c in classes:
            self.passes[CheckPriority(c)] += 1 / WEIGHTS[CheckPriority(c)]
        for c in CheckPriority:
            if c not in taken:
                self.passes[c] = max(self.passes[c], floor)


_URGENT = frozenset(
    {
        ShipmentStatus.OUT_FOR_DELIVERY,
        ShipmentStatus.DELIVERY_ATTEMPTED,
        ShipmentStatus.EXCEPTION,
        ShipmentStatus.AVAILABLE_FOR_PICKUP,
    }
)
_WAITING = frozenset({ShipmentStatus.PENDING, ShipmentStatus.INFO_RECEIVED})


STILL = timedelta(days=2)  # no new event for this long: not likely to change soon


def check_priority(
    status: ShipmentStatus,
    estimated_delivery: datetime | None,
    now: datetime,
    last_movement: datetime | None = None,
) -> CheckPriority:
    """The class of a shipment with this status and estimate, as of `now`; one that has not
    moved for `STILL` (a parcel held for days) waits, unless it is out for delivery."""
    if status in (ShipmentStatus.OUT_FOR_DELIVERY, ShipmentStatus.DELIVERY_ATTEMPTED):
        return CheckPriority.URGENT
    if status in _WAITING or status.is_final:
        return CheckPriority.WAITING
    if last_movement is not None and now - last_movement >= STILL:
        return CheckPriority.WAITING
    if status in _URGENT:
        return CheckPriority.URGENT
    if status is ShipmentStatus.IN_TRANSIT and estimated_delivery is not None:
        day_after_tomorrow = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
            days=2
        )
        if estimated_delivery < day_after_tomorrow:
            return CheckPriority.ARRIVING
    return CheckPriority.MOVING
