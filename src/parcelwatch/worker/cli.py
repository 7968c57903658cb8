"""`parcelwatch worker`: the sync loop (the server's updater loop, no REST API) until SIGTERM,
or one pass with `--once`; `--metrics-port` serves `/metrics`, `/healthz` and `/readyz`."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta

import typer
import uvicorn
from sqlalchemy import Engine, make_url, text

from parcelwatch.carriers.catalog import CARRIERS
from parcelwatch.carriers.registry import open_registry
from parcelwatch.cli.common import carrier_settings, fail, settings_or_exit
from parcelwatch.config import Settings
from parcelwatch.db import create_db_engine
from parcelwatch.logs import get_logger
from parcelwatch.migrate import current_revision, head_revision
from parcelwatch.notifications.dispatcher import Dispatcher
from parcelwatch.sync.control import is_paused
from parcelwatch.sync.engine import EngineOptions, ProviderLookup, SyncEngine
from parcelwatch.sync.outcomes import PassOutcome, PassTrigger
from parcelwatch.sync.recovery import HEARTBEAT_EVERY
from parcelwatch.sync.selection import Selection
from parcelwatch.sync.updater import Updater
from parcelwatch.worker.loops import BackgroundLoop, run_until_stopped
from parcelwatch.worker.probe import ProbeServer, create_probe_app
from parcelwatch.worker.single_node import SingleNodeError, take_updater_role

__all__ = ["worker"]

log = get_logger(__name__)

EXIT_LOOP_DIED = 1
EXIT_FATAL = 2


def worker(
    concurrency: int | None = typer.Option(
        None, "--concurrency", min=1, max=1000, help="Requests in flight per provider."
    ),
    carrier: list[str] = typer.Option(  # noqa: B008 - typer's way of a repeatable option
        [], "--carrier", help="Only these carriers' shipments (repeat, or CODE,CODE)."
    ),
    once: bool = typer.Option(False, "--once", help="One pass of the due shipments, then exit."),
    metrics_port: int | None = typer.Option(
        None, "--metrics-port", min=1, max=65535, help="Serve /metrics, /healthz, /readyz here."
    ),
    metrics_host: str | None = typer.Option(
        None, "--metrics-host", help="Address of the metrics port [env: HOST; 127.0.0.1]"
    ),
    heartbeat_every: float = typer.Option(
        HEARTBEAT_EVERY, "--heartbeat-every", min=0.2, hidden=True, help="Seconds (tests)."
    ),
    lease: float = typer.Option(600.0, "--lease", min=1.0, hidden=True, help="Seconds (tests)."),
) -> None:
    """Run the sync engine continuously, without the API (scale out: as many as you like on
    PostgreSQL; one on SQLite)."""
    settings = settings_or_exit(quiet=False, background_logs=True)
    db = create_db_engine(settings.sqlalchemy_url)
    try:
        _check_schema(db)
        options = EngineOptions(
            concurrency=concurrency,
            heartbeat_every=heartbeat_every,
            lease=timedelta(seconds=lease),
        )
        with carrier_settings(settings) as asked_with:
            code = asyncio.run(
                _main(
                    asked_with,
                    db,
                    options=options,
                    carriers=_codes(carrier),
                    once=once,
                    metrics=(metrics_host or settings.host, metrics_port) if metrics_port else None,
                )
            )
    finally:
        db.dispose()
    raise typer.Exit(code)


def _codes(values: list[str]) -> list[str] | None:
    codes = [code.strip().lower() for value in values for code in value.split(",") if code.strip()]
    for code in codes:
        if code not in CARRIERS:
            fail(f"unknown carrier '{code}'; known: {', '.join(sorted(CARRIERS))}", EXIT_FATAL)
    return codes or None


def _check_schema(db: Engine) -> None:
    """Workers never migrate (many starting at once would race): the server or `parcelwatch
    db upgrade` does."""
    try:
        with db.connect() as connection:
            connection.execute(text("SELECT 1"))
        current = current_revision(db)
    except Exception as error:
        fail(f"database unavailable: {type(error).__name__}: {error}", EXIT_FATAL)
    if current != head_revision():
        fail(
            f"the database is at revision {current or 'none'}, this worker needs "
            f"{head_revision()}: run `parcelwatch db upgrade` (or start the server) first",
            EXIT_FATAL,
        )


async def _main(
    settings: Settings,
    db: Engine,
    *,
    options: EngineOptions,
    carriers: list[str] | None,
    once: bool,
    metrics: tuple[str, int] | None,
) -> int:
    async with open_registry(settings) as registry:
        _check_carriers(registry, carriers)
        sync_engine = SyncEngine(
            settings=settings, db=db, providers=registry, kind="worker", options=options
        )
        try:
            if make_url(settings.sqlalchemy_url).get_backend_name() == "sqlite":
                try:
                    await sync_engine.in_db(
                        take_updater_role,
                        db,
                        engine_id=sync_engine.engine_id,
                        kind=sync_engine.kind,
                        started_at=sync_engine.started_at,
                        carriers=",".join(carriers) if carriers else None,
                    )
                except SingleNodeError as error:
                    fail(str(error), EXIT_FATAL)
            if once:
                return await _one_pass(sync_engine, carriers)
            return await _run(settings, sync_engine, carriers, metrics)
        finally:
            await sync_engine.aclose()


def _check_carriers(registry: ProviderLookup, carriers: list[str] | None) -> None:
    for code in carriers or []:
        if registry.provider_for(code) is None:
            fail(f"{code} is not configured: {registry.unconfigured_reason(code)}", EXIT_FATAL)


async def _one_pass(sync_engine: SyncEngine, carriers: list[str] | None) -> int:
    """One pass, unless the pause kept in the database is set (read once, at the start: a
    pass under way finishes, as `sync` does, rather than wait for a resume)."""
    sync_engine.carriers = carriers
    if await sync_engine.in_db(is_paused, sync_engine.db):
        log.warning("updates are paused for every engine (admin API): no pass")
        return 0
    loop = asyncio.get_running_loop()
    for shutdown_signal in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(shutdown_signal, lambda: loop.create_task(sync_engine.stop()))
    summary = await sync_engine.run_pass(Selection(carriers=carriers), trigger=PassTrigger.SYNC)
    log.info("worker pass done", outcome=summary.outcome, synced=summary.synced)
    if summary.outcome is PassOutcome.FAILED:
        return EXIT_FATAL
    if summary.outcome in (PassOutcome.PARTIAL, PassOutcome.ERROR):
        return 1
    return 0


async def _run(
    settings: Settings,
    sync_engine: SyncEngine,
    carriers: list[str] | None,
    metrics: tuple[str, int] | None,
) -> int:
    updater = Updater(sync_engine, first_delay=0.0, carriers=carriers)
    # Every loop this worker runs, started together and stopped together on SIGTERM: the sync
    # engine, and (NOTIFY_ENABLED) the notification dispatcher, which shares the outbox with
    # every other dispatcher through its leases.
    loops: list[BackgroundLoop] = [updater]
    if settings.notify_enabled:
        loops.append(Dispatcher(settings, sync_engine.db))
    probe: ProbeServer | None = None
    serving: asyncio.Task[None] | None = None
    if metrics is not None:
        host, port = metrics
        app = create_probe_app(settings, loops, updater)
        probe = ProbeServer(
            uvicorn.Config(
                app, host=host, port=port, log_config=None, access_log=False, lifespan="off"
            )
        )
        serving = asyncio.create_task(probe.serve(), name="parcelwatch-probe")
    log.info(
        "worker started",
        engine_id=sync_engine.engine_id,
        carriers=carriers or "all",
        metrics=f"http://{metrics[0]}:{metrics[1]}/metrics" if metrics else None,
    )
    try:
        healthy = await run_until_stopped(loops)
    finally:
        if probe is not None and serving is not None:
            probe.should_exit = True
            await serving
    log.info("worker stopped", engine_id=sync_engine.engine_id)
    return 0 if healthy else EXIT_LOOP_DIED
