"""The worker's small HTTP port (`--metrics-port`): `/metrics` (this process's own series; the
database gauges stay on the server's `/metrics`, so they are scraped once), `/healthz` (every
loop still running; no database) and `/readyz` (the database answers and the sync loop has
beaten within 5 minutes, or is paused, or has just started)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import uvicorn
from fastapi import FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import text

from parcelwatch.accounts.secrets import same_secret
from parcelwatch.config import Settings
from parcelwatch.ops.router import updater_problem
from parcelwatch.sync.updater import Updater
from parcelwatch.worker.loops import BackgroundLoop

__all__ = ["ProbeServer", "create_probe_app"]


def create_probe_app(
    settings: Settings, loops: Sequence[BackgroundLoop], updater: Updater
) -> FastAPI:
    """The three routes over the worker's loops; no REST API, no dashboard."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    database = updater.sync_engine.db

    @app.get("/metrics")
    def metrics(request: Request) -> Response:
        if settings.metrics_token is not None:
            expected = f"Bearer {settings.metrics_token.get_secret_value()}"
            if not same_secret(expected, request.headers.get("authorization")):
                raise HTTPException(status.HTTP_401_UNAUTHORIZED, "METRICS_TOKEN is set")
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        stopped = [loop.name for loop in loops if not loop.running]
        if stopped:
            return JSONResponse({"status": "dead", "stopped": stopped}, status_code=503)
        return JSONResponse({"status": "alive"})

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        problems = []
        try:
            with database.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as error:
            problems.append(f"database unreachable: {type(error).__name__}")
        else:
            problem = updater_problem(database, updater)
            if problem:
                problems.append(problem)
        if problems:
            return JSONResponse({"status": "not_ready", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ready"})

    return app


class ProbeServer(uvicorn.Server):
    """uvicorn inside the worker's event loop, leaving SIGTERM/SIGINT to the worker (which
    stops its loops first, then this)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
