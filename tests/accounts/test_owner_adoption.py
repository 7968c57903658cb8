"""The owner, once created, tracks every shipment registered before there were accounts, however
many: past PostgreSQL's 65,535 parameters a statement, too."""

from __future__ import annotations

from sqlalchemy import func, insert, select

from parcelwatch.accounts.roles import Role
from parcelwatch.accounts.service import create_user
from parcelwatch.db import session_scope
from parcelwatch.domain import utcnow
from parcelwatch.models import Shipment, Tracker
from tests.conftest import Database

MANY = 70_000


def test_the_owner_adopts_more_shipments_than_a_statement_takes_parameters(
    database: Database,
) -> None:
    now = utcnow()
    with database.engine.begin() as connection:
        connection.execute(
            insert(Shipment),
            [
                {
                    "carrier": "ups",
                    "tracking_number": f"1ZOLD{n:013d}",
                    "status": "pending",
                    "created_at": now,
                    "updated_at": now,
                }
                for n in range(MANY)
            ],
        )
    with session_scope(database.sessions, write=True) as session:
        owner = create_user(session, name="owner", role=Role.OWNER, password=None)
        owner_id = owner.id
    with database.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Tracker)) == MANY
        owners = session.execute(
            select(Shipment.check_owner, func.count()).group_by(Shipment.check_owner)
        ).all()
    assert owners == [(owner_id, MANY)]
