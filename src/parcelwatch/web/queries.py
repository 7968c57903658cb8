"""Read-only queries behind the dashboard pages: status counts, the sortable list, sync runs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

from sqlalchemy import Select, and_, case, func, or_, select
from sqlalchemy.orm import Session

from parcelwatch.domain import ShipmentStatus
from parcelwatch.lifecycle import open_filter, sync_failing_filter
from parcelwatch.models import Shipment, SyncRun
from parcelwatch.shipments.service import carrier_filter, search_filter
from parcelwatch.shipments.trackers import (
    EVERYONE,
    Tracked,
    Viewer,
    archived_by,
    as_seen_by,
    visible_to,
)

__all__ = [
    "ATTENTION_STATUSES",
    "SORTS",
    "Listing",
    "ListQuery",
    "Overview",
    "list_page",
    "overview",
    "recent_activity",
    "recent_runs",
]

ATTENTION_STATUSES: Final = (
    ShipmentStatus.EXCEPTION,
    ShipmentStatus.DELIVERY_ATTEMPTED,
    ShipmentStatus.RETURNING_TO_SENDER,
    ShipmentStatus.UNKNOWN,
)
WAITING_STATUSES: Final = (ShipmentStatus.PENDING, ShipmentStatus.INFO_RECEIVED)

# Sort key -> (label, ordering). NULL ETAs sort last; the id breaks ties for stable pages.
SORTS: Final[dict[str, str]] = {
    "updated": "Latest activity",
    "created": "Recently added",
    "eta": "Expected delivery",
    "status": "Status",
    "carrier": "Carrier",
}
# Quick filters on the list page: key -> label.
VIEWS: Final[dict[str, str]] = {
    "active": "Active",
    "attention": "Needs attention",
    "failing": "Sync failing",
    "delivered": "Delivered",
    "all": "All",
    "archived": "Archived",
}
PAGE_SIZE: Final = 25


@dataclass(frozen=True, slots=True)
class Overview:
    out_for_delivery: int
    in_transit: int
    waiting: int
    pickup: int
    attention: int
    delivered_this_week: int
    sync_failing: int
    active: int
    total: int


_Query = TypeVar("_Query", bound="Select[*tuple[Any, ...]]")


def _scoped(query: _Query, viewer: Viewer) -> _Query:
    """Only the viewer's shipments (members), without the ones they archived."""
    if (scope := visible_to(viewer)) is not None:
        query = query.where(scope)
    if viewer.user_id is not None:
        query = query.where(~archived_by(viewer.user_id))
    return query


def overview(session: Session, *, now: datetime, viewer: Viewer = EVERYONE) -> Overview:
    by_status: dict[ShipmentStatus, int] = {
        ShipmentStatus(status): count
        for status, count in session.execute(
            _scoped(select(Shipment.status, func.count()), viewer).group_by(Shipment.status)
        )
    }
    week_ago = now - timedelta(days=7)
    delivered_week = session.scalar(
        _scoped(select(func.count()).select_from(Shipment), viewer).where(
            Shipment.status == ShipmentStatus.DELIVERED,
            or_(
                Shipment.delivered_at >= week_ago,
                and_(Shipment.delivered_at.is_(None), Shipment.updated_at >= week_ago),
            ),
        )
    )
    failing = session.scalar(
        _scoped(select(func.count()).select_from(Shipment), viewer).where(sync_failing_filter())
    )
    return Overview(
        out_for_delivery=by_status.get(ShipmentStatus.OUT_FOR_DELIVERY, 0),
        in_transit=by_status.get(ShipmentStatus.IN_TRANSIT, 0),
        waiting=sum(by_status.get(status, 0) for status in WAITING_STATUSES),
        pickup=by_status.get(ShipmentStatus.AVAILABLE_FOR_PICKUP, 0),
        attention=sum(by_status.get(status, 0) for status in ATTENTION_STATUSES),
        delivered_this_week=delivered_week or 0,
        sync_failing=failing or 0,
        active=sum(n for status, n in by_status.items() if not status.is_final),
        total=sum(by_status.values()),
    )


def recent_activity(
    session: Session, *, limit: int = 8, viewer: Viewer = EVERYONE
) -> list[Tracked]:
    """Active shipments, those on the move today first, then by latest carrier event."""
    urgency = case((Shipment.status == ShipmentStatus.OUT_FOR_DELIVERY, 0), else_=1)
    query = (
        _scoped(select(Shipment), viewer)
        .where(open_filter())
        .order_by(
            urgency.asc(),
            Shipment.last_event_at.desc().nulls_last(),
            Shipment.id.desc(),
        )
        .limit(limit)
    )
    return as_seen_by(session, viewer, list(session.scalars(query)))


@dataclass(frozen=True, slots=True)
class ListQuery:
    view: str = "active"
    status: ShipmentStatus | None = None
    carrier: str | None = None
    search: str | None = None
    sort: str = "updated"
    page: int = 1

    def params(self, **changes: Any) -> dict[str, str]:
        """The query string of this listing with `changes`, leaving defaults out."""
        values: dict[str, Any] = {
            "view": self.view,
            "status": self.status.value if self.status else None,
            "carrier": self.carrier,
            "q": self.search,
            "sort": self.sort,
            "page": self.page,
            **changes,
        }
        defaults = {"view": "active", "sort": "updated", "page": 1}
        return {
            key: str(value)
            for key, value in values.items()
            if value not in (None, "") and defaults.get(key) != value
        }


@dataclass(frozen=True, slots=True)
class Listing:
    items: Sequence[Tracked]
    total: int
    page: int
    pages: int


def _filtered(query: Select[Any], spec: ListQuery, viewer: Viewer) -> Select[Any]:
    if (scope := visible_to(viewer)) is not None:
        query = query.where(scope)
    if viewer.user_id is not None:
        archived = archived_by(viewer.user_id)
        query = query.where(archived if spec.view == "archived" else ~archived)
    if spec.view == "active":
        query = query.where(open_filter())
    elif spec.view == "attention":
        query = query.where(Shipment.status.in_(ATTENTION_STATUSES))
    elif spec.view == "failing":
        query = query.where(sync_failing_filter())
    elif spec.view == "delivered":
        query = query.where(Shipment.status == ShipmentStatus.DELIVERED)
    if spec.status is not None:
        query = query.where(Shipment.status == spec.status)
    if (by_carrier := carrier_filter(spec.carrier)) is not None:
        query = query.where(by_carrier)
    if (matching := search_filter(spec.search, viewer)) is not None:
        query = query.where(matching)
    return query


def _ordered(query: Select[Any], sort: str) -> Select[Any]:
    if sort == "created":
        return query.order_by(Shipment.created_at.desc(), Shipment.id.desc())
    if sort == "eta":
        return query.order_by(Shipment.estimated_delivery.asc().nulls_last(), Shipment.id.desc())
    if sort == "status":
        return query.order_by(Shipment.status.asc(), Shipment.id.desc())
    if sort == "carrier":
        return query.order_by(Shipment.carrier.asc(), Shipment.id.desc())
    return query.order_by(
        Shipment.last_event_at.desc().nulls_last(), Shipment.updated_at.desc(), Shipment.id.desc()
    )


def list_page(
    session: Session, spec: ListQuery, *, page_size: int = PAGE_SIZE, viewer: Viewer = EVERYONE
) -> Listing:
    """One page of the filtered, searched and sorted list (offset pages: people jump)."""
    counted = _filtered(select(func.count()).select_from(Shipment), spec, viewer)
    total = session.scalar(counted) or 0
    pages = max(1, math.ceil(total / page_size))
    page = min(max(1, spec.page), pages)
    query = _ordered(_filtered(select(Shipment), spec, viewer), spec.sort)
    rows = list(session.scalars(query.offset((page - 1) * page_size).limit(page_size)))
    return Listing(items=as_seen_by(session, viewer, rows), total=total, page=page, pages=pages)


def recent_runs(session: Session, *, limit: int = 15, finished: bool = False) -> list[SyncRun]:
    """The latest sync runs, leaving out idle passes (nothing was due, nothing went wrong)
    which the updater makes every few seconds and would hide the runs that did something."""
    busy = or_(SyncRun.checked > 0, SyncRun.failed > 0, SyncRun.outcome != "ok")
    query = (
        select(SyncRun)
        .where(busy)
        .order_by(SyncRun.started_at.desc(), SyncRun.id.desc())
        .limit(limit)
    )
    if finished:
        query = query.where(SyncRun.finished_at.is_not(None))
    return list(session.scalars(query))


def carriers_in_use(session: Session) -> list[str]:
    return list(session.scalars(select(Shipment.carrier).distinct().order_by(Shipment.carrier)))
