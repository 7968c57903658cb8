"""Triggers and outcomes are enums in code and the same plain strings in storage and output."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from parcelwatch.models import SyncRun
from parcelwatch.sync.outcomes import PassOutcome, PassTrigger, ShipmentOutcome
from tests.conftest import Database
from tests.sync.conftest import EngineFactory, ShipmentFactory

pytestmark = pytest.mark.anyio


def test_the_enums_keep_the_strings_stored_in_sync_runs_and_shown_by_the_cli() -> None:
    assert [t.value for t in PassTrigger] == ["sync", "sync-force", "updater", "manual", "bench"]
    assert [o.value for o in PassOutcome] == [
        "running",
        "ok",
        "partial",
        "failed",
        "stopped",
        "error",
        "abandoned",
    ]
    assert [o.value for o in ShipmentOutcome] == [
        "updated",
        "unchanged",
        "expired",
        "not_found",
        "failed",
        "disabled",
        "deferred",
    ]
    assert f"{PassOutcome.PARTIAL:8}|{PassTrigger.SYNC_FORCE}" == "partial |sync-force"


async def test_a_pass_stores_and_reports_its_trigger_and_outcomes_as_plain_strings(
    database: Database, make_engine: EngineFactory, add_shipment: ShipmentFactory
) -> None:
    shipment = add_shipment("ups")
    summary = await make_engine(record_outcomes=True).run_pass(trigger=PassTrigger.SYNC_FORCE)
    assert summary.outcome is PassOutcome.OK
    assert summary.outcomes == {shipment.id: ShipmentOutcome.UPDATED}
    with database.sessions() as session:
        run = session.scalars(select(SyncRun)).one()
        assert (type(run.trigger), type(run.outcome)) == (str, str)
        assert (run.trigger, run.outcome) == ("sync-force", "ok")
    data = json.loads(json.dumps(summary.as_dict(), default=str))
    assert (data["trigger"], data["outcome"]) == ("sync-force", "ok")
    assert data["outcomes"] == {str(shipment.id): "updated"}
