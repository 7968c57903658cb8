"""Claims: two engines choosing at the same moment never lease one shipment twice, and an
engine that lost its whole choice to the other chooses again instead of ending its pass."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, select

from parcelwatch.config import Settings
from parcelwatch.domain import utcnow
from parcelwatch.lifecycle import Lifecycle
from parcelwatch.models import Shipment
from parcelwatch.sync import claims
from parcelwatch.sync.claims import ClaimedShipment, claim
from parcelwatch.sync.selection import Selection, claimable_filter
from tests.conftest import Database
from tests.sync.conftest import ShipmentFactory

LEASE = timedelta(minutes=10)


def test_an_engine_whose_choice_another_engine_leased_first_chooses_again(
    database: Database,
    sync_settings: Settings,
    add_shipment: ShipmentFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shipments = [add_shipment("ups") for _ in range(6)]
    now = utcnow()
    lifecycle = Lifecycle.from_settings(sync_settings, tracked=["ups"])
    where = claimable_filter(Selection(), now=now, lifecycle=lifecycle, carriers=["ups"])
    choose = claims._by_priority
    others: list[ClaimedShipment] = []
    raced = False

    def the_other_engine_claims_meanwhile(
        connection: Connection, where: Any, limit: int, order: Sequence[Any]
    ) -> list[ClaimedShipment]:
        nonlocal raced
        chosen = choose(connection, where, limit, order)
        if not raced:  # between this engine's choice and its lease
            raced = True
            others.extend(
                claim(database.engine, owner="other", where=where, limit=3, lease=LEASE, now=now)
            )
        return chosen

    monkeypatch.setattr(claims, "_by_priority", the_other_engine_claims_meanwhile)
    mine = claim(database.engine, owner="mine", where=where, limit=3, lease=LEASE, now=now)

    assert len(others) == 3
    assert len(mine) == 3
    assert {s.id for s in mine} | {s.id for s in others} == {s.id for s in shipments}
    with database.sessions() as session:
        owners = dict(session.execute(select(Shipment.id, Shipment.lease_owner)).all())
    assert sorted(owners.values()) == ["mine"] * 3 + ["other"] * 3
    assert all(owners[s.id] == "mine" for s in mine)
