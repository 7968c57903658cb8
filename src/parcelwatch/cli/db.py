"""`parcelwatch db`: database migrations."""

from __future__ import annotations

import typer
from sqlalchemy.exc import DBAPIError

from parcelwatch.cli.common import (
    EXIT_CONFIG,
    console,
    describe_database_error,
    fail,
    settings_or_exit,
)
from parcelwatch.db import create_db_engine
from parcelwatch.migrate import current_revision, head_revision, upgrade

app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)


@app.command("upgrade")
def upgrade_command() -> None:
    """Apply every pending migration (also done automatically by `serve`)."""
    settings = settings_or_exit()
    engine = create_db_engine(settings.sqlalchemy_url)
    try:
        before = current_revision(engine)
        upgrade(engine)
        after = current_revision(engine)
    except DBAPIError as error:  # one line naming the database problem; no traceback
        fail(f"database upgrade failed: {describe_database_error(error)}", EXIT_CONFIG)
    except Exception as error:
        fail(f"database upgrade failed: {type(error).__name__}: {error}")
    finally:
        engine.dispose()
    if before == after:
        console.print(f"Database is up to date (revision {after}).")
    else:
        console.print(f"Database upgraded from {before or 'empty'} to {after}.")


@app.command("current")
def current_command() -> None:
    """Show the database's schema revision and the newest one this version knows."""
    settings = settings_or_exit()
    engine = create_db_engine(settings.sqlalchemy_url)
    try:
        console.print(f"current: {current_revision(engine) or 'empty'}  head: {head_revision()}")
    except DBAPIError as error:
        fail(describe_database_error(error), EXIT_CONFIG)
    finally:
        engine.dispose()
