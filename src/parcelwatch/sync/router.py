"""REST routes of the sync engine: manual refresh of one shipment, and the admin controls
of the updater (pause and resume reach every worker; the status lists every live engine)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from parcelwatch.accounts.roles import Scope
from parcelwatch.api.auth import AdminDep, WriteDep
from parcelwatch.api.deps import ManualSyncDep, SessionsDep, ShipmentId, UpdaterDep
from parcelwatch.api.problems import answers
from parcelwatch.shipments.schemas import ShipmentOut
from parcelwatch.sync import control, manual, report
from parcelwatch.sync.updater import Updater

__all__ = ["router"]

router = APIRouter(tags=["sync"])

ADMIN_ANSWERS = answers(401, 403, 503, s503="The updater is not running.")


class RefreshOut(BaseModel):
    refreshed: bool
    outcome: str  # updated | unchanged | not_found | failed | disabled | deferred | final | ...
    detail: str
    shipment: ShipmentOut


class EngineOut(BaseModel):
    """A live engine (this server's updater, a worker, a `sync` run) as of its heartbeat."""

    engine_id: str
    kind: str
    hostname: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    paused: bool
    in_flight_batches: int
    shipments_per_second: float
    carriers: list[str] | None


class UpdaterStatus(BaseModel):
    enabled: bool
    running: bool
    paused: bool  # this updater, or every engine through the pause kept in the database
    paused_everywhere: bool  # the pause kept in the database (kept until resumed)
    in_flight_batches: int
    engine_id: str
    engines: list[EngineOut]  # every live engine, this one included once it has beaten
    pass_in_progress: dict[str, Any] | None
    last_run: dict[str, Any] | None
    due_now: int
    next_due_at: datetime | None


@router.post(
    "/shipments/{shipment_id}/refresh",
    response_model=RefreshOut,
    responses=answers(
        401,
        403,
        404,
        409,
        422,
        429,
        503,
        s403="`force` needs the admin scope.",
        s409="The carrier is not configured, or another engine is syncing the shipment.",
        s503="The sync engine has not started yet.",
    ),
)
async def refresh_shipment(
    shipment_id: ShipmentId,
    engine: ManualSyncDep,
    sessions: SessionsDep,
    principal: WriteDep,
    force: bool = Query(False, description="Skip the 5-minute cool-down (admin scope needed)."),
) -> RefreshOut:
    """Ask the carrier about one shipment now, with the engine the updater uses."""
    if force and not principal.allows(Scope.ADMIN):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "Not allowed: `force` (skipping the cool-down) needs the 'admin' scope.",
        )
    result = await manual.refresh(
        engine, sessions, shipment_id, force=force, viewer=principal.viewer
    )
    return RefreshOut(
        refreshed=result.refreshed,
        outcome=result.outcome,
        detail=result.detail,
        shipment=ShipmentOut.of(result.shipment),
    )


@router.post("/admin/tracking-updater/pause", response_model=UpdaterStatus, responses=ADMIN_ANSWERS)
async def pause_updater(updater: UpdaterDep, _admin: AdminDep) -> UpdaterStatus:
    """Stop starting new batches, in this server and every worker (batches in flight
    finish): kept in the database, read by every engine before its next batch, and kept
    across restarts until resumed."""
    await run_in_threadpool(control.set_paused, updater.sync_engine.db, paused=True)
    updater.pause(shared=True)
    return await _status(updater)


@router.post(
    "/admin/tracking-updater/resume", response_model=UpdaterStatus, responses=ADMIN_ANSWERS
)
async def resume_updater(updater: UpdaterDep, _admin: AdminDep) -> UpdaterStatus:
    """Clear the pause everywhere: every engine starts new batches again."""
    await run_in_threadpool(control.set_paused, updater.sync_engine.db, paused=False)
    updater.resume()
    return await _status(updater)


@router.get("/admin/tracking-updater/status", response_model=UpdaterStatus, responses=ADMIN_ANSWERS)
async def updater_status(updater: UpdaterDep, _admin: AdminDep) -> UpdaterStatus:
    return await _status(updater)


async def _status(updater: Updater) -> UpdaterStatus:
    engine = updater.sync_engine
    due, next_due, last_run = await run_in_threadpool(
        report.backlog, engine.db, engine.settings, engine.configured_carriers()
    )
    paused_everywhere, engines = await run_in_threadpool(report.live, engine.db)
    current = engine.current
    return UpdaterStatus(
        enabled=updater.enabled,
        running=updater.running,
        paused=engine.paused or paused_everywhere,
        paused_everywhere=paused_everywhere,
        in_flight_batches=engine.in_flight_batches,
        engine_id=engine.engine_id,
        engines=[EngineOut.model_validate(live, from_attributes=True) for live in engines],
        pass_in_progress=_live(current.as_dict()) if current else None,
        last_run=last_run,
        due_now=due,
        next_due_at=next_due,
    )


def _live(data: dict[str, Any]) -> dict[str, Any]:
    data.pop("outcomes", None)
    return data
