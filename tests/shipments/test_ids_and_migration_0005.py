"""Shipment ids are never given twice, and migration 0005 (webhook push ids; SQLite
AUTOINCREMENT) upgrades a 0004 database with data, keeping every row, on SQLite and
PostgreSQL."""

from __future__ import annotations

from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import Engine, inspect, text

from parcelwatch.migrate import alembic_config, current_revision, head_revision, upgrade

NUMBERS = ["1Z5R89390357567127", "9361289673090019555035", "771000000002"]


def test_a_deleted_shipments_id_is_never_given_again(api: TestClient) -> None:
    first = api.post("/api/shipments", json={"tracking_number": NUMBERS[0]}).json()
    newest = api.post("/api/shipments", json={"tracking_number": NUMBERS[1]}).json()
    assert api.delete(f"/api/shipments/{newest['id']}").status_code == 204
    later = api.post("/api/shipments", json={"tracking_number": NUMBERS[2]}).json()
    assert later["id"] > newest["id"] > first["id"]
    assert api.get(f"/api/shipments/{newest['id']}").status_code == 404


SHIPMENT = text(
    "INSERT INTO shipments (id, carrier, tracking_number, description, status,"
    " auto_refresh_count, auto_refresh_enabled, auto_refresh_fail_count, created_at,"
    " updated_at, next_check_at) VALUES (:id, 'ups', :number, :description, 'in_transit',"
    " 2, :enabled, 0, :at, :at, :at)"
)
EVENT = text(
    "INSERT INTO tracking_events (shipment_id, occurred_at, status, description, dedupe_key,"
    " created_at) VALUES (:shipment_id, :at, 'in_transit', :description, :key, :at)"
)
AT = "2026-11-30 10:00:00+00:00"


def _fill(engine: Engine) -> None:
    with engine.begin() as connection:
        for index, number in enumerate(NUMBERS, start=1):
            connection.execute(
                SHIPMENT,
                {
                    "id": index * 10,
                    "number": number,
                    "description": f"parcel {index}",
                    "enabled": index != 2,
                    "at": AT,
                },
            )
            for scan in range(3):
                connection.execute(
                    EVENT,
                    {
                        "shipment_id": index * 10,
                        "at": AT,
                        "description": f"scan {scan}",
                        "key": f"{index}-{scan}",
                    },
                )


def _contents(engine: Engine) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with engine.connect() as connection:
        shipments = connection.execute(
            text(
                "SELECT id, tracking_number, description, auto_refresh_enabled,"
                " auto_refresh_count FROM shipments ORDER BY id"
            )
        ).all()
        events = connection.execute(
            text("SELECT id, shipment_id, description, dedupe_key FROM tracking_events ORDER BY id")
        ).all()
    return [tuple(row) for row in shipments], [tuple(row) for row in events]


def test_upgrading_a_0004_database_with_data_keeps_every_row_and_id(
    empty_engine: Engine,
) -> None:
    upgrade(empty_engine, "0004")
    _fill(empty_engine)
    before = _contents(empty_engine)

    upgrade(empty_engine)

    assert current_revision(empty_engine) == head_revision()
    assert _contents(empty_engine) == before
    assert len(before[1]) == 9
    assert "webhook_pushes" in inspect(empty_engine).get_table_names()
    indexes = {index["name"] for index in inspect(empty_engine).get_indexes("shipments")}
    assert {"ix_shipments_due", "ix_shipments_carrier_due", "ix_shipments_tracking_number"} <= (
        indexes
    )
    with empty_engine.begin() as connection:
        if empty_engine.dialect.name == "sqlite":
            assert connection.execute(text("PRAGMA integrity_check")).scalar() == "ok"
            assert connection.execute(text("PRAGMA foreign_key_check")).all() == []
            schema = connection.execute(
                text("SELECT sql FROM sqlite_master WHERE name = 'shipments'")
            ).scalar()
            assert "AUTOINCREMENT" in str(schema)
        # The newest shipment deleted: its events go with it, and its id is not given again.
        connection.execute(text("DELETE FROM shipments WHERE id = 30"))
        remaining = connection.execute(text("SELECT count(*) FROM tracking_events")).scalar()
        assert remaining == 6
        new_id = connection.execute(
            text(
                "INSERT INTO shipments (carrier, tracking_number, status, auto_refresh_count,"
                " auto_refresh_enabled, auto_refresh_fail_count, created_at, updated_at)"
                " VALUES ('ups', '1Z999AA10123456784', 'pending', 0, true, 0, :at, :at)"
                " RETURNING id"
            ),
            {"at": AT},
        ).scalar()
    if empty_engine.dialect.name == "sqlite":
        assert new_id == 31
    else:
        assert new_id is not None  # the explicit ids above never advanced the sequence


def test_0005_downgrades_and_upgrades_again_keeping_the_data(empty_engine: Engine) -> None:
    upgrade(empty_engine, "0004")
    _fill(empty_engine)
    before = _contents(empty_engine)
    upgrade(empty_engine)

    config = alembic_config()
    with empty_engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0004")
    assert current_revision(empty_engine) == "0004"
    assert _contents(empty_engine) == before
    assert "webhook_pushes" not in inspect(empty_engine).get_table_names()
    upgrade(empty_engine)
    assert _contents(empty_engine) == before
