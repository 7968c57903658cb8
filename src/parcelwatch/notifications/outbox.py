"""The outbox: milestones become notifications and deliveries in the transaction of the sync
write that found them (the batch writer, manual refresh and carrier pushes all write through
`sync.writer`), so a rolled-back write tells nobody and a committed one is delivered even if
the process dies right after.

For each milestone, every tracker of its shipment is asked: a muted tracker gets nothing,
"delivered only" gets only `shipment.delivered`; otherwise each of the person's enabled
channels that wants the event type gets a delivery (and each admin's instance-wide webhook
too). A notification is stored once per (person, dedupe key): the same milestone found
again inserts nothing. When a delivery is first due:
- webhooks: at once (machines want each event as it happens);
- email and Apprise: after `NOTIFY_GROUP_WINDOW`, so what else changes meanwhile goes out
  in the same message; a non-urgent one found in the person's quiet hours waits for their
  end (in the person's time zone).
"""

from __future__ import annotations

import secrets
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, Table, insert, or_, select

from parcelwatch.config import Settings
from parcelwatch.db import insert_new
from parcelwatch.domain import TrackEvent
from parcelwatch.models import (
    Notification,
    NotificationChannel,
    NotificationDelivery,
    Tracker,
    TrackerLabel,
    User,
)
from parcelwatch.notifications import wakeup
from parcelwatch.notifications.events import PAYLOAD_VERSION, URGENT_TYPES, EventType, iso
from parcelwatch.notifications.milestones import Milestone
from parcelwatch.ops.metrics import NOTIFICATIONS_ENQUEUED

__all__ = [
    "NotifyPolicy",
    "announce",
    "enqueue_milestones",
    "first_attempt_at",
    "in_quiet_hours_until",
    "new_message_id",
]

_notifications = cast(Table, Notification.__table__)
_deliveries = cast(Table, NotificationDelivery.__table__)


@dataclass(frozen=True, slots=True)
class NotifyPolicy:
    """The settings the outbox depends on."""

    stuck_after: timedelta = timedelta(days=4)
    group_window: timedelta = timedelta(minutes=2)
    public_url: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> NotifyPolicy:
        return cls(
            stuck_after=timedelta(days=settings.notify_stuck_days),
            group_window=settings.notify_group_window,
            public_url=settings.public_url,
        )


def new_message_id() -> str:
    """A delivery's `webhook-id`: the same on every attempt and replay of it."""
    return "msg_" + secrets.token_hex(12)


def in_quiet_hours_until(
    now: datetime, *, timezone: str, start_minute: int | None, end_minute: int | None
) -> datetime | None:
    """When the person's quiet hours end, if `now` falls in them (else None). Hours may span
    midnight (22:00 to 07:00); an unknown zone counts as UTC."""
    if start_minute is None or end_minute is None or start_minute == end_minute:
        return None
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = now.astimezone(zone)
    minute = local.hour * 60 + local.minute
    if start_minute < end_minute:
        quiet = start_minute <= minute < end_minute
    else:
        quiet = minute >= start_minute or minute < end_minute
    if not quiet:
        return None
    end = time(end_minute // 60, end_minute % 60)
    day = local.date() if minute < end_minute else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=zone).astimezone(UTC)


def first_attempt_at(
    *,
    kind: str,
    event_type: EventType,
    now: datetime,
    policy: NotifyPolicy,
    timezone: str = "UTC",
    quiet_start_minute: int | None = None,
    quiet_end_minute: int | None = None,
) -> datetime:
    """When a new delivery to a channel of `kind` is first due (see the module docstring)."""
    if kind == "webhook":
        return now
    due = now if event_type in URGENT_TYPES else now + policy.group_window
    if event_type not in URGENT_TYPES:
        quiet_until = in_quiet_hours_until(
            due, timezone=timezone, start_minute=quiet_start_minute, end_minute=quiet_end_minute
        )
        if quiet_until is not None:
            due = quiet_until
    return due


def _event_body(event: TrackEvent) -> dict[str, Any]:
    location = event.location
    return {
        "occurred_at": iso(event.occurred_at),
        "status": event.status.value,
        "description": event.description,
        "location": {
            "city": location.city,
            "state": location.state,
            "postal_code": location.postal_code,
            "country": location.country,
        },
    }


def _payload(
    milestone: Milestone,
    *,
    tracker_id: int,
    description: str | None,
    labels: list[str],
    now: datetime,
    policy: NotifyPolicy,
) -> dict[str, Any]:
    """The versioned body (see the README's notification section): only this person's
    tracker, never anyone else's."""
    info = milestone.info
    base = policy.public_url.rstrip("/") if policy.public_url else None
    when = info.estimated_delivery if info else None
    delivered = info.delivered_at if info else None
    return {
        "type": milestone.event_type.value,
        "timestamp": iso(now),
        "version": PAYLOAD_VERSION,
        "data": {
            "shipment": {
                "id": milestone.shipment_id,
                "carrier": milestone.carrier,
                "tracking_number": milestone.tracking_number,
                "status": milestone.status.value,
                "status_detail": milestone.status_detail,
                "estimated_delivery": iso(when) if when else None,
                "delivered_at": iso(delivered) if delivered else None,
                "signed_by": info.signed_by if info else None,
                "tracking_url": info.tracking_url if info else None,
                "url": f"{base}/shipments/{milestone.shipment_id}" if base else None,
            },
            "tracker": {"id": tracker_id, "description": description, "labels": labels},
            "previous_status": milestone.previous_status.value,
            "events": [_event_body(event) for event in milestone.new_events[:20]],
        },
    }


def announce(enqueued: Counter[str]) -> None:
    """After the commit that stored them: count the new deliveries (by channel kind) and wake
    this process's dispatchers, so they deliver now rather than at their next poll."""
    if not enqueued:
        return
    for kind, count in enqueued.items():
        NOTIFICATIONS_ENQUEUED.labels(kind).inc(count)
    wakeup.wake_dispatchers()


def enqueue_milestones(
    connection: Connection,
    milestones: Sequence[Milestone],
    *,
    now: datetime,
    policy: NotifyPolicy,
) -> Counter[str]:
    """Store the notifications and deliveries `milestones` make, in the connection's
    transaction; how many deliveries were added, by channel kind (for `announce`)."""
    enqueued: Counter[str] = Counter()
    if not milestones:
        return enqueued
    shipment_ids = {milestone.shipment_id for milestone in milestones}
    trackers = connection.execute(
        select(
            Tracker.id,
            Tracker.user_id,
            Tracker.shipment_id,
            Tracker.description,
            Tracker.notify,
            User.timezone,
            User.quiet_start_minute,
            User.quiet_end_minute,
        )
        .join(User, User.id == Tracker.user_id)
        .where(Tracker.shipment_id.in_(shipment_ids), Tracker.notify != "muted")
    ).all()
    if not trackers:
        return enqueued
    user_ids = {tracker.user_id for tracker in trackers}
    channels = connection.execute(
        select(
            NotificationChannel.id,
            NotificationChannel.user_id,
            NotificationChannel.kind,
            NotificationChannel.event_types,
            NotificationChannel.instance_wide,
        ).where(
            NotificationChannel.enabled.is_(True),
            NotificationChannel.disabled_at.is_(None),
            or_(
                NotificationChannel.user_id.in_(user_ids),
                NotificationChannel.instance_wide.is_(True),
            ),
        )
    ).all()
    if not channels:
        return enqueued
    own: dict[int, list[Any]] = defaultdict(list)
    instance_wide: list[Any] = []
    for channel in channels:
        (instance_wide if channel.instance_wide else own[channel.user_id]).append(channel)
    by_shipment: dict[int, list[Any]] = defaultdict(list)
    for tracker in trackers:
        by_shipment[tracker.shipment_id].append(tracker)

    planned: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    for milestone in milestones:
        event_type = milestone.event_type
        for tracker in by_shipment.get(milestone.shipment_id, ()):
            if tracker.notify == "delivered_only" and event_type is not EventType.DELIVERED:
                continue
            targets = [
                channel
                for channel in [*own.get(tracker.user_id, ()), *instance_wide]
                if event_type.value in (channel.event_types or ())
            ]
            if not targets:
                continue
            notification = {
                "user_id": tracker.user_id,
                "tracker_id": tracker.id,
                "shipment_id": milestone.shipment_id,
                "event_type": event_type.value,
                "dedupe_key": milestone.dedupe_key,
                "urgent": event_type in URGENT_TYPES,
                "payload": (milestone, tracker),  # built below, once labels are read
                "created_at": now,
            }
            deliveries = [
                {
                    "channel_id": channel.id,
                    "kind": channel.kind,
                    "message_id": new_message_id(),
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": first_attempt_at(
                        kind=channel.kind,
                        event_type=event_type,
                        now=now,
                        policy=policy,
                        timezone=tracker.timezone,
                        quiet_start_minute=tracker.quiet_start_minute,
                        quiet_end_minute=tracker.quiet_end_minute,
                    ),
                    "created_at": now,
                }
                for channel in targets
            ]
            planned.append((notification, deliveries))
    if not planned:
        return enqueued
    labels: dict[int, list[str]] = defaultdict(list)
    tracker_ids = {notification["tracker_id"] for notification, _ in planned}
    for tracker_id, name in connection.execute(
        select(TrackerLabel.tracker_id, TrackerLabel.name).where(
            TrackerLabel.tracker_id.in_(tracker_ids)
        )
    ):
        labels[tracker_id].append(name)
    for notification, _ in planned:
        milestone, tracker = notification["payload"]
        notification["payload"] = _payload(
            milestone,
            tracker_id=tracker.id,
            description=tracker.description,
            labels=sorted(labels.get(tracker.id, []), key=str.casefold),
            now=now,
            policy=policy,
        )
    # Two milestones of one write can share a key only by a bug; keep the first anyway.
    unique: dict[tuple[int, str], tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    for notification, deliveries in planned:
        unique.setdefault(
            (notification["user_id"], notification["dedupe_key"]), (notification, deliveries)
        )
    inserted = insert_new(
        connection,
        _notifications,
        [notification for notification, _ in unique.values()],
        unique=["user_id", "dedupe_key"],
        returning=[_notifications.c.id, _notifications.c.user_id, _notifications.c.dedupe_key],
    )
    rows: list[dict[str, Any]] = []
    for row in inserted:
        _, deliveries = unique[(row.user_id, row.dedupe_key)]
        rows.extend(delivery | {"notification_id": row.id} for delivery in deliveries)
    if rows:
        enqueued.update(row.pop("kind") for row in rows)
        connection.execute(insert(_deliveries), rows)
    return enqueued
