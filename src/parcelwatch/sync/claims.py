"""Leases: a shipment is claimed before its carrier is called, so two engines never poll
the same number at once.

PostgreSQL claims with `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)`; SQLite
claims inside a `BEGIN IMMEDIATE` transaction (one writer at a time). A lease names its
owner and expires, so a crashed engine's shipments come back after `lease_expires_at`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Engine, select, update

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
)


def claim(
    engine: Engine,
    *,
    owner: str,
    where: ColumnElement[bool],
    limit: int,
    lease: timedelta,
    now: datetime,
    by_id: bool = False,
    after_id: int = 0,
) -> list[ClaimedShipment]:
    """Lease up to `limit` shipments matching `where` to `owner` and return them, oldest
    due first (or by id after `after_id` when `by_id`)."""
    candidates = select(Shipment.id).where(where)
    if by_id:
        candidates = candidates.where(Shipment.id > after_id).order_by(Shipment.id)
    else:
        candidates = candidates.order_by(Shipment.next_check_at, Shipment.id)
    candidates = candidates.limit(limit).with_for_update(skip_locked=True)
    statement = (
        update(Shipment)
        .where(Shipment.id.in_(candidates.scalar_subquery()))
        .values(lease_owner=owner, lease_expires_at=now + lease)
        .returning(*SNAPSHOT_COLUMNS)
        .execution_options(synchronize_session=False)
    )
    with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as connection:
        with connection.begin():
            rows = connection.execute(statement).all()
    claimed = [ClaimedShipment(*row) for row in rows]
    if by_id:
        claimed.sort(key=lambda item: item.id)
    else:
        claimed.sort(key=lambda item: (item.next_check_at or now, item.id))
    return claimed


def release(engine: Engine, *, owner: str, shipment_ids: Sequence[int]) -> None:
    """Give back leases without writing anything (an abandoned batch)."""
    if not shipment_ids:
        return
    statement = (
        update(Shipment)
        .where(Shipment.id.in_(list(shipment_ids)), Shipment.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as connection:
        with connection.begin():
            connection.execute(statement)
