"""Operations routes: `/metrics`, `/healthz`, `/readyz` and `GET /api/health`; `install_ops`
adds them and the HTTP metrics middleware to the app."""

from __future__ import annotations

import os
from datetime import timedelta
from functools import partial
from typing import Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, status
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

from parcelwatch.accounts.secrets import same_secret
from parcelwatch.api.auth import ReadDep
from parcelwatch.api.deps import DatabaseDep, SettingsDep, health_providers_of, updater_of
from parcelwatch.api.problems import answers
from parcelwatch.carriers.registry import Routing
from parcelwatch.config import Settings
from parcelwatch.domain import utcnow
from parcelwatch.lifecycle import Lifecycle
from parcelwatch.models import EngineHeartbeat
from parcelwatch.ops.budgets import ProviderBudget, provider_budgets
from parcelwatch.ops.health import (
    DEFAULT_ALERT_THRESHOLD_HOURS,
    MAX_ALERT_THRESHOLD_HOURS,
    HealthOptions,
    run_health,
)
from parcelwatch.ops.http import HttpMetrics
from parcelwatch.ops.metrics import (
    BudgetCollector,
    BuildInfoCollector,
    DatabaseCollector,
    OutboxCollector,
)
from parcelwatch.sync.updater import Updater

__all__ = ["HEARTBEAT_MAX_AGE", "install_ops", "router", "updater_problem"]

HEARTBEAT_MAX_AGE = timedelta(minutes=5)  # the updater beats at least every pass (<= 60 s idle)

router = APIRouter(tags=["operations"])


def install_ops(app: FastAPI) -> None:
    """Mount the operations routes and count every HTTP request."""
    app.include_router(router)
    app.add_middleware(HttpMetrics)


def _check_metrics_token(request: Request, settings: SettingsDep) -> None:
    """With METRICS_TOKEN set, a scrape must send it as a bearer token (compared in constant
    time); without it /metrics is open, like most exporters."""
    if settings.metrics_token is None:
        return
    expected = f"Bearer {settings.metrics_token.get_secret_value()}"
    if not same_secret(expected, request.headers.get("authorization")):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "METRICS_TOKEN is set: scrape with 'Authorization: Bearer <METRICS_TOKEN>' "
            "(Prometheus: authorization.credentials).",
            headers={"WWW-Authenticate": "Bearer"},
        )


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(_check_metrics_token)])
def metrics(
    settings: SettingsDep,
    database: DatabaseDep,
    scope: Literal["all", "process", "database"] = "all",
) -> Response:
    """Prometheus exposition: process metrics (or, with PROMETHEUS_MULTIPROC_DIR, every worker's
    merged) plus gauges read from the database at scrape time. With several API servers, scrape
    each one with `?scope=process` and one address with `?scope=database`, so that every
    process's series are its own and the database gauges are read once."""
    body = b"" if scope == "database" else _process_metrics()
    if scope == "process":
        return Response(body, media_type=CONTENT_TYPE_LATEST)
    return Response(body + _database_gauges(settings, database), media_type=CONTENT_TYPE_LATEST)


def _process_metrics() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        merged.register(BuildInfoCollector())
        body = generate_latest(merged)
    else:
        body = generate_latest(REGISTRY)
    return body


def _database_gauges(settings: Settings, database: Engine) -> bytes:
    body = b""
    gauges = CollectorRegistry(auto_describe=False)
    lifecycle = Lifecycle.from_settings(settings, tracked=Routing(settings).tracked())
    gauges.register(DatabaseCollector(database, lifecycle))
    gauges.register(OutboxCollector(database))
    try:
        body += generate_latest(gauges)
    except Exception:
        body += b"# parcelwatch: the database gauges are unavailable (database unreachable)\n"
    budgets = CollectorRegistry(auto_describe=False)
    budgets.register(BudgetCollector(partial(_budgets, database, settings)))
    try:
        body += generate_latest(budgets)
    except Exception:
        body += b"# parcelwatch: the carrier budget gauges are unavailable (store unreachable)\n"
    return body


def _budgets(database: Engine, settings: Settings) -> list[ProviderBudget]:
    with Session(database) as session:
        return provider_budgets(session, settings)


@router.get("/healthz", include_in_schema=False)
def healthz() -> dict[str, str]:
    """Alive: the process answers. Touches no database."""
    return {"status": "alive"}


@router.get("/readyz", include_in_schema=False)
def readyz(request: Request, settings: SettingsDep, database: DatabaseDep) -> JSONResponse:
    """Ready: the database answers and, when this process runs the updater, it is alive and
    has reported a heartbeat within 5 minutes (or is paused, or has just started)."""
    problems = []
    try:
        with database.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        problems.append(f"database unreachable: {type(error).__name__}")
    else:
        updater = updater_of(request.app)
        if settings.auto_update_enabled and updater is not None:
            problem = updater_problem(database, updater)
            if problem:
                problems.append(problem)
    if problems:
        return JSONResponse({"status": "not_ready", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ready"})


def updater_problem(db: Engine, updater: Updater) -> str | None:
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


@router.get(
    "/api/health",
    responses={
        200: {"description": "Healthy or warning: the report."},
        503: {"description": "Critical: the report."},
        **answers(422),
    },
)
async def health(
    request: Request,
    _who: ReadDep,
    settings: SettingsDep,
    database: DatabaseDep,
    check_stale: bool = Query(False, description="Also list the stale shipments."),
    alert_threshold: float = Query(
        DEFAULT_ALERT_THRESHOLD_HOURS,
        gt=0,
        le=MAX_ALERT_THRESHOLD_HOURS,
        description="Hours without a successful sync run before the status is critical.",
    ),
) -> JSONResponse:
    """Every health check; 200 when healthy or warning, 503 when critical."""
    options = HealthOptions(alert_threshold_hours=alert_threshold, check_stale=check_stale)
    providers = health_providers_of(request.app)
    report = await run_health(settings, database, options, providers=providers)
    return JSONResponse(report.as_dict(), status_code=report.http_status)
