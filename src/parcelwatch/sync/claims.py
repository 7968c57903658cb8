"""Leases: a shipment is claimed before its carrier is called, so two engines never poll
the same number at once.

A claim selects the shipments (`FOR UPDATE SKIP LOCKED` on PostgreSQL; inside a
`BEGIN IMMEDIATE` transaction, one writer at a time, on SQLite) and leases them in the same
transaction. A lease names its owner and expires, so a crashed engine's shipments come back
after `lease_expires_at`. A leased shipment's `next_check_at` moves to the lease's expiry
(like a queue's visibility timeout): shipments in flight leave the due range of the
`ix_shipments_due` indexes, so the next claim does not scan past them, and a crashed
engine's shipments come due exactly when its lease runs out. Writing a result sets
`next_check_at` anew; `release` puts back the one the claim read.

Due shipments are claimed by priority (`sync.priority`): class by class, and within a class
in turns across people: each person with due shipments of that class (by `check_owner`;
untracked ones count as one more) gets an equal share of what is left, oldest due first,
then those with more take the rest. Every step is one range of `ix_shipments_priority_due`
(carrier, class, person, `next_check_at`), so a claim reads as many index entries as it
takes, whatever the backlog; 1,000 due shipments of one person never hold up another's 3.
When everything due fits in the claim (a count that stops one past it), it is taken in one
read: the budget is not short, and there is nothing to choose.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    bindparam,
    func,
    or_,
    select,
    update,
)

from parcelwatch.domain import ShipmentStatus
from parcelwatch.models import Shipment, User
from parcelwatch.sync.priority import CheckPriority

__all__ = ["SNAPSHOT_COLUMNS", "ClaimedShipment", "claim", "claim_ahead", "release"]


@dataclass(frozen=True, slots=True)
class ClaimedShipment:
    """What the engine needs of a claimed shipment to call its carrier and plan the write."""

    id: int
    carrier: str
    tracking_number: str
    status: ShipmentStatus
    status_detail: str | None
    last_event_at: datetime | None
    created_at: datetime
    auto_refresh_fail_count: int
    next_check_at: datetime | None
    events_digest: str | None
    estimated_delivery: datetime | None
    check_priority: int = CheckPriority.MOVING

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> ClaimedShipment:
        """From a row of `SNAPSHOT_COLUMNS`."""
        return cls(*row)

    @property
    def last_movement(self) -> datetime:
        return self.last_event_at or self.created_at


# The columns a ClaimedShipment is built from, in its field order (also read by the writer).
SNAPSHOT_COLUMNS = (
    Shipment.id,
    Shipment.carrier,
    Shipment.tracking_number,
    Shipment.status,
    Shipment.status_detail,
    Shipment.last_event_at,
    Shipment.created_at,
    Shipment.auto_refresh_fail_count,
    Shipment.next_check_at,
    Shipment.events_digest,
    Shipment.estimated_delivery,
    Shipment.check_priority,
)


def claim(
    db: Engine,
    *,
    owner: str,
    where: ColumnElement[bool],
    limit: int,
    lease: timedelta,
    now: datetime,
    by_id: bool = False,
    after_id: int = 0,
    order: Sequence[CheckPriority] = tuple(CheckPriority),
) -> list[ClaimedShipment]:
    """Lease up to `limit` shipments matching `where` to `owner` and return them as they
    were before the claim, oldest due first (or by id after `after_id` when `by_id`)."""
    expires = now + lease
    with db.connect().execution_options(sqlite_begin="IMMEDIATE") as connection:
        with connection.begin():
            if by_id:
                candidates = (
                    select(*SNAPSHOT_COLUMNS)
                    .where(where, Shipment.id > after_id)
                    .order_by(Shipment.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
                claimed = [ClaimedShipment.from_row(row) for row in connection.execute(candidates)]
            else:
                claimed = _by_priority(connection, where, limit, order)
            if claimed:
                connection.execute(
                    _LEASE, {"ids": [s.id for s in claimed], "owner": owner, "expires": expires}
                )
    return claimed


AHEAD = timedelta(hours=1)  # how far ahead the spare room of a request looks


def claim_ahead(
    db: Engine,
    *,
    owner: str,
    where: ColumnElement[bool],
    limit: int,
    lease: timedelta,
    now: datetime,
) -> list[ClaimedShipment]:
    """Lease up to `limit` shipments of `where` that are not due yet but will be within
    `AHEAD`, the soonest due first: the room left in a request that carries several numbers
    (USPS v3r2, FedEx) costs no call, so it takes the shipments the plan checks next."""
    with db.connect().execution_options(sqlite_begin="IMMEDIATE") as connection:
        with connection.begin():
            query = (
                select(*SNAPSHOT_COLUMNS)
                .where(
                    where,
                    Shipment.next_check_at > now,
                    Shipment.next_check_at <= now + AHEAD,
                )
                .order_by(Shipment.next_check_at, Shipment.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            claimed = [ClaimedShipment.from_row(row) for row in connection.execute(query)]
            if claimed:
                connection.execute(
                    _LEASE,
                    {"ids": [s.id for s in claimed], "owner": owner, "expires": now + lease},
                )
    return claimed


def _by_priority(
    connection: Connection,
    where: ColumnElement[bool],
    limit: int,
    order: Sequence[CheckPriority],
) -> list[ClaimedShipment]:
    """Up to `limit` of `where`, class by class, each class in turns across people. When all
    that is due fits (the budget is not short), there is nothing to choose: one read."""
    due = select(Shipment.id).where(where).limit(limit + 1).subquery()
    count = connection.scalar(select(func.count()).select_from(due)) or 0
    if count <= limit:
        every = (
            select(*SNAPSHOT_COLUMNS)
            .where(where)
            .order_by(Shipment.check_priority, Shipment.next_check_at, Shipment.id)
            .with_for_update(skip_locked=True)
        )
        return [ClaimedShipment.from_row(row) for row in connection.execute(every)] if count else []
    people: list[int | None] = [None, *connection.scalars(select(User.id).order_by(User.id))]
    claimed: list[ClaimedShipment] = []
    for priority in order:
        if len(claimed) >= limit:
            break
        of_class = and_(where, Shipment.check_priority == int(priority))
        claimed += _in_turns(connection, of_class, people, limit - len(claimed))
    return claimed


def _in_turns(
    connection: Connection,
    where: ColumnElement[bool],
    people: list[int | None],
    wanted: int,
) -> list[ClaimedShipment]:
    """Round after round, each person still holding due shipments gets an equal share of
    what is left (oldest due first); the rows of a round go out in turns, first of each
    person, then second, ... A person who had fewer than their share drops out."""
    taken: list[ClaimedShipment] = []
    after: dict[int | None, tuple[Any, int]] = {}
    active = list(people)
    while active and len(taken) < wanted:
        share = math.ceil((wanted - len(taken)) / len(active))
        turns: list[tuple[int, Any, int, ClaimedShipment]] = []
        still: list[int | None] = []
        for person in active:
            rows = [
                ClaimedShipment.from_row(row)
                for row in connection.execute(_of_person(where, person, after.get(person), share))
            ]
            turns += [(turn, s.next_check_at, s.id, s) for turn, s in enumerate(rows)]
            if len(rows) == share:
                still.append(person)
                after[person] = (rows[-1].next_check_at, rows[-1].id)
        turns.sort(key=lambda item: item[:3])
        taken += [item[3] for item in turns[: wanted - len(taken)]]
        active = still
    return taken


def _of_person(
    where: ColumnElement[bool],
    person: int | None,
    after: tuple[Any, int] | None,
    limit: int,
) -> Any:
    mine = Shipment.check_owner.is_(None) if person is None else Shipment.check_owner == person
    query = select(*SNAPSHOT_COLUMNS).where(where, mine)
    if after is not None:
        due, last_id = after
        query = query.where(
            or_(
                Shipment.next_check_at > due,
                and_(Shipment.next_check_at == due, Shipment.id > last_id),
            )
        )
    return (
        query.order_by(Shipment.next_check_at, Shipment.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


_LEASE = (
    update(Shipment)
    .where(Shipment.id.in_(bindparam("ids", expanding=True)))
    .values(
        lease_owner=bindparam("owner"),
        lease_expires_at=bindparam("expires"),
        next_check_at=bindparam("expires"),
    )
    .execution_options(synchronize_session=False)
)

_RELEASE = (
    update(Shipment)
    .where(Shipment.id == bindparam("b_id"), Shipment.lease_owner == bindparam("b_owner"))
    .values(lease_owner=None, lease_expires_at=None, next_check_at=bindparam("b_next"))
    .execution_options(synchronize_session=False)
)


def release(db: Engine, *, owner: str, shipments: Sequence[ClaimedShipment]) -> None:
    """Give back leases without writing anything (an abandoned batch): each shipment gets
    back the `next_check_at` it had when it was claimed."""
    if not shipments:
        return
    rows = [{"b_id": s.id, "b_owner": owner, "b_next": s.next_check_at} for s in shipments]
    with db.connect().execution_options(sqlite_begin="IMMEDIATE") as connection:
        with connection.begin():
            connection.execute(_RELEASE, rows)
