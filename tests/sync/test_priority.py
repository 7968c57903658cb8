"""Spending a short budget well, against the emulator: the likeliest changes first, in turns
across people, and a day's allowance paced across the day (the engine leaves what it cannot
afford yet due, and its store never lets the day run ahead of its even line)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from parcelwatch.accounts.roles import Role
from parcelwatch.accounts.service import create_user
from parcelwatch.api.app import create_app
from parcelwatch.carriers.quotas import parse_quota
from parcelwatch.domain import Location, ShipmentStatus, TrackEvent, TrackInfo, utcnow
from parcelwatch.models import Shipment
from parcelwatch.shipments.service import register_shipment
from parcelwatch.sync.budgets import (
    PACE_AHEAD,
    DatabaseBudgets,
    RedisBudgets,
    paced_allowance,
    reserve_in_db,
)
from parcelwatch.sync.limits import Budget, BudgetSpec, OutOfBudget
from parcelwatch.sync.priority import CheckPriority, ClassTurns, check_priority
from parcelwatch.sync.writer import apply_track_info
from tests.conftest import Browser, Database, browser_session
from tests.sync.conftest import reload, running_emulator
from tests.sync.test_budgets import REDIS_URL, separate_engine

pytestmark = pytest.mark.anyio

HEAD_START = timedelta(days=2)


def _learned(database: Database, shipment_id: int, status: ShipmentStatus, **info: object) -> None:
    """What a carrier push would have told (the writer's own path), then due again `since`."""
    when = utcnow() - timedelta(minutes=5)
    event = TrackEvent(
        occurred_at=when,
        status=status,
        description=status.value,
        location=Location(city="Memphis", state="TN", country="US"),
    )
    with database.sessions.begin() as session:
        apply_track_info(
            session,
            shipment_id,
            TrackInfo(status=status, events=(event,), **info),  # type: ignore[arg-type]
            "dhl",
        )


def _due_since(database: Database, ids: list[int], since: timedelta) -> None:
    with database.sessions.begin() as session:
        session.execute(
            update(Shipment)
            .where(Shipment.id.in_(ids))
            .values(next_check_at=utcnow() - since, last_auto_refresh=None)
        )


def _register(database: Database, number: str, *, owner_id: int | None = None) -> int:
    with database.sessions.begin() as session:
        shipment, _ = register_shipment(
            session, tracking_number=number, carrier="dhl", owner_id=owner_id
        )
        return shipment.id


def test_the_classes_follow_status_and_estimate() -> None:
    now = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
    tomorrow_evening = datetime(2026, 12, 8, 22, 0, tzinfo=UTC)
    later = datetime(2026, 12, 9, 1, 0, tzinfo=UTC)
    assert check_priority(ShipmentStatus.OUT_FOR_DELIVERY, None, now) is CheckPriority.URGENT
    assert check_priority(ShipmentStatus.EXCEPTION, later, now) is CheckPriority.URGENT
    assert check_priority(ShipmentStatus.AVAILABLE_FOR_PICKUP, None, now) is CheckPriority.URGENT
    assert check_priority(ShipmentStatus.DELIVERY_ATTEMPTED, None, now) is CheckPriority.URGENT
    in_transit = ShipmentStatus.IN_TRANSIT
    assert check_priority(in_transit, tomorrow_evening, now) is CheckPriority.ARRIVING
    assert check_priority(in_transit, now - timedelta(days=1), now) is CheckPriority.ARRIVING
    assert check_priority(in_transit, later, now) is CheckPriority.MOVING
    assert check_priority(in_transit, None, now) is CheckPriority.MOVING
    assert check_priority(ShipmentStatus.INFO_RECEIVED, None, now) is CheckPriority.WAITING
    assert check_priority(ShipmentStatus.PENDING, None, now) is CheckPriority.WAITING
    held_for_days = now - timedelta(days=3)
    exception = ShipmentStatus.EXCEPTION
    assert check_priority(exception, None, now, held_for_days) is CheckPriority.WAITING
    ofd = ShipmentStatus.OUT_FOR_DELIVERY
    assert check_priority(ofd, None, now, held_for_days) is CheckPriority.URGENT


async def test_a_short_budget_goes_to_the_likeliest_changes_first(database: Database) -> None:
    """Three calls left for nine due shipments: out for delivery, exception and the one
    arriving tomorrow are checked, though the label-created and in-transit ones waited
    longer; those wait for the next day."""
    numbers = {
        name: f"JD0146000{index:08d}"
        for index, name in enumerate(
            [
                "pending1",
                "pending2",
                "label",
                "transit1",
                "transit2",
                "arriving",
                "ofd",
                "held",
                "x",
            ]
        )
    }
    ids = {name: _register(database, number) for name, number in numbers.items()}
    tomorrow = utcnow() + timedelta(days=1)
    _learned(database, ids["label"], ShipmentStatus.INFO_RECEIVED)
    _learned(database, ids["transit1"], ShipmentStatus.IN_TRANSIT)
    _learned(database, ids["transit2"], ShipmentStatus.IN_TRANSIT)
    _learned(database, ids["arriving"], ShipmentStatus.IN_TRANSIT, estimated_delivery=tomorrow)
    _learned(database, ids["ofd"], ShipmentStatus.OUT_FOR_DELIVERY)
    _learned(database, ids["held"], ShipmentStatus.EXCEPTION)
    later = tomorrow + timedelta(days=3)
    _learned(database, ids["x"], ShipmentStatus.IN_TRANSIT, estimated_delivery=later)
    # The least likely to change have waited longest.
    _due_since(database, [ids["pending1"], ids["pending2"], ids["label"]], timedelta(hours=5))
    _due_since(database, [ids["transit1"], ids["transit2"], ids["x"]], timedelta(hours=3))
    _due_since(database, [ids["arriving"], ids["ofd"], ids["held"]], timedelta(minutes=1))

    quota = "3/day"
    with running_emulator(head_start=HEAD_START, quotas={"dhl": quota}) as emulator:
        settings = emulator.settings_for(database, dhl_quota=quota, dhl_max_concurrency=1)
        async with separate_engine(settings, database) as engine:
            summary = await engine.run_pass()
        stats = emulator.stats()
        polled = {name for name, number in numbers.items() if emulator.polls("dhl", number)}

    assert polled == {"ofd", "held", "arriving"}
    assert stats["rate_limited_total"] == 0
    assert (summary.synced, summary.waiting, summary.failed) == (3, 6, 0)
    assert reload(database, ids["pending1"]).auto_refresh_fail_count == 0


async def test_one_person_s_backlog_does_not_hold_up_another_s_shipments(
    database: Database,
) -> None:
    """Twelve of one person's shipments have been due for hours, two of another's just came
    due; four calls are left: each person gets two."""
    with database.sessions.begin() as session:
        heavy = create_user(session, name="heavy", role=Role.OWNER, password=None).id
        light = create_user(session, name="light", role=Role.MEMBER, password=None).id
    many = [_register(database, f"JD0146100{i:08d}", owner_id=heavy) for i in range(12)]
    few = [_register(database, f"JD0146200{i:08d}", owner_id=light) for i in range(2)]
    _due_since(database, many, timedelta(hours=6))
    _due_since(database, few, timedelta(seconds=1))

    quota = "4/day"
    with running_emulator(head_start=HEAD_START, quotas={"dhl": quota}) as emulator:
        settings = emulator.settings_for(database, dhl_quota=quota, dhl_max_concurrency=1)
        async with separate_engine(settings, database) as engine:
            await engine.run_pass()
        checked = [s for s in many + few if reload(database, s).last_auto_refresh is not None]
        assert emulator.stats()["rate_limited_total"] == 0

    assert set(few) <= set(checked)
    assert len(checked) == 4


async def test_a_paced_day_leaves_what_it_cannot_afford_yet_due(database: Database) -> None:
    """A day of 48 calls paced across it: a pass spends what the even line allows by now
    (an hour's worth ahead, at most), and the other shipments stay due as they were,
    neither deferred nor failed; the pass says when the next call may go."""
    ids = [_register(database, f"JD0146300{i:08d}") for i in range(40)]
    quota = "48/day"
    window = parse_quota(quota)[0]
    with running_emulator(head_start=HEAD_START, quotas={"dhl": quota}) as emulator:
        settings = emulator.settings_for(database, dhl_quota=quota, quota_pacing=True)
        lowest = paced_allowance(window, utcnow())
        async with separate_engine(settings, database) as engine:
            summary = await engine.run_pass()
        highest = paced_allowance(window, utcnow())
        stats = emulator.stats()

    spent = stats["requests"].get("dhl", 0)
    assert lowest <= spent <= highest
    assert stats["rate_limited_total"] == 0
    assert (summary.synced, summary.waiting, summary.deferred, summary.failed) == (spent, 0, 0, 0)
    if spent < len(ids):
        assert summary.paced_until["dhl"] > utcnow()
    with Browser(create_app(settings), browser_session(settings)) as client:
        page = client.get("/operations").text
    assert "by now" in page  # the even line beside what was spent
    left = [reload(database, i) for i in ids if reload(database, i).last_auto_refresh is None]
    assert len(left) == len(ids) - spent
    assert all(s.next_check_at is not None and s.lease_owner is None for s in left)


@pytest.mark.parametrize("store", ["database", pytest.param("redis", marks=pytest.mark.redis)])
async def test_a_daily_quota_is_spent_evenly_across_the_day(database: Database, store: str) -> None:
    """An engine that would spend all it can every minute of a simulated day, restarted
    once (a crash at 09:00): by every moment it has spent no more than the even line (plus
    half an hour's worth), and the day ends with the allowance spent, never more (what the
    crashed engine held, at most a chunk, is lost rather than spent twice)."""
    if store == "redis" and not REDIS_URL:
        pytest.skip("PARCELWATCH_TEST_REDIS_URL is not set")
    if store == "redis" and database.engine.dialect.name != "sqlite":
        pytest.skip("Redis once is enough")
    import redis.asyncio

    window = parse_quota("250/day@00:00Z")[0]
    day = datetime(2026, 12, 8, tzinfo=UTC)
    clock = [day]
    client = redis.asyncio.Redis.from_url(REDIS_URL) if store == "redis" else None
    if client is not None:
        stale = [key async for key in client.scan_iter("parcelwatch:budget:pace*")]
        if stale:
            await client.delete(*stale)

    async def in_db(function, *args, **kwargs):  # type: ignore[no-untyped-def]
        return function(*args, **kwargs)

    budgets = RedisBudgets(client) if client else DatabaseBudgets(database.engine, in_db)

    def engine_budget() -> Budget:
        return Budget(
            BudgetSpec(concurrency=1, rate=1000.0, windows=(window,), paced=True),
            provider="pace" + store,
            store=budgets,
            max_wait=0,
            now=lambda: clock[0],
        )

    budget = engine_budget()
    spent = 0
    try:
        for minute in range(24 * 60):
            clock[0] = day + timedelta(minutes=minute)
            if minute == 9 * 60:  # a crash and a restart: what it held is lost, not respent
                budget = engine_budget()
            while True:
                try:
                    async with budget.slot():
                        spent += 1
                except OutOfBudget as out:
                    refused_until = out.until
                    break
            assert refused_until > clock[0]
            elapsed = (minute + 1) / (24 * 60)
            assert spent <= min(250, int(250 * (elapsed + PACE_AHEAD)) + 1)
            if minute == 12 * 60:
                assert spent >= 250 / 2 - 1  # the line is followed, not lagged behind
    finally:
        if client is not None:
            await client.aclose()
    assert 250 - 2 <= spent <= 250
    if store == "database":
        refused = reserve_in_db(
            database.engine,
            provider="pacedatabase",
            windows=[window],
            wanted=1,
            now=day + timedelta(hours=23, minutes=59),
            paced=True,
        )
        assert (refused.granted, refused.paced, refused.until) == (0, False, day + timedelta(1))


def test_a_shipment_counts_in_the_turn_of_the_first_person_still_tracking_it(
    database: Database,
) -> None:
    from parcelwatch.accounts.service import delete_user

    with database.sessions.begin() as session:
        create_user(session, name="owner", role=Role.OWNER, password=None)
        first = create_user(session, name="first", role=Role.MEMBER, password=None).id
        second = create_user(session, name="second", role=Role.MEMBER, password=None).id
    shipment = _register(database, "JD014640000000001", owner_id=second)
    assert reload(database, shipment).check_owner == second
    assert _register(database, "JD014640000000001", owner_id=first) == shipment
    assert reload(database, shipment).check_owner == first
    with database.sessions.begin() as session:
        delete_user(session, "first")
    assert reload(database, shipment).check_owner == second


def test_classes_share_a_short_budget_by_weight_and_none_starves() -> None:
    turns, got = ClassTurns(), Counter[int]()
    for _ in range(150):  # a claim of one call at a time, every class always due
        first = turns.order()[0]
        got[first] += 1
        turns.took([first])
    assert [got[c] for c in CheckPriority] == [80, 40, 20, 10]
    # A class that had nothing due does not come back with saved-up turns.
    quiet = ClassTurns()
    for _ in range(30):
        quiet.took([CheckPriority.MOVING])
    quiet.took([CheckPriority.URGENT])
    assert quiet.passes[CheckPriority.URGENT] >= quiet.passes[CheckPriority.MOVING] - 1
