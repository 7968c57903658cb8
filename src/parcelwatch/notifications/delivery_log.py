"""The delivery log a person reads (each delivery to their channels, with its attempts), and
what they can do from it: send a test to a channel, replay a delivery.

Nothing here sends anything: a test is a notification enqueued for one channel, due now, and a
replay puts a delivery back in the queue; the dispatcher delivers both as it delivers
milestones. A replay keeps the delivery's `message_id`, so receivers that saw it already can
tell it is the same message (`webhook-id`). Services only flush; the caller commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, get_args

from sqlalchemy import select
from sqlalchemy.orm import Session

from parcelwatch.domain import utcnow
from parcelwatch.errors import Conflict, InvalidInput, NotFound
from parcelwatch.models import (
    DeliveryAttempt,
    Notification,
    NotificationChannel,
    NotificationDelivery,
)
from parcelwatch.notifications.events import PAYLOAD_VERSION, EventType, iso
from parcelwatch.notifications.outbox import new_message_id
from parcelwatch.notifications.service import get_channel, list_channels

__all__ = [
    "DELIVERY_STATUSES",
    "MAX_ATTEMPTS_SHOWN",
    "DeliveryPage",
    "DeliveryStatus",
    "LoggedDelivery",
    "get_delivery",
    "list_deliveries",
    "replay",
    "send_test",
    "send_tests",
    "payload_of_test",
]

DeliveryStatus = Literal["pending", "delivered", "dead"]
DELIVERY_STATUSES: Final = get_args(DeliveryStatus)
MAX_ATTEMPTS_SHOWN: Final = 20  # the newest of a delivery's attempts in the log
TEST_MESSAGE: Final = (
    "This is a test from parcelwatch. If you can read it, this channel works: you will hear "
    "here when your parcels move."
)


@dataclass(frozen=True, slots=True)
class LoggedDelivery:
    """One line of the delivery log: the delivery, what it was about, its channel, and its
    newest attempts (newest first)."""

    delivery: NotificationDelivery
    notification: Notification
    channel: NotificationChannel
    attempts: list[DeliveryAttempt]


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    items: list[LoggedDelivery]
    next_before: int | None  # pass as `before` for the next (older) page


def payload_of_test(channel: NotificationChannel, now: datetime) -> dict[str, object]:
    """The body of a test notification (version 1): which channel, and a sentence."""
    return {
        "type": EventType.TEST.value,
        "timestamp": iso(now),
        "version": PAYLOAD_VERSION,
        "data": {
            "channel": {"id": channel.id, "name": channel.name, "kind": channel.kind},
            "message": TEST_MESSAGE,
        },
    }


def send_test(
    session: Session, *, user_id: int | None, channel_id: int, now: datetime | None = None
) -> NotificationDelivery:
    """Enqueue a test notification for one of the person's channels, due at once (urgent:
    quiet hours and grouping do not hold it); its delivery, to watch in the log."""
    channel = get_channel(session, user_id, channel_id)
    if not channel.enabled:
        raise Conflict(f"The channel {channel.name!r} is switched off: switch it on, then test it.")
    return _enqueue_test(session, channel, now or utcnow())


def send_tests(
    session: Session, *, user_id: int | None, now: datetime | None = None
) -> list[NotificationDelivery]:
    """A test to each of the person's channels that is switched on."""
    moment = now or utcnow()
    return [
        _enqueue_test(session, channel, moment)
        for channel in list_channels(session, user_id)
        if channel.enabled
    ]


def _enqueue_test(
    session: Session, channel: NotificationChannel, now: datetime
) -> NotificationDelivery:
    message_id = new_message_id()
    notification = Notification(
        user_id=channel.user_id,
        tracker_id=None,
        shipment_id=None,
        event_type=EventType.TEST.value,
        dedupe_key=f"test:{message_id}",  # every test is a new message
        urgent=True,
        payload=payload_of_test(channel, now),
        created_at=now,
    )
    session.add(notification)
    session.flush()
    delivery = NotificationDelivery(
        notification_id=notification.id,
        channel_id=channel.id,
        message_id=message_id,
        status="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(delivery)
    session.flush()
    return delivery


def _owned(session: Session, user_id: int | None, delivery_id: int) -> NotificationDelivery:
    delivery = None
    if user_id is not None:
        delivery = session.scalar(
            select(NotificationDelivery)
            .join(NotificationChannel, NotificationChannel.id == NotificationDelivery.channel_id)
            .where(NotificationDelivery.id == delivery_id, NotificationChannel.user_id == user_id)
        )
    if delivery is None:
        raise NotFound(f"Delivery {delivery_id} does not exist.")
    return delivery


def replay(
    session: Session, *, user_id: int | None, delivery_id: int, now: datetime | None = None
) -> NotificationDelivery:
    """Send a delivery again, whatever its status: pending and due now, its lease dropped, its
    `message_id` kept (a receiver that has it already can skip it), retried for a new
    NOTIFY_RETRY_FOR from now."""
    delivery = _owned(session, user_id, delivery_id)
    if not delivery.channel.enabled:
        raise Conflict(
            f"The channel {delivery.channel.name!r} is switched off: switch it on, then replay."
        )
    delivery.status = "pending"
    delivery.next_attempt_at = delivery.replayed_at = now or utcnow()
    delivery.lease_owner = None
    delivery.lease_expires_at = None
    session.flush()
    return delivery


def get_delivery(session: Session, *, user_id: int | None, delivery_id: int) -> LoggedDelivery:
    delivery = _owned(session, user_id, delivery_id)
    return _logged(session, [delivery])[0]


def list_deliveries(
    session: Session,
    *,
    user_id: int | None,
    channel_id: int | None = None,
    status: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> DeliveryPage:
    """The person's deliveries, newest first, a page at a time (`before`: the previous page's
    `next_before`); only one channel's, or one status's, when given."""
    if status is not None and status not in DELIVERY_STATUSES:
        raise InvalidInput(f"status: choose one of {', '.join(DELIVERY_STATUSES)}")
    if user_id is None:
        return DeliveryPage([], None)
    if channel_id is not None:
        get_channel(session, user_id, channel_id)  # another person's: 404, not an empty page
    query = (
        select(NotificationDelivery)
        .join(NotificationChannel, NotificationChannel.id == NotificationDelivery.channel_id)
        .where(NotificationChannel.user_id == user_id)
        .order_by(NotificationDelivery.id.desc())
        .limit(limit + 1)
    )
    if channel_id is not None:
        query = query.where(NotificationDelivery.channel_id == channel_id)
    if status is not None:
        query = query.where(NotificationDelivery.status == status)
    if before is not None:
        query = query.where(NotificationDelivery.id < before)
    rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return DeliveryPage(_logged(session, rows), rows[-1].id if more and rows else None)


def _logged(session: Session, rows: Sequence[NotificationDelivery]) -> list[LoggedDelivery]:
    """`rows` with their notifications, channels and newest attempts (three queries in all)."""
    if not rows:
        return []
    ids = [row.id for row in rows]
    notifications = {
        item.id: item
        for item in session.scalars(
            select(Notification).where(Notification.id.in_({row.notification_id for row in rows}))
        )
    }
    channels = {
        item.id: item
        for item in session.scalars(
            select(NotificationChannel).where(
                NotificationChannel.id.in_({row.channel_id for row in rows})
            )
        )
    }
    attempts: dict[int, list[DeliveryAttempt]] = {}
    for attempt in session.scalars(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.delivery_id.in_(ids))
        .order_by(DeliveryAttempt.id.desc())
    ):
        shown = attempts.setdefault(attempt.delivery_id, [])
        if len(shown) < MAX_ATTEMPTS_SHOWN:
            shown.append(attempt)
    return [
        LoggedDelivery(
            delivery=row,
            notification=notifications[row.notification_id],
            channel=channels[row.channel_id],
            attempts=attempts.get(row.id, []),
        )
        for row in rows
    ]
