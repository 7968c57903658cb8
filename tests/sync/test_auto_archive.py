"""AUTO_ARCHIVE_DAYS: after a pass, every tracker of a shipment delivered more than that many
days ago leaves its person's list, unless they restored it by hand."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from parcelwatch.accounts.roles import Role
from parcelwatch.accounts.service import create_user
from parcelwatch.domain import ShipmentStatus, utcnow
from parcelwatch.models import Tracker
from parcelwatch.shipments.service import update_shipment
from parcelwatch.shipments.trackers import Viewer, archive_delivered
from tests.conftest import Database
from tests.sync.conftest import EngineFactory, ShipmentFactory

pytestmark = pytest.mark.anyio


def _archived(database: Database) -> dict[int, bool]:
    with database.sessions() as session:
        return {
            tracker.shipment_id: tracker.archived_at is not None
            for tracker in session.scalars(select(Tracker))
        }


async def test_a_pass_archives_shipments_delivered_longer_ago_than_the_setting(
    database: Database, make_engine: EngineFactory, add_shipment: ShipmentFactory
) -> None:
    long_ago = add_shipment(
        status=ShipmentStatus.DELIVERED,
        delivered_at=utcnow() - timedelta(days=8),
        next_check_at=None,
    )
    recent = add_shipment(
        status=ShipmentStatus.DELIVERED,
        delivered_at=utcnow() - timedelta(days=2),
        next_check_at=None,
    )
    moving = add_shipment(status=ShipmentStatus.IN_TRANSIT, next_check_at=None)
    with database.sessions.begin() as session:
        create_user(session, name="alice", role=Role.OWNER, password=None)  # adopts all three
    await make_engine().run_pass()
    assert _archived(database) == {long_ago.id: True, recent.id: False, moving.id: False}


def test_a_tracker_restored_by_hand_is_not_archived_again(
    database: Database, add_shipment: ShipmentFactory
) -> None:
    shipment = add_shipment(
        status=ShipmentStatus.DELIVERED,
        delivered_at=utcnow() - timedelta(days=30),
        next_check_at=None,
    )
    with database.sessions.begin() as session:
        owner = create_user(session, name="alice", role=Role.OWNER, password=None)
        viewer = Viewer(user_id=owner.id, everyone=True)
    assert archive_delivered(database.engine, days=7) == 1
    with database.sessions.begin() as session:
        update_shipment(session, shipment.id, archived=False, viewer=viewer)
    assert archive_delivered(database.engine, days=7) == 0
    assert _archived(database) == {shipment.id: False}
