"""The fault matrix: the engine with the real carrier clients against the carrier emulator (on a
real port) under each fault the emulator injects, at a partial and a total rate. Every pass
finishes in bounded time, records its failures in the sync run, and no carrier-wide fault
disables a shipment; a carrier-wide pattern of malformed answers is the carrier's failure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from parcelwatch.config import Settings
from parcelwatch.domain import utcnow
from parcelwatch.models import Shipment, SyncRun
from parcelwatch.sync.outcomes import PassOutcome
from parcelwatch.sync.selection import Selection
from tests.conftest import Database
from tests.sync.conftest import Emulator, ShipmentFactory, engine_for, reload, running_emulator

pytestmark = pytest.mark.anyio

HEAD_START = timedelta(days=2)


def fast(emulator: Emulator, database: Database, **overrides: Any) -> Settings:
    """Settings against `emulator` with short timeouts, so a hung answer costs little."""
    values: dict[str, Any] = {
        "auto_update_individual_timeout": timedelta(seconds=0.3),
        "auto_update_batch_timeout": timedelta(seconds=5),
        "auto_update_batch_size": 2,
        **overrides,
    }
    return emulator.settings_for(database, **values)


def runs(database: Database) -> list[SyncRun]:
    with database.sessions() as session:
        found = list(session.scalars(select(SyncRun).order_by(SyncRun.id)))
        session.expunge_all()
        return found


def assert_none_disabled_nor_counted(database: Database, shipments: Sequence[Shipment]) -> None:
    now = utcnow()
    for shipment in shipments:
        after = reload(database, shipment.id)
        assert after.auto_refresh_enabled, after.last_auto_refresh_error
        assert after.auto_refresh_fail_count == 0, after.last_auto_refresh_error
        assert after.next_check_at is not None
        assert after.next_check_at.replace(tzinfo=now.tzinfo) > now  # deferred, not due at once


@pytest.mark.parametrize("carrier", ["ups", "fedex"])
async def test_a_storm_of_malformed_answers_for_12_passes_disables_no_shipment(
    database: Database, add_shipment: ShipmentFactory, carrier: str
) -> None:
    """Issue 12, defect 6: every answer malformed, pass after pass (each pass its own engine,
    as `parcelwatch sync` runs are). The carrier is failing, not its shipments."""
    faults = {"carriers": {carrier: {"malformed": 1.0}}}
    with running_emulator(head_start=HEAD_START, faults=faults) as emulator:
        settings = fast(emulator, database)
        shipments = [add_shipment(carrier) for _ in range(5)]
        outcomes = []
        for index in range(12):
            async with engine_for(settings, database) as engine:
                summary = await engine.run_pass(Selection(force=True))
                if index == 0:
                    assert engine.breaker_for(carrier).state == "open"  # as for an outage
            outcomes.append(summary.outcome)
            assert summary.failed == 0
            assert summary.deferred == 5
            assert summary.carriers_down.keys() == {carrier}

    assert outcomes == [PassOutcome.FAILED] * 12
    assert_none_disabled_nor_counted(database, shipments)
    recorded = runs(database)
    assert [run.outcome for run in recorded] == ["failed"] * 12
    for run in recorded:
        assert (run.checked, run.failed, run.updated) == (5, 5, 0)  # `failed` counts deferred
        assert any("carrier-wide failure" in error for error in run.errors), run.errors


@pytest.mark.parametrize("carrier", ["ups", "fedex"])
async def test_a_few_malformed_numbers_in_a_good_carrier_count_against_those_shipments(
    database: Database, add_shipment: ShipmentFactory, carrier: str
) -> None:
    """10% of the numbers always get a malformed answer: only those shipments count failures
    (and are disabled at AUTO_UPDATE_MAX_RETRIES=3); the others sync every pass."""
    shipments = [add_shipment(carrier) for _ in range(10)]
    bad = shipments[3]
    faults = {"malformed_numbers": [bad.tracking_number]}
    with running_emulator(head_start=HEAD_START, faults=faults) as emulator:
        settings = fast(emulator, database, auto_update_batch_size=10)
        outcomes = []
        for _ in range(3):
            async with engine_for(settings, database) as engine:
                summary = await engine.run_pass(Selection(force=True))
            outcomes.append(summary.outcome)
            assert summary.failed == 1
            assert summary.synced == 9

    assert outcomes == [PassOutcome.PARTIAL] * 3
    disabled = reload(database, bad.id)
    assert disabled.auto_refresh_enabled is False
    assert "disabled after 3 consecutive failures" in (disabled.last_auto_refresh_error or "")
    for shipment in shipments:
        if shipment.id != bad.id:
            after = reload(database, shipment.id)
            assert after.auto_refresh_fail_count == 0
            assert after.auto_refresh_count == 3
