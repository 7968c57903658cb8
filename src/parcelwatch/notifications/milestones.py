"""What a sync write tells people: the milestones between a shipment as it was and as it is
written (pure functions; the writer calls them, `outbox` stores what they find).

Each milestone carries a dedupe key that names the fact, not the poll, so re-polling the
same data, a carrier correcting an event's text, or a status flapping back and forth never
makes the same milestone twice:
- once per shipment: in transit (only leaving pending / label created), delivered,
  returning to sender, expired;
- once per carrier day (of the newest event with that status): out for delivery, delivery
  attempted, available for pickup, exception; a second attempt on another day is news;
- ETA changed: once per new ETA, when it moved by at least a day or became earlier at all;
- stuck: in transit with no new carrier event for `NOTIFY_STUCK_DAYS`, once per last event;
- late: a day past the ETA and not delivered, once per ETA.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from parcelwatch.domain import ShipmentStatus, TrackEvent, TrackInfo
from parcelwatch.notifications.events import STATUS_MILESTONES, EventType

__all__ = ["Milestone", "found_milestones", "expired_milestone"]

_ONCE = frozenset(
    {
        EventType.IN_TRANSIT,
        EventType.DELIVERED,
        EventType.RETURNING_TO_SENDER,
        EventType.EXPIRED,
    }
)
# Leaving these for in transit is the parcel's first move.
_BEFORE_MOVING = frozenset(
    {ShipmentStatus.PENDING, ShipmentStatus.INFO_RECEIVED, ShipmentStatus.UNKNOWN}
)
_ETA_MOVE = timedelta(days=1)
_LATE_AFTER = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Milestone:
    """One thing worth telling the people who track `shipment_id`, with what the write knew
    of the shipment then (the outbox builds each person's message from it)."""

    shipment_id: int
    carrier: str
    tracking_number: str
    event_type: EventType
    dedupe_key: str
    previous_status: ShipmentStatus
    status: ShipmentStatus
    status_detail: str | None
    info: TrackInfo | None
    new_events: tuple[TrackEvent, ...] = ()


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).date().isoformat()


def _status_key(shipment_id: int, event_type: EventType, info: TrackInfo, now: datetime) -> str:
    if event_type in _ONCE:
        return f"{shipment_id}:{event_type.value}"
    status = next(
        (event for event in info.events if STATUS_MILESTONES.get(event.status) is event_type),
        None,
    )
    return f"{shipment_id}:{event_type.value}:{_day(status.occurred_at if status else now)}"


def found_milestones(
    *,
    shipment_id: int,
    carrier: str,
    tracking_number: str,
    previous_status: ShipmentStatus,
    previous_last_event_at: datetime | None,
    previous_estimated_delivery: datetime | None,
    info: TrackInfo,
    status: ShipmentStatus,
    status_detail: str | None,
    last_event_at: datetime | None,
    now: datetime,
    stuck_after: timedelta,
) -> list[Milestone]:
    """The milestones of writing `info` (as `status`, which may be `expired`) over a
    shipment that was `previous_status`."""
    found: list[tuple[EventType, str]] = []
    if status != previous_status:
        event_type = STATUS_MILESTONES.get(status)
        if event_type is EventType.IN_TRANSIT and previous_status not in _BEFORE_MOVING:
            event_type = None  # back in transit after a later status: not news
        if event_type is not None:
            found.append((event_type, _status_key(shipment_id, event_type, info, now)))
    eta, old_eta = info.estimated_delivery, previous_estimated_delivery
    if not status.is_final and eta is not None:
        if old_eta is not None and (eta >= old_eta + _ETA_MOVE or eta < old_eta):
            found.append((EventType.ETA_CHANGED, f"{shipment_id}:eta:{eta.isoformat()}"))
        if now >= eta + _LATE_AFTER:
            found.append((EventType.LATE, f"{shipment_id}:late:{_day(eta)}"))
    if (
        status is ShipmentStatus.IN_TRANSIT
        and last_event_at is not None
        and now - last_event_at >= stuck_after
    ):
        found.append((EventType.STUCK, f"{shipment_id}:stuck:{last_event_at.isoformat()}"))
    if not found:
        return []
    new_events = tuple(
        event
        for event in info.events
        if previous_last_event_at is None or event.occurred_at > previous_last_event_at
    )
    return [
        Milestone(
            shipment_id=shipment_id,
            carrier=carrier,
            tracking_number=tracking_number,
            event_type=event_type,
            dedupe_key=key,
            previous_status=previous_status,
            status=status,
            status_detail=status_detail,
            info=info,
            new_events=new_events,
        )
        for event_type, key in found
    ]


def expired_milestone(
    *,
    shipment_id: int,
    carrier: str,
    tracking_number: str,
    previous_status: ShipmentStatus,
    status_detail: str | None,
) -> Milestone:
    """A shipment the carrier never found (or that fell silent) stopped being polled."""
    return Milestone(
        shipment_id=shipment_id,
        carrier=carrier,
        tracking_number=tracking_number,
        event_type=EventType.EXPIRED,
        dedupe_key=f"{shipment_id}:{EventType.EXPIRED.value}",
        previous_status=previous_status,
        status=ShipmentStatus.EXPIRED,
        status_detail=status_detail,
        info=None,
    )
