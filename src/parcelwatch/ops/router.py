"""Operations routes: `/metrics`, `/healthz`, `/readyz` and `GET /api/health`; `install_ops`
adds them and the HTTP metrics middleware to the app."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from parcelwatch.carriers.base import Carrier
from parcelwatch.carriers.registry import Routing
from parcelwatch.config import Settings
from parcelwatch.domain import utcnow
from parcelwatch.lifecycle import Lifecycle
from parcelwatch.models import EngineHeartbeat
from parcelwatch.ops.health import DEFAULT_ALERT_THRESHOLD_HOURS, HealthOptions, run_health
from parcelwatch.ops.http import HttpMetrics
from parcelwatch.ops.metrics import BuildInfoCollector, DatabaseCollector

__all__ = ["HEARTBEAT_MAX_AGE", "install_ops", "router"]

HEARTBEAT_MAX_AGE = timedelta(minutes=5)  # the updater beats at least every pass (<= 60 s idle)

router = APIRouter(tags=["operations"])


def install_ops(app: FastAPI) -> None:
    """Mount the operations routes and count every HTTP request."""
    app.include_router(router)
    app.add_middleware(HttpMetrics)


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus exposition: process metrics (or, with PROMETHEUS_MULTIPROC_DIR, every worker's
    merged) plus gauges read from the database at scrape time."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        merged.register(BuildInfoCollector())
        body = generate_latest(merged)
    else:
        body = generate_latest(REGISTRY)
    database = CollectorRegistry(auto_describe=False)
    settings: Settings = request.app.state.settings
    lifecycle = Lifecycle.from_settings(settings, tracked=Routing(settings).tracked())
    database.register(DatabaseCollector(request.app.state.engine, lifecycle))
    try:
        body += generate_latest(database)
    except Exception:
        body += b"# parcelwatch: the database gauges are unavailable (database unreachable)\n"
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz", include_in_schema=False)
def healthz() -> dict[str, str]:
    """Alive: the process answers. Touches no database."""
    return {"status": "alive"}


@router.get("/readyz", include_in_schema=False)
def readyz(request: Request) -> JSONResponse:
    """Ready: the database answers and, when this process runs the updater, it is alive and
    has reported a heartbeat within 5 minutes (or is paused, or has just started)."""
    app = request.app
    settings: Settings = app.state.settings
    problems = []
    try:
        with app.state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        problems.append(f"database unreachable: {type(error).__name__}")
    else:
        updater = getattr(app.state, "updater", None)
        if settings.auto_update_enabled and updater is not None:
            problem = _updater_problem(app.state.engine, updater)
            if problem:
                problems.append(problem)
    if problems:
        return JSONResponse({"status": "not_ready", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ready"})


def _updater_problem(db: Engine, updater: Any) -> str | None:
    if not updater.running:
        return "the tracking updater is not running"
    sync_engine = updater.sync_engine
    if sync_engine.paused or utcnow() - sync_engine.started_at < HEARTBEAT_MAX_AGE:
        return None
    with Session(db) as session:
        beat = session.scalar(
            select(EngineHeartbeat.heartbeat_at).where(
                EngineHeartbeat.engine_id == sync_engine.engine_id
            )
        )
    if beat is None or utcnow() - beat > HEARTBEAT_MAX_AGE:
        return "the tracking updater has not reported a heartbeat for 5 minutes"
    return None


@router.get("/api/health")
async def health(
    request: Request,
    check_stale: bool = Query(False, description="Also list the stale shipments."),
    alert_threshold: float = Query(
        DEFAULT_ALERT_THRESHOLD_HOURS,
        gt=0,
        description="Hours without a successful sync run before the status is critical.",
    ),
) -> JSONResponse:
    """Every health check; 200 when healthy or warning, 503 when critical."""
    app = request.app
    providers: Mapping[str, Carrier] | None = getattr(app.state, "health_providers", None)
    options = HealthOptions(alert_threshold_hours=alert_threshold, check_stale=check_stale)
    report = await run_health(app.state.settings, app.state.engine, options, providers=providers)
    return JSONResponse(report.as_dict(), status_code=report.http_status)


from parcelwatch.api.app import LIFESPAN_HOOKS  # noqa: E402  (after the routes: no cycle)
from parcelwatch.ops.alerts.server import alerts_lifespan  # noqa: E402

if alerts_lifespan not in LIFESPAN_HOOKS:
    LIFESPAN_HOOKS.append(alerts_lifespan)
