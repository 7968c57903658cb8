"""The fault matrix: the engine with the real carrier clients against the carrier emulator (on a
real port) under each fault the emulator injects, at a partial and a total rate. Every pass
finishes in bounded time, records its failures in the sync run, and no carrier-wide fault
disables a shipment; a carrier-wide pattern of malformed answers is the carrier's failure."""

from __future__ import annotations

import time
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
        "auto_update_individual_timeout": timedelta(seconds=0.5),
        "auto_update_batch_timeout": timedelta(seconds=5),
        "auto_update_batch_size": 2,
        "usps_batch_size": 2,  # USPS's own setting sizes its v3r2 batches
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


async def test_a_fedex_batch_answered_only_with_garbage_is_not_split_to_the_end(
    database: Database, add_shipment: ShipmentFactory
) -> None:
    """Most of a batch failing the same way is the carrier's failure: after three numbers
    on their own failed alike (none answered) the rest of the batch is deferred unasked."""
    shipments = [add_shipment("fedex") for _ in range(10)]
    faults = {"carriers": {"fedex": {"malformed": 1.0}}}
    with running_emulator(head_start=HEAD_START, faults=faults) as emulator:
        settings = fast(emulator, database, auto_update_batch_size=10)
        async with engine_for(settings, database) as engine:
            summary = await engine.run_pass()
        stats = emulator.stats()

    tracking_requests = stats["requests"]["fedex"] - stats["tokens_issued"]["fedex"]
    assert tracking_requests == 4 + 3 * 4  # the batch and three numbers, each with 3 retries
    assert (summary.deferred, summary.failed) == (10, 0)
    assert_none_disabled_nor_counted(database, shipments)


async def test_the_updater_s_small_passes_see_a_storm_seen_by_earlier_passes(
    database: Database, add_shipment: ShipmentFactory
) -> None:
    """One engine remembers a provider's recent answers across its passes: a pass that polls
    a single shipment during a storm defers it, as the bigger pass before it did. A fresh
    engine (a new `sync` process) with that single failure counts it: it may be the number's."""
    shipments = [add_shipment("ups") for _ in range(5)]
    faults = {"carriers": {"ups": {"malformed": 1.0}}}
    alone = Selection(shipment_ids=[shipments[0].id])
    with running_emulator(head_start=HEAD_START, faults=faults) as emulator:
        settings = fast(emulator, database)
        async with engine_for(settings, database) as engine:
            first = await engine.run_pass(Selection(force=True))
            engine.breaker_for("ups").record_success()  # the cool-down is over
            second = await engine.run_pass(alone)
        assert (first.deferred, second.deferred, second.failed) == (5, 1, 0)
        assert_none_disabled_nor_counted(database, shipments)

        async with engine_for(settings, database) as fresh:
            third = await fresh.run_pass(alone)
    assert third.failed == 1
    assert reload(database, shipments[0].id).auto_refresh_fail_count == 1


# -- the matrix ------------------------------------------------------------------------------
PARTIAL, TOTAL = 0.25, 1.0
CARRIERS = {"usps": 8, "ups": 4, "fedex": 8}  # USPS and FedEx in batches of 2: four batches
SHIPMENTS = sum(CARRIERS.values())
CLOSED, OPEN, OPEN_FOR_AUTH = "closed", "open", "open for refused credentials"


def injected(fault: str, rate: float) -> dict[str, Any]:
    """The emulator configuration for `fault` at `rate` (of tracking requests; for refused
    credentials `PARTIAL` means one carrier of three refuses, `TOTAL` all of them)."""
    if fault == "rate_limited":  # 429 with Retry-After once the bucket is empty
        per_second = 3.0 if rate < 1 else 0.001
        return {"rate_limits": dict.fromkeys(CARRIERS, per_second)}
    if fault == "refused_credentials":
        if rate < 1:
            return {"credentials": {"ups": {"client_id": "not-ours", "client_secret": "x"}}}
        return {"reject_credentials": True}
    return {"faults": {fault: rate, "timeout_seconds": 2.0}}


# What the breaker of a carrier hit by the fault does; None: it may go either way.
BREAKER: dict[tuple[str, float], str | None] = {
    ("server_error", PARTIAL): CLOSED,  # retries absorb most; a rare loss is one deferral
    ("server_error", TOTAL): OPEN,
    ("timeout", PARTIAL): None,
    ("timeout", TOTAL): OPEN,
    ("rate_limited", PARTIAL): None,
    ("rate_limited", TOTAL): OPEN,
    ("connection_reset", PARTIAL): CLOSED,
    ("connection_reset", TOTAL): OPEN,
    ("malformed", PARTIAL): CLOSED,
    ("malformed", TOTAL): OPEN,
    ("token_expiry", PARTIAL): CLOSED,
    ("token_expiry", TOTAL): OPEN,  # counted like an outage: not the 15-minute auth pause
    ("refused_credentials", PARTIAL): OPEN_FOR_AUTH,
    ("refused_credentials", TOTAL): OPEN_FOR_AUTH,
}


@pytest.mark.parametrize("rate", [PARTIAL, TOTAL], ids=["partial", "total"])
@pytest.mark.parametrize(
    "fault",
    [
        "server_error",
        "timeout",
        "rate_limited",
        "connection_reset",
        "malformed",
        "token_expiry",
        "refused_credentials",
    ],
)
async def test_a_fault_ends_the_pass_in_bounded_time_recorded_and_disabling_nobody(
    database: Database, add_shipment: ShipmentFactory, fault: str, rate: float
) -> None:
    shipments = [add_shipment(carrier) for carrier, count in CARRIERS.items() for _ in range(count)]
    hit = {"ups"} if (fault, rate) == ("refused_credentials", PARTIAL) else set(CARRIERS)
    with running_emulator(head_start=HEAD_START, **injected(fault, rate)) as emulator:
        settings = fast(emulator, database)
        async with engine_for(settings, database) as engine:
            started = time.monotonic()
            summary = await engine.run_pass()
            seconds = time.monotonic() - started
            breakers = {code: engine.breaker_for(code) for code in CARRIERS}

    assert seconds < 15, f"the pass took {seconds:.1f}s"
    assert summary.checked == SHIPMENTS
    assert summary.synced + summary.failed + summary.deferred == SHIPMENTS
    assert summary.disabled == 0
    for shipment in shipments:
        after = reload(database, shipment.id)
        assert after.auto_refresh_enabled, after.last_auto_refresh_error
        if fault != "malformed" or rate == TOTAL:  # carrier-wide: never the shipment's
            assert after.auto_refresh_fail_count == 0, after.last_auto_refresh_error
    if rate == TOTAL:
        assert summary.outcome is not PassOutcome.OK
        assert summary.synced < SHIPMENTS
    if summary.failed or summary.deferred:
        assert summary.outcome in (PassOutcome.PARTIAL, PassOutcome.FAILED)
    if summary.synced == 0:
        assert summary.outcome is PassOutcome.FAILED
        assert summary.carriers_down.keys() == hit

    [run] = runs(database)
    assert run.outcome == summary.outcome
    assert run.checked == SHIPMENTS
    assert run.failed == summary.failed + summary.deferred
    assert bool(run.errors) == bool(summary.failed or summary.deferred)

    expected = BREAKER[(fault, rate)]
    for code in hit:
        breaker = breakers[code]
        if expected == CLOSED:
            assert breaker.state == "closed", (code, breaker.last_error)
        elif expected == OPEN:
            assert breaker.state == "open", code
            if fault != "rate_limited":  # which waits at least the carrier's Retry-After
                assert breaker.retry_in() <= breaker.policy.cooldown  # an outage's cool-down
        elif expected == OPEN_FOR_AUTH:
            assert breaker.state == "open", code
            assert breaker.retry_in() > breaker.policy.cooldown
    for code in set(CARRIERS) - hit:
        assert breakers[code].state == "closed"
