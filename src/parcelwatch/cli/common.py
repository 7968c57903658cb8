"""What every command shares: settings or exit 2, consoles, JSON output, a database session."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import Enum
from typing import Any, NoReturn

import typer
from rich.console import Console
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from parcelwatch.config import ConfigError, Settings, load_settings
from parcelwatch.db import create_db_engine, make_session_factory, session_scope
from parcelwatch.errors import ServiceError
from parcelwatch.logs import configure_logging, register_settings_secrets

__all__ = [
    "DEMO_NOTE",
    "EXIT_CONFIG",
    "EXIT_ERROR",
    "carrier_settings",
    "command_transaction",
    "console",
    "database_session",
    "describe_database_error",
    "err_console",
    "fail",
    "print_json",
    "settings_or_exit",
]

console = Console()
err_console = Console(stderr=True)

EXIT_ERROR = 1
EXIT_CONFIG = 2


def settings_or_exit(*, quiet: bool = True, background_logs: bool = False) -> Settings:
    """Load the settings; on an invalid value print one line and exit with status 2.

    `quiet` commands (everything but the long-running ones) log warnings and errors only,
    unless LOG_LEVEL=debug asks for everything. The server logs in the `background`. Every
    secret the settings hold is redacted from the logs from here on."""
    try:
        settings = load_settings()
    except ConfigError as error:
        fail(str(error), EXIT_CONFIG)
    level = settings.log_level
    if quiet and level == "info":
        level = "warning"
    register_settings_secrets(settings)
    configure_logging(level, settings.log_format, background=background_logs)
    return settings


DEMO_NOTE = (
    "parcelwatch: demo mode: carriers are answered by the built-in emulator, as in the server; "
    "set carrier credentials (e.g. USPS_CLIENT_ID and USPS_CLIENT_SECRET) or "
    "PARCELWATCH_DEMO=false to go live"
)


@contextmanager
def carrier_settings(settings: Settings) -> Iterator[Settings]:
    """The settings a command asks carriers with, as the server does: on the database of a
    demo server, pointed at an emulator of the command's own that answers as the server's
    (saying so on standard error); otherwise `settings`."""
    from parcelwatch.demo import demo_beside_the_server

    with demo_beside_the_server(settings) as effective:
        if effective is not settings:
            typer.secho(DEMO_NOTE, err=True, fg="yellow")
        yield effective


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """One line on standard error (never wrapped, never a traceback), then exit."""
    typer.secho(f"parcelwatch: {message}", err=True, fg="red")
    raise typer.Exit(code)


def _default(value: object) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def print_json(document: object) -> None:
    """Write exactly one JSON document to standard output."""
    sys.stdout.write(json.dumps(document, default=_default, indent=2) + "\n")
    sys.stdout.flush()


@contextmanager
def database_session(settings: Settings, *, write: bool = False) -> Iterator[Session]:
    """One transaction on the configured database for a command; `write` when it may write
    (it then waits for a busy SQLite database instead of failing)."""
    engine = create_db_engine(settings.sqlalchemy_url)
    try:
        with session_scope(make_session_factory(engine), write=write) as session:
            yield session
    except DBAPIError as error:
        fail(describe_database_error(error), EXIT_CONFIG)
    finally:
        engine.dispose()


@contextmanager
def command_transaction(*, write: bool = False) -> Iterator[Session]:
    """A command's one transaction on the configured database: settings or exit 2, and a
    request the service refuses (`ServiceError`) is its message on one line and exit 1."""
    settings = settings_or_exit()
    try:
        with database_session(settings, write=write) as session:
            yield session
    except ServiceError as error:
        fail(error.detail)


def describe_database_error(error: DBAPIError) -> str:
    """One line for a database that cannot be used: not migrated, or not reachable. The
    driver's first line only (never the URL, which may hold a password)."""
    first = next(iter(str(error.orig).strip().splitlines()), "")
    if "no such table" in first or ("relation" in first and "does not exist" in first):
        return f"the database is not set up ({first}): run `parcelwatch db upgrade` first"
    return f"cannot use the database: {type(error.orig).__name__}: {first}"
