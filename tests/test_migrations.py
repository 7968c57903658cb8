"""Migrations: an empty database upgrades to head on SQLite and PostgreSQL, matching the models."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from typer.testing import CliRunner

from parcelwatch.cli.main import app
from parcelwatch.db import Base
from parcelwatch.migrate import current_revision, head_revision
from tests.conftest import Database, serve_process


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


def test_db_upgrade_migrates_an_empty_database_then_says_it_is_up_to_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")
    runner = CliRunner()

    first = runner.invoke(app, ["db", "upgrade"])
    again = runner.invoke(app, ["db", "upgrade"])
    current = runner.invoke(app, ["db", "current"])

    assert first.exit_code == 0, first.output
    assert f"Database upgraded from empty to {head_revision()}" in first.output
    assert again.exit_code == 0
    assert "up to date" in again.output
    assert f"current: {head_revision()}  head: {head_revision()}" in current.output


def test_db_upgrade_on_an_unreachable_database_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://parcel:hunter2secret@127.0.0.1:1/parcelwatch")

    result = CliRunner().invoke(app, ["db", "upgrade"])

    assert result.exit_code == 2
    assert result.output.startswith("parcelwatch: database upgrade failed: cannot use the database")
    assert len(result.output.strip().splitlines()) == 1
    assert "hunter2secret" not in result.output


def test_serve_upgrades_an_empty_database_before_it_answers(tmp_path: Path) -> None:
    database = tmp_path / "served.db"
    env = {
        "DATABASE_URL": f"sqlite:///{database}",
        "AUTO_UPDATE_ENABLED": "false",
        "PARCELWATCH_DEMO": "false",
        "ADMIN_API_KEY": "served-admin-key",
    }
    with serve_process(env, cwd=tmp_path) as server:
        auth = {"Authorization": "Bearer served-admin-key"}
        answer = httpx.get(f"{server.url}/api/shipments", headers=auth, timeout=5)
        assert answer.status_code == 200
        assert answer.json()["items"] == []
        setup = httpx.get(f"{server.url}/", timeout=5)
        assert setup.status_code == 303
        assert setup.headers["location"] == "/setup"
    assert server.returncode == 0
    # No account yet: the log says how to make the owner, with this run's setup code.
    assert "no owner account yet" in server.output
    assert "setup_code=" in server.output
    engine = create_engine(f"sqlite:///{database}")
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
