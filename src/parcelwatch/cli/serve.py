"""`parcelwatch serve`: migrate the database and run the API, dashboard and updater."""

from __future__ import annotations

import gc
import signal

import typer
import uvicorn
from sqlalchemy.exc import DBAPIError

from parcelwatch.cli.common import describe_database_error, fail, settings_or_exit
from parcelwatch.config import LOOPBACK_HOSTS, Settings
from parcelwatch.db import create_db_engine
from parcelwatch.logs import get_logger
from parcelwatch.migrate import upgrade

log = get_logger(__name__)


def serve(
    host: str | None = typer.Option(None, help="Address to listen on [env: HOST; 127.0.0.1]"),
    port: int | None = typer.Option(None, help="Port to listen on [env: PORT; 8080]"),
    migrate: bool = typer.Option(True, help="Apply pending database migrations first."),
    workers: int | None = typer.Option(
        None,
        min=1,
        max=64,
        help="API processes answering on the address; the updater runs in the first "
        "[env: WEB_CONCURRENCY; 1]",
    ),
) -> None:
    """Run the server: REST API, dashboard, metrics and the background updater."""
    settings = settings_or_exit(quiet=False, background_logs=True)
    processes = workers or settings.web_concurrency
    if migrate:
        engine = create_db_engine(settings.sqlalchemy_url)
        try:
            upgrade(engine)
        except DBAPIError as error:
            fail(f"database upgrade failed: {describe_database_error(error)}", code=2)
        except Exception as error:
            fail(f"database upgrade failed: {type(error).__name__}: {error}", code=2)
        finally:
            engine.dispose()

    from parcelwatch.demo import prepare_demo

    settings = prepare_demo(settings)
    bind_host = host or settings.host
    bind_port = port or settings.port
    _warn_if_unanswered(settings, bind_host)
    if processes > 1:
        from parcelwatch.cli.processes import run_processes

        log.info(
            "serving",
            url=f"http://{bind_host}:{bind_port}",
            database=_safe(settings),
            processes=processes,
        )
        try:
            status = run_processes(settings, host=bind_host, port=bind_port, workers=processes)
        except OSError as error:
            fail(f"cannot listen on {bind_host}:{bind_port}: {error}", code=2)
        raise typer.Exit(status)

    from parcelwatch.api.app import create_app

    app = create_app(settings)
    # What is loaded by now (modules, models, schemas, the app) lives as long as the server:
    # frozen out of the collector's sight, a full collection no longer walks it, which under
    # load took the slowest requests from ~150 ms to ~70 ms (p99, bench/api_load.py).
    gc.collect()
    gc.freeze()
    log.info(
        "serving",
        url=f"http://{bind_host}:{bind_port}",
        database=_safe(settings),
        frozen_objects=gc.get_freeze_count(),
    )
    # uvicorn shuts down gracefully on SIGTERM/SIGINT (the lifespan stops the updater), then
    # re-raises the signal under the previous handler: make that a clean exit 0.
    for shutdown_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(shutdown_signal, _exit_cleanly)
    # proxy_headers off: the app applies TRUSTED_PROXIES' X-Forwarded-* itself
    uvicorn.run(
        app,
        host=bind_host,
        port=bind_port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
    )


def _warn_if_unanswered(settings: Settings, bind_host: str) -> None:
    if bind_host not in LOOPBACK_HOSTS and not (settings.allowed_hosts or settings.public_url):
        log.warning(
            "listening beyond this machine, but only the loopback names are answered: "
            "requests for any other host name or address get 400 until ALLOWED_HOSTS "
            "(or PUBLIC_URL) lists it",
            host=bind_host,
            allowed_hosts=settings.trusted_hosts,
        )


def _exit_cleanly(_signum: int, _frame: object) -> None:
    raise typer.Exit(0)


def _safe(settings: object) -> str:
    from sqlalchemy import make_url

    url = make_url(getattr(settings, "database_url", ""))
    return url.render_as_string(hide_password=True)
