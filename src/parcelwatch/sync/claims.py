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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, bindparam, select, update

from parcelwatch.domain import ShipmentStatus
from parcelwatch.models import Shipment

__all__ = ["SNAPSHOT_COLUMNS", "ClaimedShipment", "claim", "release"]


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
) -> list[ClaimedShipment]:
    """Lease up to `limit` shipments matching `where` to `owner` and return them as they
    were before the claim, oldest due first (or by id after `after_id` when `by_id`)."""
    candidates = select(*SNAPSHOT_COLUMNS).where(where)
    if by_id:
        candidates = candidates.where(Shipment.id > after_id).order_by(Shipment.id)
    else:
        candidates = candidates.order_by(Shipment.next_check_at, Shipment.id)
    candidates = candidates.limit(limit).with_for_update(skip_locked=True)
    expires = now + lease
    with db.connect().execution_options(sqlite_begin="IMMEDIATE") as connection:
        with connection.begin():
            claimed = [ClaimedShipment.from_row(row) for row in connection.execute(candidates)]
            if claimed:
                connection.execute(
                    _LEASE, {"ids": [s.id for s in claimed], "owner": owner, "expires": expires}
                )
    return claimed


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
