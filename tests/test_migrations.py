"""Migrations: an empty database upgrades to head on SQLite and PostgreSQL, matching the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from parcelwatch.db import Base
from parcelwatch.migrate import current_revision, head_revision
from tests.conftest import Database


def test_an_empty_database_upgrades_to_the_newest_revision(database: Database) -> None:
    assert current_revision(database.engine) == head_revision()
    tables = set(inspect(database.engine).get_table_names())
    assert {"shipments", "tracking_events", "sync_runs"} <= tables


def test_the_migrated_schema_matches_the_models(database: Database) -> None:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_the_scheduler_due_index_exists(database: Database) -> None:
    indexes = {index["name"] for index in inspect(database.engine).get_indexes("shipments")}
    assert "ix_shipments_due" in indexes


def test_sqlite_connections_use_wal_a_busy_timeout_and_foreign_keys(database: Database) -> None:
    if database.dialect != "sqlite":
        return
    with database.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 30_000
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
