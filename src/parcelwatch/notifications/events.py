"""The notification event types, which a person gets by default, which are urgent enough to
pass quiet hours, and the versioned body every channel renders from."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Final

from parcelwatch.domain import ShipmentStatus

__all__ = [
    "CHANNEL_KINDS",
    "DEFAULT_EVENT_TYPES",
    "MILESTONE_TYPES",
    "NOTIFY_MODES",
    "PAYLOAD_VERSION",
    "STATUS_MILESTONES",
    "URGENT_TYPES",
    "EventType",
    "iso",
    "title",
]

# The version of the JSON body (`payload`): a receiver can refuse a version it does not know.
PAYLOAD_VERSION: Final = 1

CHANNEL_KINDS: Final = ("email", "apprise", "webhook")
# A tracker's `notify`: the person's rules, only "delivered", or nothing.
NOTIFY_MODES: Final = ("all", "delivered_only", "muted")


class EventType(StrEnum):
    """What a notification is about. The `shipment.*` ones are milestones; the others are
    about the channel itself."""

    IN_TRANSIT = "shipment.in_transit"
    OUT_FOR_DELIVERY = "shipment.out_for_delivery"
    DELIVERED = "shipment.delivered"
    DELIVERY_ATTEMPTED = "shipment.delivery_attempted"
    AVAILABLE_FOR_PICKUP = "shipment.available_for_pickup"
    EXCEPTION = "shipment.exception"
    RETURNING_TO_SENDER = "shipment.returning_to_sender"
    ETA_CHANGED = "shipment.eta_changed"
    STUCK = "shipment.stuck"
    LATE = "shipment.late"
    EXPIRED = "shipment.expired"
    TEST = "notification.test"
    CHANNEL_DISABLED = "channel.disabled"


MILESTONE_TYPES: Final = tuple(t for t in EventType if t.value.startswith("shipment."))

DEFAULT_EVENT_TYPES: Final = (
    EventType.OUT_FOR_DELIVERY,
    EventType.DELIVERED,
    EventType.EXCEPTION,
    EventType.AVAILABLE_FOR_PICKUP,
    EventType.STUCK,
)

# Sent at once even in quiet hours: someone may have to act now. A test is asked for now,
# and a disabled channel is news about the others.
URGENT_TYPES: Final = frozenset(
    {
        EventType.EXCEPTION,
        EventType.DELIVERY_ATTEMPTED,
        EventType.TEST,
        EventType.CHANNEL_DISABLED,
    }
)

# The status a shipment reaches that makes each status milestone.
STATUS_MILESTONES: Final = {
    ShipmentStatus.IN_TRANSIT: EventType.IN_TRANSIT,
    ShipmentStatus.OUT_FOR_DELIVERY: EventType.OUT_FOR_DELIVERY,
    ShipmentStatus.DELIVERED: EventType.DELIVERED,
    ShipmentStatus.DELIVERY_ATTEMPTED: EventType.DELIVERY_ATTEMPTED,
    ShipmentStatus.AVAILABLE_FOR_PICKUP: EventType.AVAILABLE_FOR_PICKUP,
    ShipmentStatus.EXCEPTION: EventType.EXCEPTION,
    ShipmentStatus.RETURNING_TO_SENDER: EventType.RETURNING_TO_SENDER,
    ShipmentStatus.EXPIRED: EventType.EXPIRED,
}

_TITLES: Final = {
    EventType.IN_TRANSIT: "is on its way",
    EventType.OUT_FOR_DELIVERY: "is out for delivery",
    EventType.DELIVERED: "was delivered",
    EventType.DELIVERY_ATTEMPTED: "could not be delivered; the carrier will try again",
    EventType.AVAILABLE_FOR_PICKUP: "is ready for pickup",
    EventType.EXCEPTION: "needs attention",
    EventType.RETURNING_TO_SENDER: "is going back to the sender",
    EventType.ETA_CHANGED: "has a new delivery date",
    EventType.STUCK: "has not moved for days",
    EventType.LATE: "is late",
    EventType.EXPIRED: "is no longer tracked",
    EventType.TEST: "test notification",
    EventType.CHANNEL_DISABLED: "a notification channel was switched off",
}


def title(event_type: EventType, name: str) -> str:
    """A one-line headline: "Running shoes is out for delivery"."""
    if event_type in (EventType.TEST, EventType.CHANNEL_DISABLED):
        return f"parcelwatch: {_TITLES[event_type]}"
    return f"{name} {_TITLES[event_type]}"


def iso(moment: datetime) -> str:
    """A moment in a body: ISO 8601 in UTC with a `Z` (`2026-12-07T09:30:00Z`)."""
    return moment.isoformat().replace("+00:00", "Z")
