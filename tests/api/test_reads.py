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
from parcelwatch.sync.control import is_paused
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


def drop_pooled_connections(engine: Engine) -> int:
    """What a restart of the PostgreSQL server does to the connections the app's pool holds:
    the server ends each (the app does not know until it next uses one). How many."""
    pids = []
    with ExitStack() as stack:
        for _ in range(engine.pool.checkedin()):  # type: ignore[attr-defined]
            connection = stack.enter_context(engine.connect())
            pids.append(connection.connection.dbapi_connection.info.backend_pid)  # type: ignore[union-attr]
    admin = create_db_engine(engine.url.render_as_string(hide_password=False))
    try:
        with admin.connect() as connection:
            for pid in pids:
                connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        admin.dispose()
    return len(pids)


@pytest.fixture
def on_postgresql(database: Database) -> None:
    if database.dialect != "postgresql":
        pytest.skip("the PostgreSQL server ends connections; a SQLite file has none to end")


@pytest.mark.usefixtures("on_postgresql")
def test_a_read_is_answered_though_the_server_dropped_the_connection_it_was_given(
    api: TestClient,
) -> None:
    """A connection used moments ago is trusted without a ping; when the server has dropped
    it since, the read runs again on a new one."""
    created = api.post("/api/shipments", json={"tracking_number": "1Z5R89390357567127"})
    shipment_id = created.json()["id"]
    assert api.get(f"/api/shipments/{shipment_id}").status_code == 200
    assert drop_pooled_connections(api.app.state.database) >= 1  # type: ignore[attr-defined]

    again = api.get(f"/api/shipments/{shipment_id}")
    assert again.status_code == 200
    assert again.json()["tracking_number"] == "1Z5R89390357567127"


@pytest.mark.usefixtures("on_postgresql")
def test_a_write_on_a_dropped_connection_answers_503_and_the_next_one_works(
    api: TestClient,
) -> None:
    """Not 500: the client is told to try again shortly, and nothing was half-written."""
    assert api.get("/api/shipments").status_code == 200
    drop_pooled_connections(api.app.state.database)  # type: ignore[attr-defined]

    refused = api.post("/api/shipments", json={"tracking_number": "1Z5R89390357567127"})
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "2"
    assert "database is not answering" in refused.json()["detail"]
    assert "terminat" not in refused.text  # the server's own words stay out

    assert api.get("/api/shipments").json()["items"] == []
    retried = api.post("/api/shipments", json={"tracking_number": "1Z5R89390357567127"})
    assert retried.status_code == 201


@pytest.mark.usefixtures("on_postgresql")
def test_a_connection_idle_a_while_is_pinged_before_use(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past `PING_AFTER_IDLE_S` the pool checks a connection first, so neither a read nor a
    write meets the dropped one."""
    monkeypatch.setattr("parcelwatch.db.PING_AFTER_IDLE_S", 0.0)
    assert api.get("/api/shipments").status_code == 200
    drop_pooled_connections(api.app.state.database)  # type: ignore[attr-defined]

    created = api.post("/api/shipments", json={"tracking_number": "1Z5R89390357567127"})
    assert created.status_code == 201


def test_a_background_read_keeps_the_connections_prepared_statements(database: Database) -> None:
    """The updater's look at the pause, the dispatcher's at the next delivery: reads run every
    second or so, each ending a transaction with a rollback, which made psycopg forget every
    statement prepared on that pooled connection (the API's with them)."""
    if database.dialect != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    engine = create_db_engine(database.url, pool_size=1, max_overflow=0)
    try:
        for _ in range(6):
            assert is_paused(engine) is False
        assert any("sync_control" in statement for statement in prepared_statements(engine))
    finally:
        engine.dispose()


def test_every_operation_documents_503_for_a_database_that_does_not_answer(
    api: TestClient,
) -> None:
    document = api.get("/openapi.json").json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method == "options":  # answered before any route, with no database
                assert "503" not in operation["responses"], path
                continue
            answer = operation["responses"]["503"]
            assert answer["headers"]["Retry-After"], (method, path)
            assert "the database is not answering" in answer["description"], (method, path)
            if path != "/api/health":  # its own 503 is the health report (critical)
                problem = answer["content"]["application/json"]["schema"]["$ref"]
                assert problem.endswith("/Problem"), (method, path)
