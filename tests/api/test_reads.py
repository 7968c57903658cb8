"""Requests that only read: outside a transaction on PostgreSQL, on connections that stay
open, so the statements the API runs again and again are prepared once per connection."""

from __future__ import annotations

from contextlib import ExitStack

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert, text

from parcelwatch.api.deps import REQUEST_TRANSACTIONS
from parcelwatch.db import create_db_engine, for_reading, make_session_factory
from parcelwatch.models import TrackerLabel
from tests.conftest import Database


def prepared_statements(engine: Engine) -> list[str]:
    """The statements prepared on every connection the engine's pool holds."""
    held = engine.pool.checkedin()  # type: ignore[attr-defined]
    found: list[str] = []
    with ExitStack() as stack:
        for _ in range(held):  # all at once: each a different connection
            connection = stack.enter_context(engine.connect())
            query = text("SELECT statement FROM pg_prepared_statements")
            found.extend(connection.execute(query).scalars())
    return found


def test_repeated_reads_on_postgresql_are_prepared_once_and_kept(
    api: TestClient, database: Database
) -> None:
    """psycopg prepares a statement on its fifth run on a connection and forgets all it
    prepared at a rollback: when every read ended with one, nothing the API read was ever
    prepared, and PostgreSQL parsed and planned each read afresh."""
    if database.dialect != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    created = api.post("/api/shipments", json={"tracking_number": "1Z5R89390357567127"})
    shipment_id = created.json()["id"]
    for _ in range(8):
        assert api.get(f"/api/shipments/{shipment_id}").status_code == 200
        assert api.get("/api/shipments").status_code == 200

    statements = prepared_statements(api.app.state.database)  # type: ignore[attr-defined]
    assert any("WHERE shipments.id =" in statement for statement in statements)


def test_a_read_only_session_refuses_to_write(database: Database) -> None:
    """On PostgreSQL a read-only session commits each statement as it runs: a write through
    it could not be undone with the rest of a request, so none is let through."""
    reading = for_reading(database.engine)
    if database.dialect != "postgresql":
        assert reading is database.engine  # one transaction a request, as before
        return
    with make_session_factory(reading)() as session:
        assert session.execute(text("SELECT 1")).scalar() == 1
        with pytest.raises(RuntimeError, match="read-only session was asked to write"):
            session.execute(insert(TrackerLabel).values(tracker_id=1, name="never"))


def test_a_process_keeps_a_connection_for_each_request_transaction(database: Database) -> None:
    """The request transactions open at once, and the updater's beside them, each find a
    pooled connection instead of opening one and closing it after (SQLAlchemy's default
    kept 5: on PostgreSQL that was a new server process for most requests under load)."""
    engine = create_db_engine(database.url)
    try:
        assert engine.pool.size() > REQUEST_TRANSACTIONS  # type: ignore[attr-defined]
    finally:
        engine.dispose()
