"""Migration 0008 (trackers) upgrades a 0007 database with shipments and events: every
shipment is then tracked by the first account with its description, or, when there is no
account yet, by the owner once created; it downgrades again without losing a shipment. On
SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Engine, select, text

from parcelwatch.accounts.roles import Role
from parcelwatch.accounts.service import create_user
from parcelwatch.db import make_session_factory, session_scope
from parcelwatch.migrate import alembic_config, current_revision, head_revision, upgrade
from parcelwatch.models import Tracker
from tests.shipments.test_ids_and_migration_0005 import _contents, _fill

USER = text(
    "INSERT INTO users (id, name, role, created_at, updated_at)"
    " VALUES (:id, :name, :role, '2026-11-01 00:00:00+00:00', '2026-11-01 00:00:00+00:00')"
)


def _downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def _trackers(engine: Engine) -> list[tuple[int, int, str | None]]:
    with make_session_factory(engine)() as session:
        return [
            (tracker.user_id, tracker.shipment_id, tracker.description)
            for tracker in session.scalars(select(Tracker).order_by(Tracker.shipment_id))
        ]


def test_every_shipment_of_a_0007_database_is_tracked_by_the_first_account(
    empty_engine: Engine,
) -> None:
    upgrade(empty_engine, "0007")
    _fill(empty_engine)
    with empty_engine.begin() as connection:
        connection.execute(USER, {"id": 1, "name": "alice", "role": "owner"})
        connection.execute(USER, {"id": 2, "name": "sam", "role": "member"})
    before = _contents(empty_engine)
    upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision()
    assert _contents(empty_engine) == before  # every shipment and event, ids included
    assert _trackers(empty_engine) == [
        (1, 10, "parcel 1"),
        (1, 20, "parcel 2"),
        (1, 30, "parcel 3"),
    ]
    _downgrade(empty_engine, "0007")
    assert _contents(empty_engine) == before


def test_shipments_from_before_any_account_are_the_owners_once_created(
    empty_engine: Engine,
) -> None:
    upgrade(empty_engine, "0007")
    _fill(empty_engine)
    upgrade(empty_engine)
    assert _trackers(empty_engine) == []
    with session_scope(make_session_factory(empty_engine), write=True) as session:
        owner = create_user(session, name="alice", role=Role.OWNER, password=None)
        owner_id = owner.id
    assert [row[:2] for row in _trackers(empty_engine)] == [
        (owner_id, 10),
        (owner_id, 20),
        (owner_id, 30),
    ]
