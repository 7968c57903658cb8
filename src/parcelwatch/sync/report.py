"""Read-only views of the sync state: due counts, the next due time, a dry run's plan and
`sync --stats` (counts by status and carrier, failing, disabled, recent runs)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from parcelwatch.config import Settings
from parcelwatch.domain import utcnow
from parcelwatch.lifecycle import MANUAL_COOLDOWN, Lifecycle, open_filter, sync_failing_filter
from parcelwatch.models import Shipment, SyncRun
from parcelwatch.sync.control import paused_in
from parcelwatch.sync.engine import ProviderLookup
from parcelwatch.sync.recovery import gone_engine_ids, live_engines
from parcelwatch.sync.runs import run_as_dict
from parcelwatch.sync.selection import Selection, claimable_filter

__all__ = [
    "LiveEngine",
    "PlannedShipment",
    "backlog",
    "count_due",
    "live",
    "next_due_at",
    "plan",
    "stats",
]

PAGE = 500


def count_due(
    session: Session, settings: Settings, carriers: Sequence[str], *, now: datetime | None = None
) -> int:
    """Shipments a plain pass would claim right now."""
    now = now or utcnow()
    lifecycle = Lifecycle.from_settings(settings, tracked=carriers)
    where = claimable_filter(Selection(), now=now, lifecycle=lifecycle)
    return session.scalar(select(func.count()).select_from(Shipment).where(where)) or 0


def backlog(
    db: Engine, settings: Settings, carriers: Sequence[str]
) -> tuple[int, datetime | None, dict[str, Any] | None]:
    """What the updater's status shows: due now, the next due time, and the last finished run
    (with up to 10 of its errors)."""
    with Session(db) as session:
        due = count_due(session, settings, carriers)
        next_due = next_due_at(session, settings, carriers)
        last = session.scalars(
            select(SyncRun)
            .where(SyncRun.finished_at.is_not(None))
            .order_by(SyncRun.started_at.desc())
            .limit(1)
        ).first()
        return due, next_due, run_as_dict(last, max_errors=10) if last else None


@dataclass(frozen=True, slots=True)
class LiveEngine:
    """A live engine as of its last heartbeat: the admin status and Operations page list them."""

    engine_id: str
    kind: str  # server | worker | sync | manual
    hostname: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    paused: bool
    in_flight_batches: int
    shipments_per_second: float
    carriers: list[str] | None  # None: every configured carrier


def live(db: Engine) -> tuple[bool, list[LiveEngine]]:
    """Whether the pause kept in the database is set, and every live engine."""
    with db.connect() as connection, Session(bind=connection) as session:
        paused = paused_in(connection)
        rows = live_engines(session, now=utcnow())
        engines = [
            LiveEngine(
                engine_id=row.engine_id,
                kind=row.kind,
                hostname=row.hostname,
                pid=row.pid,
                started_at=row.started_at,
                heartbeat_at=row.heartbeat_at,
                paused=row.paused,
                in_flight_batches=row.in_flight_batches,
                shipments_per_second=row.shipments_per_second,
                carriers=row.carriers.split(",") if row.carriers else None,
            )
            for row in rows
        ]
    return paused, engines


def next_due_at(session: Session, settings: Settings, carriers: Sequence[str]) -> datetime | None:
    """The earliest `next_check_at` of an active shipment of a configured carrier (by the
    due index); a manual cool-down can make the real time a little later."""
    if not carriers:
        return None
    now = utcnow()
    lifecycle = Lifecycle.from_settings(settings, tracked=carriers)
    query = (
        select(func.min(Shipment.next_check_at))
        .where(Shipment.next_check_at.is_not(None))
        .where(lifecycle.active(now), lifecycle.tracked())
    )
    return session.scalar(query)


@dataclass(frozen=True, slots=True)
class PlannedShipment:
    id: int
    carrier: str
    tracking_number: str
    status: str
    action: str  # "sync" or "skip"
    reason: str


def plan(
    session: Session,
    settings: Settings,
    providers: ProviderLookup,
    selection: Selection,
    *,
    limit: int = 1000,
) -> tuple[list[PlannedShipment], int]:
    """What a pass would do and why, without claiming or calling anything. Returns up to
    `limit` entries and the total count of shipments it looked at."""
    now = utcnow()
    lifecycle = Lifecycle.from_settings(settings, tracked=())
    clauses: list[Any] = []
    if selection.shipment_ids is not None:
        clauses.append(Shipment.id.in_(list(selection.shipment_ids)))
    else:
        clauses.append(lifecycle.active(now))
        if not selection.force:  # scheduled; `_reason` says why one is not due after all
            clauses.append(lifecycle.scheduled(now))
    if selection.carriers:
        clauses.append(Shipment.carrier.in_(list(selection.carriers)))
    order = Shipment.id if selection.by_id else Shipment.next_check_at
    query = select(Shipment).where(*clauses).order_by(order, Shipment.id)
    total = session.scalar(select(func.count()).select_from(Shipment).where(*clauses)) or 0
    entries: list[PlannedShipment] = []
    for shipment in session.scalars(query.limit(limit)):
        action, reason = _reason(shipment, settings, providers, selection, now)
        entries.append(
            PlannedShipment(
                shipment.id,
                shipment.carrier,
                shipment.tracking_number,
                shipment.status.value,
                action,
                reason,
            )
        )
    return entries, total


def _reason(
    shipment: Shipment,
    settings: Settings,
    providers: ProviderLookup,
    selection: Selection,
    now: datetime,
) -> tuple[str, str]:
    provider = providers.provider_for(shipment.carrier)
    if provider is None:
        why = providers.unconfigured_reason(shipment.carrier) or "no provider"
        return "skip", f"carrier not configured: {why}"
    if shipment.is_final:
        return "skip", f"final status {shipment.status.value}: never polled again"
    if not shipment.auto_refresh_enabled:
        return "skip", f"auto-refresh disabled: {shipment.last_auto_refresh_error or 'by a user'}"
    if shipment.lease_expires_at is not None and shipment.lease_expires_at > now:
        return "skip", f"being synced by {shipment.lease_owner} right now"
    if selection.by_id:
        return "sync", f"forced, via {provider.code}"
    cooled = shipment.last_manual_refresh
    if cooled is not None and cooled > now - MANUAL_COOLDOWN:
        return "skip", "refreshed by hand in the last 5 minutes"
    if shipment.last_auto_refresh is None:
        return "sync", f"never checked, via {provider.code}"
    due = shipment.next_check_at or now
    return "sync", f"due since {due.isoformat(timespec='seconds')}, via {provider.code}"


def stats(session: Session, settings: Settings, carriers: Sequence[str]) -> dict[str, Any]:
    """Counts by status and carrier, due now, failing, disabled, and the last runs."""
    now = utcnow()
    lifecycle = Lifecycle.from_settings(settings, tracked=carriers)
    by_status_carrier = session.execute(
        select(Shipment.status, Shipment.carrier, func.count())
        .group_by(Shipment.status, Shipment.carrier)
        .order_by(Shipment.carrier, Shipment.status)
    ).all()
    failing = session.scalar(
        select(func.count()).where(sync_failing_filter(), Shipment.auto_refresh_enabled.is_(True))
    )
    disabled = session.scalar(
        select(func.count()).where(open_filter(), Shipment.auto_refresh_enabled.is_(False))
    )
    active = session.scalar(select(func.count()).where(lifecycle.active(now)))
    due_unconfigured = session.scalar(
        select(func.count()).where(lifecycle.waiting_for_carrier(now))
    )
    runs = session.scalars(select(SyncRun).order_by(SyncRun.started_at.desc()).limit(10)).all()
    gone = gone_engine_ids(session, now=now)
    by_status: dict[str, int] = {}
    by_carrier: dict[str, int] = {}
    for status, carrier, count in by_status_carrier:
        by_status[status.value] = by_status.get(status.value, 0) + count
        by_carrier[carrier] = by_carrier.get(carrier, 0) + count
    return {
        "total": sum(by_status.values()),
        "by_status": by_status,
        "by_carrier": by_carrier,
        "by_status_and_carrier": [
            {"status": status.value, "carrier": carrier, "count": count}
            for status, carrier, count in by_status_carrier
        ],
        "active": active or 0,
        "due_now": count_due(session, settings, carriers, now=now),
        "due_but_carrier_not_configured": due_unconfigured or 0,
        "next_due_at": next_due_at(session, settings, carriers),
        "failing": failing or 0,
        "disabled": disabled or 0,
        "configured_carriers": list(carriers),
        "last_runs": [run_as_dict(run, max_errors=5, gone_engines=gone) for run in runs],
    }
