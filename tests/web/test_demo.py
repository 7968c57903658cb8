"""Demo mode: when it turns on, what it seeds, where it points the carriers, its clock."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from parcelwatch.config import Settings, load_settings
from parcelwatch.demo import (
    DEMO_SHIPMENTS,
    LEAD,
    SPEED,
    DemoClock,
    demo_emulator_config,
    demo_requested,
    demo_settings,
    prepare_demo,
    seed_demo_shipments,
)
from parcelwatch.emulator.storylines import build_timeline
from parcelwatch.models import Shipment
from parcelwatch.shipments.service import register_shipment, update_shipment
from tests.conftest import Database


def _settings(**values: object) -> Settings:
    return load_settings(_env_file=None, **values)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, True),
        ({"parcelwatch_demo": False}, False),
        ({"usps_client_id": "id", "usps_client_secret": "secret"}, False),
        ({"shipengine_api_key": "key"}, False),
        ({"dhl_api_key": "key", "parcelwatch_demo": True}, True),
        ({"usps_client_id": "id"}, True),  # half a credential configures nothing
    ],
)
def test_the_demo_runs_only_without_carrier_credentials_unless_told(
    values: dict[str, object], expected: bool
) -> None:
    assert demo_requested(_settings(**values)) is expected


def test_demo_settings_point_every_carrier_at_the_emulator() -> None:
    settings = demo_settings(_settings(), "http://127.0.0.1:5555")

    assert settings.parcelwatch_demo is True
    assert settings.usps_base_url == "http://127.0.0.1:5555/usps"
    assert settings.shipengine_base_url == "http://127.0.0.1:5555/shipengine"
    assert not demo_requested(settings.model_copy(update={"parcelwatch_demo": None}))
    assert settings.usps_rate_limit >= 1
    assert settings.update_interval <= timedelta(seconds=20)


def test_seeding_the_demo_twice_registers_each_shipment_once(
    settings: Settings, database: Database
) -> None:
    first = seed_demo_shipments(settings)
    second = seed_demo_shipments(settings)

    with database.sessions() as session:
        count = session.scalar(select(func.count()).select_from(Shipment))
    assert count == len(DEMO_SHIPMENTS)
    assert first == second  # the demo's anchor survives restarts


def test_serve_with_no_credentials_tracks_the_demo_through_a_running_emulator(
    settings: Settings, database: Database
) -> None:
    with ExitStack() as stack:
        demo = prepare_demo(settings, stack=stack)
        answer = httpx.get(demo.usps_base_url.removesuffix("/usps") + "/_emulator/stats")

    assert demo.parcelwatch_demo is True
    assert answer.status_code == 200
    with database.sessions() as session:
        numbers = set(session.scalars(select(Shipment.tracking_number)))
    assert numbers == {item.tracking_number for item in DEMO_SHIPMENTS}


def test_serve_with_real_credentials_leaves_settings_and_database_alone(
    database: Database,
) -> None:
    real = load_settings(
        database_url=database.url.replace("postgresql+psycopg://", "postgresql://"),
        shipengine_api_key="real-key",
        _env_file=None,
    )

    assert prepare_demo(real) is real
    with database.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Shipment)) == 0


def test_turning_the_demo_off_removes_its_shipments_but_keeps_the_users(
    settings: Settings, database: Database
) -> None:
    seed_demo_shipments(settings)
    kept_demo = DEMO_SHIPMENTS[0]
    with database.sessions.begin() as session:
        register_shipment(session, tracking_number="1Z5R89390357567127", description="Mine")
        renamed = session.scalars(
            select(Shipment).where(Shipment.tracking_number == kept_demo.tracking_number)
        ).one()
        update_shipment(session, renamed.id, description="Actually my parcel")
    real = settings.model_copy(update={"shipengine_api_key": SecretStr("real-key")})

    assert prepare_demo(real) is real

    with database.sessions() as session:
        left = set(session.scalars(select(Shipment.tracking_number)))
    assert left == {"1Z5R89390357567127", kept_demo.tracking_number}


def test_the_demo_clock_runs_fast_but_never_ahead_of_real_time() -> None:
    anchor = datetime.now(UTC)
    config, clock = demo_emulator_config(anchor)

    assert config.epoch == anchor - LEAD
    assert clock.now() <= datetime.now(UTC)
    assert clock.now() >= anchor - LEAD - timedelta(minutes=1)
    late = DemoClock(speed=SPEED, start=datetime.now(UTC) + timedelta(days=3))
    assert late.now() <= datetime.now(UTC)


# Every hour of a week: deliveries keep to office hours, so where a milestone lands depends
# on the time of day (and the weekday) the demo is first seeded.
@pytest.mark.parametrize("hours", range(7 * 24))
def test_demo_storylines_put_each_milestone_inside_the_demo_window(hours: int) -> None:
    anchor = datetime(2026, 11, 30, 0, 17, tzinfo=UTC) + timedelta(hours=hours)
    config, _ = demo_emulator_config(anchor)
    assert config.epoch is not None
    for item in DEMO_SHIPMENTS:
        pin = config.pins[item.tracking_number]
        region = "eu" if item.carrier == "dhl" else "us"
        timeline = build_timeline(
            item.tracking_number, pin.storyline, config.epoch - pin.age, region=region, seed=7
        )
        milestone = next(e for e in timeline.events if e.kind is item.milestone)
        offset = milestone.at - config.epoch
        # Delivery windows (local office hours) may move a step by up to a day.
        if pin.age > timedelta(0):
            assert abs(offset - item.at) < timedelta(hours=24), item.description
        assert offset <= LEAD, item.description
