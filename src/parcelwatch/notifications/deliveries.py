"""The dispatcher's reads and writes of the outbox: claiming due deliveries with a lease,
recording what each attempt did (retry, delivered, dead-lettered) in batches; a channel's
failures in a row are counted by `failures`.

A claim selects due deliveries (`FOR UPDATE SKIP LOCKED` on PostgreSQL; inside a
`BEGIN IMMEDIATE` transaction, one writer at a time, on SQLite) and leases them in the same
transaction, as `sync.claims` does with shipments. A leased delivery's `next_attempt_at`
moves to the lease's expiry (a queue's visibility timeout): in-flight deliveries leave the due
range of `ix_deliveries_due`, and a crashed dispatcher's come due again exactly when its lease
runs out; they are sent again with the same `message_id` (delivery is at least once).

Email and Apprise deliveries of one channel due together go out as one message: a claim that
takes one of them also takes that channel's deliveries coming due within
NOTIFY_GROUP_WINDOW.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, insert, select, update

from parcelwatch.db import reading
from parcelwatch.models import (
    DeliveryAttempt,
    Notification,
    NotificationChannel,
    NotificationDelivery,
    User,
)
from parcelwatch.notifications.failures import (
    ChannelResult,
    Recorded,
    count_failures,
)
from parcelwatch.notifications.senders import ChannelTarget, Outgoing

__all__ = [
    "GROUPED_KINDS",
    "ChannelResult",
    "Claimed",
    "Outcome",
    "Recorded",
    "backoff_delay",
    "claim",
    "next_due_at",
    "record",
]

GROUPED_KINDS = ("email", "apprise")
MAX_GROUP = 50  # notifications in one grouped message at most
PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"

D = NotificationDelivery
C = NotificationChannel
N = Notification


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: int
    message_id: str
    attempts: int
    retry_from: datetime  # NOTIFY_RETRY_FOR counts from here: made, or last replayed
    notification_created_at: datetime
    notification_user_id: int
    payload: dict[str, Any]

    @property
    def outgoing(self) -> Outgoing:
        return Outgoing(message_id=self.message_id, payload=self.payload)


@dataclass(frozen=True, slots=True)
class Claimed:
    """One send: a webhook delivery, or an email/Apprise channel's deliveries as one message.
    `refusal` is set when it must not be sent at all (the channel is off, or a notification
    is not its owner's); it is dead-lettered with that reason."""

    channel: ChannelTarget
    instance_wide: bool
    deliveries: tuple[ClaimedDelivery, ...]
    refusal: str | None = None


def _due(now: datetime) -> Any:
    return (D.status == PENDING) & (D.next_attempt_at <= now)


def next_due_at(db: Engine) -> datetime | None:
    """When the earliest pending delivery is due (one read of `ix_deliveries_due`)."""
    with reading(db) as connection:
        return connection.scalar(select(func.min(D.next_attempt_at)).where(D.status == PENDING))


_DETAILS = (
    D.id,
    D.message_id,
    D.attempts,
    func.coalesce(D.replayed_at, D.created_at),
    N.created_at,
    N.user_id,
    N.payload,
    C.id,
    C.user_id,
    C.kind,
    C.name,
    C.target,
    C.secret,
    C.previous_secret,
    C.previous_secret_expires_at,
    C.instance_wide,
    C.enabled,
    C.disabled_at,
    User.timezone,
)


def claim(
    db: Engine,
    *,
    owner: str,
    limit: int,
    lease: timedelta,
    now: datetime,
    group_window: timedelta,
) -> list[Claimed]:
    """Lease up to `limit` due deliveries (plus the deliveries they group with) to `owner`."""
    due = (
        select(D.id, D.channel_id, C.kind)
        .join(C, C.id == D.channel_id)
        .where(_due(now))
        .order_by(D.next_attempt_at, D.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=D)
    )
    with db.connect().execution_options(sqlite_begin="IMMEDIATE") as connection:
        with connection.begin():
            rows = connection.execute(due).all()
            if not rows:
                return []
            ids = [row.id for row in rows]
            grouped = sorted({row.channel_id for row in rows if row.kind in GROUPED_KINDS})
            if grouped and group_window > timedelta(0):
                ids += _group_mates(connection, grouped, ids, now + group_window)
            expires = now + lease
            connection.execute(_LEASE, {"ids": ids, "owner": owner, "expires": expires})
            details = connection.execute(
                select(*_DETAILS)
                .join(N, N.id == D.notification_id)
                .join(C, C.id == D.channel_id)
                .join(User, User.id == C.user_id)
                .where(D.id.in_(ids))
                .order_by(N.created_at, D.id)
            ).all()
    return _units(details)


def _group_mates(
    connection: Connection, channel_ids: list[int], taken: list[int], until: datetime
) -> list[int]:
    """Pending deliveries of these channels coming due within the group window."""
    rows = connection.execute(
        select(D.id, D.channel_id)
        .where(
            D.channel_id.in_(channel_ids),
            D.status == PENDING,
            D.next_attempt_at <= until,
            D.id.not_in(taken),
        )
        .order_by(D.next_attempt_at, D.id)
        .limit(MAX_GROUP * len(channel_ids))
        .with_for_update(skip_locked=True, of=D)
    ).all()
    return [row.id for row in rows]


_LEASE = (
    update(D)
    .where(D.id.in_(bindparam("ids", expanding=True)))
    .values(
        lease_owner=bindparam("owner"),
        lease_expires_at=bindparam("expires"),
        next_attempt_at=bindparam("expires"),
    )
    .execution_options(synchronize_session=False)
)


def _units(rows: Sequence[Any]) -> list[Claimed]:
    by_channel: dict[int, list[Any]] = {}
    units: list[Claimed] = []
    for row in rows:
        if row.kind in GROUPED_KINDS:
            by_channel.setdefault(row[7], []).append(row)
        else:
            units.append(_unit([row]))
    for group in by_channel.values():
        # A notification of someone else (no enqueue writes one) never joins the group.
        strays = [row for row in group if row[5] != row[8] and not row.instance_wide]
        group = [row for row in group if row not in strays]
        units += [_unit([row]) for row in strays]
        for start in range(0, len(group), MAX_GROUP):
            units.append(_unit(group[start : start + MAX_GROUP]))
    return units


def _unit(rows: list[Any]) -> Claimed:
    first = rows[0]
    channel = ChannelTarget(
        id=first[7],
        user_id=first[8],
        kind=first.kind,
        name=first.name,
        target=first.target,
        secret=first.secret,
        previous_secret=first.previous_secret,
        previous_secret_expires_at=first.previous_secret_expires_at,
        timezone=first.timezone or "UTC",
    )
    deliveries = tuple(
        ClaimedDelivery(
            id=row[0],
            message_id=row.message_id,
            attempts=row.attempts,
            retry_from=row[3],
            notification_created_at=row[4],
            notification_user_id=row[5],
            payload=row.payload,
        )
        for row in rows
    )
    refusal = None
    if not first.enabled or first.disabled_at is not None:
        refusal = "the channel is switched off"
    elif not first.instance_wide and any(
        d.notification_user_id != channel.user_id for d in deliveries
    ):
        refusal = "the notification is not the channel owner's"
    return Claimed(
        channel=channel, instance_wide=first.instance_wide, deliveries=deliveries, refusal=refusal
    )


def backoff_delay(attempts: int, *, base: float, cap: float, random: Callable[[], float]) -> float:
    """Seconds before try `attempts + 1`: exponential from `base`, capped, with jitter (half to
    all of it) so that a receiver coming back is not hit by every retry at once."""
    delay: float = min(cap, base * 2.0 ** max(0, attempts - 1))
    return delay * (0.5 + random() / 2)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one try of one delivery did, and what happens next."""

    delivery_id: int
    channel_id: int
    kind: str
    status: str  # pending (retry at next_attempt_at) | delivered | dead
    attempted_at: datetime
    next_attempt_at: datetime | None
    status_code: int | None
    latency_ms: float | None
    error: str | None
    notification_created_at: datetime
    attempt_logged: bool = True  # False: dead-lettered without a try (the channel is off)


_RESULT = (
    update(D)
    .where(D.id == bindparam("r_id"), D.lease_owner == bindparam("r_owner"))
    .values(
        status=bindparam("r_status"),
        attempts=D.attempts + bindparam("r_tried"),
        next_attempt_at=bindparam("r_next"),
        lease_owner=None,
        lease_expires_at=None,
        last_error=bindparam("r_error"),
        last_status_code=bindparam("r_code"),
        delivered_at=bindparam("r_delivered_at"),
    )
    .execution_options(synchronize_session=False)
)


def record(
    db: Engine,
    *,
    owner: str,
    outcomes: Sequence[Outcome],
    channel_results: Sequence[ChannelResult],
    disable_after: int,
    now: datetime,
) -> Recorded:
    """Write a batch of outcomes in one transaction. A delivery whose lease another dispatcher
    holds now (ours ran out) is left to it; its attempt is logged all the same."""
    recorded = Recorded()
    if not outcomes:
        return recorded
    rows = [
        {
            "r_id": o.delivery_id,
            "r_owner": owner,
            "r_status": o.status,
            "r_tried": 1 if o.attempt_logged else 0,
            "r_next": o.next_attempt_at if o.status == PENDING else None,
            "r_error": o.error,
            "r_code": o.status_code,
            "r_delivered_at": o.attempted_at if o.status == DELIVERED else None,
        }
        for o in outcomes
    ]
    attempts = [
        {
            "delivery_id": o.delivery_id,
            "attempted_at": o.attempted_at,
            "outcome": o.status if o.status != PENDING else "failed",
            "status_code": o.status_code,
            "latency_ms": o.latency_ms,
            "error": o.error,
        }
        for o in outcomes
        if o.attempt_logged
    ]
    with db.connect().execution_options(sqlite_begin="IMMEDIATE") as connection:
        with connection.begin():
            connection.execute(_RESULT, rows)
            if attempts:
                connection.execute(insert(DeliveryAttempt), attempts)
            count_failures(connection, channel_results, disable_after, now, recorded)
            retrying = [o.delivery_id for o in outcomes if o.status == PENDING]
            if retrying:
                _dead_letter_if_switched_off(connection, retrying, recorded)
    return recorded


def _dead_letter_if_switched_off(
    connection: Connection, delivery_ids: list[int], recorded: Recorded
) -> None:
    """A failed try of a channel switched off meanwhile (by this batch, or while the try was
    in flight) is not retried: it is dead-lettered now."""
    stopped = connection.execute(
        select(D.id, C.kind)
        .join(C, C.id == D.channel_id)
        .where(
            D.id.in_(delivery_ids),
            D.status == PENDING,
            C.disabled_at.is_not(None) | C.enabled.is_(False),
        )
    ).all()
    if not stopped:
        return
    connection.execute(
        update(D)
        .where(D.id.in_([row.id for row in stopped]), D.status == PENDING)
        .values(status=DEAD, next_attempt_at=None, lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    for row in stopped:
        recorded.dead_lettered[row.kind] = recorded.dead_lettered.get(row.kind, 0) + 1
