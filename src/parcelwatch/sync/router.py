"""REST routes of the sync engine: manual refresh of one shipment, and the admin controls
of the in-process updater (pause, resume, status)."""

from __future__ import annotations

import math
from datetime import datetime
from functools import partial
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from parcelwatch.api.app import LIFESPAN_HOOKS
from parcelwatch.api.deps import AdminDep, BearerDep, SettingsDep, is_admin, require_admin
from parcelwatch.db import session_scope
from parcelwatch.domain import utcnow
from parcelwatch.errors import Conflict, NotFound, TooManyRequests
from parcelwatch.lifecycle import MANUAL_COOLDOWN
from parcelwatch.models import Shipment, SyncRun
from parcelwatch.shipments.schemas import ShipmentOut
from parcelwatch.sync import report
from parcelwatch.sync.engine import SyncEngine
from parcelwatch.sync.outcomes import PassTrigger
from parcelwatch.sync.runs import run_as_dict
from parcelwatch.sync.selection import Selection
from parcelwatch.sync.updater import Updater, sync_lifespan

__all__ = ["router"]

router = APIRouter(tags=["sync"])

# The engine and the updater run with the server (the updater only when AUTO_UPDATE_ENABLED).
if sync_lifespan not in LIFESPAN_HOOKS:
    LIFESPAN_HOOKS.append(sync_lifespan)


class RefreshOut(BaseModel):
    refreshed: bool
    outcome: str  # updated | unchanged | not_found | failed | disabled | deferred | final | ...
    detail: str
    shipment: ShipmentOut


class UpdaterStatus(BaseModel):
    enabled: bool
    running: bool
    paused: bool
    in_flight_batches: int
    engine_id: str
    pass_in_progress: dict[str, Any] | None
    last_run: dict[str, Any] | None
    due_now: int
    next_due_at: datetime | None


def _shipment(request: Request, shipment_id: int) -> Shipment:
    with session_scope(request.app.state.sessions) as session:
        shipment = session.get(Shipment, shipment_id)
        if shipment is None:
            raise NotFound(f"Shipment {shipment_id} does not exist.")
        session.expunge(shipment)
        return shipment


def _reserve(request: Request, shipment_id: int, *, force: bool) -> None:
    """Take the manual cool-down for this refresh in one conditional UPDATE, so of two
    refreshes at once exactly one goes ahead. Raises 429 within the cool-down."""
    now = utcnow()
    statement = update(Shipment).where(Shipment.id == shipment_id)
    if not force:
        statement = statement.where(
            or_(
                Shipment.last_manual_refresh.is_(None),
                Shipment.last_manual_refresh <= now - MANUAL_COOLDOWN,
            )
        )
    statement = statement.values(last_manual_refresh=now)
    # The UPDATE comes first in its transaction: on SQLite a read that then writes can be
    # refused at once when another refresh writes in between.
    with session_scope(request.app.state.sessions) as session:
        taken = session.execute(statement.execution_options(synchronize_session=False))
        if taken.rowcount == 1:  # type: ignore[attr-defined]  # CursorResult of an UPDATE
            return
    with session_scope(request.app.state.sessions) as session:
        last = session.scalar(
            select(Shipment.last_manual_refresh).where(Shipment.id == shipment_id)
        )
    if last is None:
        raise NotFound(f"Shipment {shipment_id} does not exist.")
    wait = math.ceil((last + MANUAL_COOLDOWN - utcnow()).total_seconds())
    raise TooManyRequests(
        f"Shipment {shipment_id} was refreshed less than 5 minutes ago; "
        f"try again in {wait} seconds.",
        retry_after=max(1, wait),
    )


def _give_back(request: Request, shipment_id: int, previous: datetime | None) -> None:
    with session_scope(request.app.state.sessions) as session:
        session.execute(
            update(Shipment)
            .where(Shipment.id == shipment_id)
            .values(last_manual_refresh=previous)
            .execution_options(synchronize_session=False)
        )


@router.post("/shipments/{shipment_id}/refresh", response_model=RefreshOut)
async def refresh_shipment(
    shipment_id: int,
    request: Request,
    settings: SettingsDep,
    credentials: BearerDep,
    force: bool = Query(False, description="Skip the 5-minute cool-down (admin token needed)."),
) -> RefreshOut:
    """Ask the carrier about one shipment now, with the engine the updater uses."""
    if force and not is_admin(settings, credentials):
        require_admin(settings, credentials)  # raises 403 or 401 with how to fix it
    shipment = await run_in_threadpool(_shipment, request, shipment_id)
    if shipment.is_final:
        return RefreshOut(
            refreshed=False,
            outcome="final",
            detail=f"The shipment is {shipment.status.value}: a final status is not refreshed.",
            shipment=ShipmentOut.of(shipment),
        )
    engine: SyncEngine = request.app.state.sync_manual
    if engine.providers.provider_for(shipment.carrier) is None:
        reason = engine.providers.unconfigured_reason(shipment.carrier)
        raise Conflict(f"{shipment.carrier} is not configured: {reason}.")
    await run_in_threadpool(partial(_reserve, request, shipment_id, force=force))
    summary = await engine.run_pass(
        Selection(manual=True, shipment_ids=[shipment_id]), trigger=PassTrigger.MANUAL
    )
    outcome = summary.outcomes.get(shipment_id)
    if outcome is None:  # another engine holds it (the updater, a cron sync)
        await run_in_threadpool(_give_back, request, shipment_id, shipment.last_manual_refresh)
        raise Conflict(f"Shipment {shipment_id} is being synced right now; try again shortly.")
    after = await run_in_threadpool(_shipment, request, shipment_id)
    refreshed = outcome in ("updated", "unchanged", "not_found", "expired")
    detail = after.last_auto_refresh_error if not refreshed else f"Refreshed: {outcome}."
    return RefreshOut(
        refreshed=refreshed,
        outcome=outcome,
        detail=detail or outcome,
        shipment=ShipmentOut.of(after),
    )


def _updater(request: Request) -> Updater:
    updater: Updater | None = getattr(request.app.state, "updater", None)
    if updater is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "The updater is not running.")
    return updater


@router.post("/admin/tracking-updater/pause", response_model=UpdaterStatus)
async def pause_updater(request: Request, _admin: AdminDep) -> UpdaterStatus:
    """Stop starting new batches (batches in flight finish); not persisted across restarts."""
    updater = _updater(request)
    updater.pause()
    return await _status(request, updater)


@router.post("/admin/tracking-updater/resume", response_model=UpdaterStatus)
async def resume_updater(request: Request, _admin: AdminDep) -> UpdaterStatus:
    updater = _updater(request)
    updater.resume()
    return await _status(request, updater)


@router.get("/admin/tracking-updater/status", response_model=UpdaterStatus)
async def updater_status(request: Request, _admin: AdminDep) -> UpdaterStatus:
    return await _status(request, _updater(request))


async def _status(request: Request, updater: Updater) -> UpdaterStatus:
    engine = updater.sync_engine

    def read() -> tuple[int, datetime | None, dict[str, Any] | None]:
        carriers = engine.configured_carriers()
        with Session(engine.db) as session:
            due = report.count_due(session, engine.settings, carriers)
            next_due = report.next_due_at(session, engine.settings, carriers)
            last = session.scalars(
                select(SyncRun)
                .where(SyncRun.finished_at.is_not(None))
                .order_by(SyncRun.started_at.desc())
                .limit(1)
            ).first()
            return due, next_due, run_as_dict(last, max_errors=10) if last else None

    due, next_due, last_run = await run_in_threadpool(read)
    current = engine.current
    return UpdaterStatus(
        enabled=updater.enabled,
        running=updater.running,
        paused=engine.paused,
        in_flight_batches=engine.in_flight_batches,
        engine_id=engine.engine_id,
        pass_in_progress=_live(current.as_dict()) if current else None,
        last_run=last_run,
        due_now=due,
        next_due_at=next_due,
    )


def _live(data: dict[str, Any]) -> dict[str, Any]:
    data.pop("outcomes", None)
    return data
