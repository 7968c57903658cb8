"""Which due shipments a short budget is spent on first: the check priority classes.

A shipment's class is set whenever its status is written (`sync.writer`) and read by the
claim (`sync.claims`), which takes the due shipments class by class, each class oldest due
first and in turns across people (`shipments.check_owner`, the first person tracking it):

0. **urgent**: out for delivery, delivery attempted, exception, available for pickup: a
   change is near and a person waits for it;
1. **arriving**: in transit with an estimated delivery today or tomorrow (UTC), or late;
2. **moving**: any other open status (in transit, returning, unknown);
3. **waiting**: label created (`info_received`) and not found yet (`pending`): the carrier
   has little to say, so they are checked last and, under a short budget, slowest.

The class is computed when the shipment is written, so "tomorrow" is the day after that
check; an in-transit shipment is checked again well before its estimate moves a class.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import IntEnum

from parcelwatch.domain import ShipmentStatus

__all__ = ["CheckPriority", "check_priority"]


class CheckPriority(IntEnum):
    URGENT = 0
    ARRIVING = 1
    MOVING = 2
    WAITING = 3


_URGENT = frozenset(
    {
        ShipmentStatus.OUT_FOR_DELIVERY,
        ShipmentStatus.DELIVERY_ATTEMPTED,
        ShipmentStatus.EXCEPTION,
        ShipmentStatus.AVAILABLE_FOR_PICKUP,
    }
)
_WAITING = frozenset({ShipmentStatus.PENDING, ShipmentStatus.INFO_RECEIVED})


def check_priority(
    status: ShipmentStatus, estimated_delivery: datetime | None, now: datetime
) -> CheckPriority:
    """The class of a shipment with this status and estimate, as of `now`."""
    if status in _URGENT:
        return CheckPriority.URGENT
    if status in _WAITING or status.is_final:
        return CheckPriority.WAITING
    if status is ShipmentStatus.IN_TRANSIT and estimated_delivery is not None:
        day_after_tomorrow = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
            days=2
        )
        if estimated_delivery < day_after_tomorrow:
            return CheckPriority.ARRIVING
    return CheckPriority.MOVING
