"""Manual refresh of one shipment: the one service behind `POST /api/shipments/{id}/refresh`
and the dashboard's refresh button, and what the dashboard shows of the cool-down.

A refresh takes the manual cool-down (`MANUAL_COOLDOWN`) in one conditional UPDATE before the
carrier is asked, so of two refreshes at once exactly one goes ahead and the other gets 429.
It then runs a one-shipment pass on the manual sync engine (the updater's sibling: same
providers, budgets and writer). When another engine holds the shipment's lease, the refresh
gives the cool-down back and answers 409.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from parcelwatch.db import session_scope
from parcelwatch.domain import utcnow
from parcelwatch.errors import Conflict, NotFound, TooManyRequests
from parcelwatch.lifecycle import MANUAL_COOLDOWN, Lifecycle
from parcelwatch.models import Shipment
from parcelwatch.shipments.service import get_shipment
from parcelwatch.shipments.trackers import EVERYONE, Tracked, Viewer, seen_by
from parcelwatch.sync.engine import SyncEngine
from parcelwatch.sync.outcomes import PassTrigger, ShipmentOutcome
from parcelwatch.sync.selection import Selection

__all__ = ["REFRESHED_OUTCOMES", "RefreshResult", "cooldown_ends", "refresh"]

# A pass outcome that means the carrier answered (the shipment is now current).
REFRESHED_OUTCOMES = frozenset(
    {
        ShipmentOutcome.UPDATED,
        ShipmentOutcome.UNCHANGED,
        ShipmentOutcome.NOT_FOUND,
        ShipmentOutcome.EXPIRED,
    }
)


@dataclass(frozen=True, slots=True)
class RefreshResult:
    refreshed: bool
    outcome: str  # updated | unchanged | not_found | expired | failed | deferred | final | ...
    detail: str
    shipment: Tracked  # detached, as stored after the refresh


def cooldown_ends(shipment: Shipment) -> datetime | None:
    """When the shipment may be refreshed by hand again; None when it may be now."""
    if shipment.last_manual_refresh is None:
        return None
    ends = shipment.last_manual_refresh + MANUAL_COOLDOWN
    return ends if ends > utcnow() else None


async def refresh(
    engine: SyncEngine,
    sessions: sessionmaker[Session],
    shipment_id: int,
    *,
    force: bool,
    viewer: Viewer = EVERYONE,
) -> RefreshResult:
    """Ask the carrier about one shipment now. `force` skips the cool-down (the caller checks
    that the asker may). Raises NotFound, Conflict (carrier not configured, or another engine
    is syncing the shipment) or TooManyRequests (within the cool-down)."""
    shipment = await run_in_threadpool(_load, sessions, shipment_id, viewer)
    if shipment.is_final:
        return RefreshResult(
            refreshed=False,
            outcome="final",
            detail=f"The shipment is {shipment.status.value}: a final status is not refreshed.",
            shipment=shipment,
        )
    if engine.providers.provider_for(shipment.carrier) is None:
        reason = engine.providers.unconfigured_reason(shipment.carrier)
        raise Conflict(f"{shipment.carrier} is not configured: {reason}.")
    await run_in_threadpool(_reserve, sessions, shipment_id, force)
    summary = await engine.run_pass(
        Selection(manual=True, shipment_ids=[shipment_id]), trigger=PassTrigger.MANUAL
    )
    outcome = summary.outcomes.get(shipment_id)
    if outcome is None:  # another engine holds it (the updater, a cron sync)
        await run_in_threadpool(_give_back, sessions, shipment_id, shipment.last_manual_refresh)
        raise Conflict(f"Shipment {shipment_id} is being synced right now; try again shortly.")
    after = await run_in_threadpool(_load, sessions, shipment_id, viewer)
    refreshed = outcome in REFRESHED_OUTCOMES
    detail = f"Refreshed: {outcome}." if refreshed else after.last_auto_refresh_error
    return RefreshResult(
        refreshed=refreshed, outcome=outcome, detail=detail or outcome, shipment=after
    )


def _load(sessions: sessionmaker[Session], shipment_id: int, viewer: Viewer) -> Tracked:
    """The shipment as `viewer` sees it (NotFound when they may not), detached."""
    with session_scope(sessions) as session:
        seen = seen_by(session, viewer, get_shipment(session, shipment_id, viewer=viewer))
        session.expunge_all()
        return seen


def _reserve(sessions: sessionmaker[Session], shipment_id: int, force: bool) -> None:
    """Take the cool-down in one conditional UPDATE. Raises 429 within the cool-down."""
    now = utcnow()
    statement = update(Shipment).where(Shipment.id == shipment_id)
    if not force:
        statement = statement.where(Lifecycle.cooled_down(now))
    statement = statement.values(last_manual_refresh=now)
    # The UPDATE comes first in its transaction: on SQLite a read that then writes can be
    # refused at once when another refresh writes in between.
    with session_scope(sessions, write=True) as session:
        taken = session.execute(statement.execution_options(synchronize_session=False))
        if taken.rowcount == 1:  # type: ignore[attr-defined]  # CursorResult of an UPDATE
            return
    with session_scope(sessions) as session:
        last = session.scalar(
            select(Shipment.last_manual_refresh).where(Shipment.id == shipment_id)
        )
    if last is None:
        raise NotFound(f"Shipment {shipment_id} does not exist.")
    wait = math.ceil((last + MANUAL_COOLDOWN - utcnow()).total_seconds())
    minutes = int(MANUAL_COOLDOWN.total_seconds() // 60)
    raise TooManyRequests(
        f"Shipment {shipment_id} was refreshed less than {minutes} minutes ago; "
        f"try again in {wait} seconds.",
        retry_after=max(1, wait),
    )


def _give_back(
    sessions: sessionmaker[Session], shipment_id: int, previous: datetime | None
) -> None:
    with session_scope(sessions, write=True) as session:
        session.execute(
            update(Shipment)
            .where(Shipment.id == shipment_id)
            .values(last_manual_refresh=previous)
            .execution_options(synchronize_session=False)
        )
