"""A channel's failures in a row: counted as sends finish, reset by a success; at
NOTIFY_DISABLE_AFTER the channel is switched off, what it still had to send is dead-lettered,
and its owner gets a `channel.disabled` notification on their other channels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from parcelwatch.models import Notification, NotificationChannel, NotificationDelivery
from parcelwatch.notifications.events import PAYLOAD_VERSION, EventType, iso
from parcelwatch.notifications.outbox import new_message_id

__all__ = ["ChannelResult", "Recorded", "count_failures"]

D = NotificationDelivery
C = NotificationChannel
N = Notification
PENDING = "pending"
DEAD = "dead"


@dataclass(frozen=True, slots=True)
class ChannelResult:
    """One send's verdict on its channel: success resets the count, a counted failure adds."""

    channel_id: int
    delivered: bool
    counts: bool
    error: str | None


@dataclass(slots=True)
class Recorded:
    """What `record` did beyond the outcomes: channels switched off, deliveries dead-lettered
    with them (by kind), and the notices queued to tell their owners (by kind)."""

    disabled_channels: list[int] = field(default_factory=list)
    dead_lettered: dict[str, int] = field(default_factory=dict)
    notices_enqueued: dict[str, int] = field(default_factory=dict)


def count_failures(
    connection: Connection,
    results: Sequence[ChannelResult],
    disable_after: int,
    now: datetime,
    recorded: Recorded,
) -> None:
    """Apply the sends' verdicts in the order they finished: per channel, failures counted
    after its last success in this batch (added to the stored count if it had none)."""
    reset: set[int] = set()
    added: dict[int, int] = {}
    last_error: dict[int, str | None] = {}
    for result in results:
        if result.delivered:
            reset.add(result.channel_id)
            added[result.channel_id] = 0
        elif result.counts:
            added[result.channel_id] = added.get(result.channel_id, 0) + 1
            last_error[result.channel_id] = result.error
    for channel_id in sorted(reset | set(added)):
        count = added.get(channel_id, 0)
        stored = C.consecutive_failures if channel_id not in reset else 0
        if channel_id in reset and count == 0:
            connection.execute(
                update(C)
                .where(C.id == channel_id, C.consecutive_failures != 0)
                .values(consecutive_failures=0)
            )
            continue
        connection.execute(
            update(C).where(C.id == channel_id).values(consecutive_failures=stored + count)
        )
        channel = connection.execute(
            select(C.consecutive_failures, C.disabled_at, C.user_id, C.name, C.kind).where(
                C.id == channel_id
            )
        ).one_or_none()
        if channel is None or channel.disabled_at is not None:
            continue
        if channel.consecutive_failures >= disable_after:
            _disable(connection, channel_id, channel, last_error.get(channel_id), now, recorded)


def _disable(
    connection: Connection,
    channel_id: int,
    channel: Any,
    error: str | None,
    now: datetime,
    recorded: Recorded,
) -> None:
    """Switch the channel off, dead-letter what it still had to send, and queue a
    `channel.disabled` notice to its owner's other channels."""
    failures = channel.consecutive_failures
    reason = f"{failures} deliveries in a row failed" + (f"; the last: {error}" if error else "")
    connection.execute(
        update(C)
        .where(C.id == channel_id)
        .values(enabled=False, disabled_at=now, disabled_reason=reason[:500], updated_at=now)
    )
    # Deliveries in flight are left to their dispatcher: one that arrives is recorded as
    # delivered, one that fails is dead-lettered as its failure is recorded (outbox.record).
    not_in_flight = D.lease_owner.is_(None) | (D.lease_expires_at <= now)
    dead = connection.execute(
        update(D)
        .where(D.channel_id == channel_id, D.status == PENDING, not_in_flight)
        .values(
            status=DEAD,
            lease_owner=None,
            lease_expires_at=None,
            next_attempt_at=None,
            last_error=f"the channel was switched off after {failures} failures in a row",
        )
        .execution_options(synchronize_session=False)
    )
    recorded.disabled_channels.append(channel_id)
    if dead.rowcount:
        recorded.dead_lettered[channel.kind] = (
            recorded.dead_lettered.get(channel.kind, 0) + dead.rowcount
        )
    others = connection.execute(
        select(C.id, C.kind).where(
            C.user_id == channel.user_id,
            C.id != channel_id,
            C.enabled.is_(True),
            C.disabled_at.is_(None),
        )
    ).all()
    if not others:
        return
    message = (
        f'Your {channel.kind} channel "{channel.name}" was switched off: {reason}. '
        "Check its address and switch it back on in parcelwatch."
    )
    payload = {
        "type": EventType.CHANNEL_DISABLED.value,
        "timestamp": iso(now),
        "version": PAYLOAD_VERSION,
        "data": {
            "channel": {"id": channel_id, "name": channel.name, "kind": channel.kind},
            "message": message,
        },
    }
    notification_id = connection.execute(
        insert(N)
        .values(
            user_id=channel.user_id,
            tracker_id=None,
            shipment_id=None,
            event_type=EventType.CHANNEL_DISABLED.value,
            dedupe_key=f"channel.disabled:{channel_id}:{now.isoformat()}",
            urgent=True,
            payload=payload,
            created_at=now,
        )
        .returning(N.id)
    ).scalar_one()
    connection.execute(
        insert(D),
        [
            {
                "notification_id": notification_id,
                "channel_id": other.id,
                "message_id": new_message_id(),
                "status": PENDING,
                "attempts": 0,
                "next_attempt_at": now,  # urgent: no group window, no quiet hours
                "created_at": now,
            }
            for other in others
        ],
    )
    for other in others:
        recorded.notices_enqueued[other.kind] = recorded.notices_enqueued.get(other.kind, 0) + 1
