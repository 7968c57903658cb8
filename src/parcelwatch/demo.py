"""Demo mode: with no carrier credentials, `serve` runs the carrier emulator in-process and
tracks a handful of demo shipments whose storylines move through the statuses in minutes.

The decision: `PARCELWATCH_DEMO=true` forces it, `PARCELWATCH_DEMO=false` forbids it, and when
unset it is on exactly when no carrier API is configured. Setting real credentials turns it off.

The emulator runs on its own uvicorn thread on 127.0.0.1 with a free port (never reachable
from outside, whatever `--host` says), and every provider's base URL and credentials in the
`Settings` handed to `create_app` point at it. Its clock is mapped onto real time so the demo
survives restarts: emulated time starts `LEAD` behind the moment the demo was first seeded
and runs `SPEED` times faster until it catches up with real time, then runs at real speed, so
no event is ever stamped in the future. Demo shipments are pinned to storylines and ages that
put their next steps inside those first minutes.

That mapping is also why a command run beside the server (`parcelwatch sync`, `health`,
`carriers check`, `alert`) can start an emulator of its own on the demo's database and get the
server's answers: `demo_beside_the_server`.
"""

from __future__ import annotations

import atexit
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from pydantic import SecretStr
from sqlalchemy import make_url, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from parcelwatch.accounts.service import ensure_demo_account
from parcelwatch.carriers.providers import PROVIDERS
from parcelwatch.carriers.registry import budget, missing_credentials
from parcelwatch.config import Settings
from parcelwatch.db import create_db_engine, make_session_factory, session_scope
from parcelwatch.emulator import EmulatorClock, EmulatorConfig, create_emulator_app
from parcelwatch.emulator.config import Pin
from parcelwatch.emulator.server import run_in_thread
from parcelwatch.emulator.storylines import EventKind, Region, Storyline, build_timeline
from parcelwatch.logs import get_logger
from parcelwatch.models import Shipment
from parcelwatch.shipments import service

__all__ = [
    "DEMO_SHIPMENTS",
    "DemoShipment",
    "demo_beside_the_server",
    "demo_emulator_config",
    "demo_requested",
    "demo_settings",
    "prepare_demo",
    "remove_demo_shipments",
    "running_demo_anchor",
    "seed_demo_shipments",
]

log = get_logger(__name__)

LEAD: Final = timedelta(hours=36)  # emulated time starts this far behind real time
SPEED: Final = 240.0  # one emulated hour every 15 real seconds: caught up after ~9 minutes
SEED: Final = 7
DEMO_UPDATE_INTERVAL: Final = timedelta(seconds=20)
DEMO_SECRET: Final = "parcelwatch-demo"
DEMO_RATE: Final = 20.0  # emulator calls a second per provider


@dataclass(frozen=True, slots=True)
class DemoShipment:
    tracking_number: str
    carrier: str
    description: str
    storyline: Storyline
    # The step that should happen `at` emulated time after the demo's epoch (negative: before).
    milestone: EventKind
    at: timedelta


DEMO_SHIPMENTS: Final = (
    DemoShipment(
        "1Z999AA10123456784",
        "ups",
        "Trail running shoes",
        Storyline.NORMAL,
        EventKind.OUT_FOR_DELIVERY,
        timedelta(hours=3),
    ),
    DemoShipment(
        "9400111899223850000008",
        "usps",
        "Books for the book club",
        Storyline.NORMAL,
        EventKind.DELIVERED,
        timedelta(hours=22),
    ),
    DemoShipment(
        "771000000002",
        "fedex",
        '27" monitor',
        Storyline.FAILED_ATTEMPT,
        EventKind.DELIVERY_ATTEMPTED,
        timedelta(hours=8),
    ),
    DemoShipment(
        "3318810003",
        "dhl",
        "Camera lens from Berlin",
        Storyline.EXCEPTION,
        EventKind.HELD,
        timedelta(hours=14),
    ),
    DemoShipment(
        "9205590982952100000008",
        "usps",
        "Vinyl records",
        Storyline.AVAILABLE_FOR_PICKUP,
        EventKind.AVAILABLE_FOR_PICKUP,
        timedelta(hours=17),
    ),
    DemoShipment(
        "1Z12345E0398002219",
        "ups",
        "Coffee beans subscription",
        Storyline.NORMAL,
        EventKind.LABEL_CREATED,
        timedelta(hours=1),
    ),
    DemoShipment(
        "771000000013",
        "fedex",
        "Jacket (wrong size, returned)",
        Storyline.RETURN_TO_SENDER,
        EventKind.RETURNING,
        timedelta(hours=12),
    ),
    DemoShipment(
        "1ZW9R3020100000007",
        "ups",
        "Desk lamp",
        Storyline.NORMAL,
        EventKind.DELIVERED,
        timedelta(hours=-20),
    ),
)


def demo_requested(settings: Settings) -> bool:
    """PARCELWATCH_DEMO when set; otherwise on when no carrier API is configured."""
    if settings.parcelwatch_demo is not None:
        return settings.parcelwatch_demo
    return all(missing_credentials(spec, settings) for spec in PROVIDERS)


def _region(carrier: str) -> Region:
    return "eu" if carrier == "dhl" else "us"


def _age(item: DemoShipment, epoch: datetime) -> timedelta:
    """How far into its storyline the shipment starts, so its milestone falls at `item.at`.
    A storyline keeps deliveries to local office hours, so moving its start can move the
    milestone by up to a day: aim, look where it landed, and aim again (a few rounds)."""
    age = timedelta(0)
    for _ in range(4):
        timeline = build_timeline(
            item.tracking_number,
            item.storyline,
            epoch - age,
            region=_region(item.carrier),
            seed=SEED,
        )
        milestone = next(event for event in timeline.events if event.kind is item.milestone)
        late = milestone.at - epoch - item.at
        if late <= timedelta(0) or (milestone.at - epoch <= LEAD and late < timedelta(hours=1)):
            return age
        age += late
    return age


class DemoClock(EmulatorClock):
    """The emulator clock, never ahead of the real one: fast until it catches up, then real."""

    def now(self) -> datetime:
        return min(super().now(), datetime.now(UTC))


def demo_emulator_config(anchor: datetime) -> tuple[EmulatorConfig, DemoClock]:
    """The emulator configuration and clock for a demo first seeded at `anchor`."""
    now = datetime.now(UTC)
    epoch = anchor - LEAD
    emulated_now = min(now, epoch + (now - anchor) * SPEED)
    pins = {
        item.tracking_number: Pin(storyline=item.storyline, age=_age(item, epoch))
        for item in DEMO_SHIPMENTS
    }
    config = EmulatorConfig(seed=SEED, speed=SPEED, start=emulated_now, epoch=epoch, pins=pins)
    return config, DemoClock(speed=SPEED, start=emulated_now)


def demo_settings(settings: Settings, emulator_url: str) -> Settings:
    """`settings` with every provider pointed at the emulator and given dummy credentials."""
    update: dict[str, Any] = {
        "parcelwatch_demo": True,
        "tracking_api_provider": "auto",
        "update_interval": min(settings.update_interval, DEMO_UPDATE_INTERVAL),
    }
    for spec in PROVIDERS:
        for item in spec.credentials:
            update[item.setting] = SecretStr(DEMO_SECRET) if item.secret else DEMO_SECRET
        update[spec.base_url_setting] = f"{emulator_url}/{spec.code}"
        # The real APIs' budgets (USPS: 60 calls an hour) would make the demo crawl.
        update[spec.rate_setting] = max(budget(spec, settings)[1], DEMO_RATE)
    return settings.model_copy(update=update)


def seed_demo_shipments(settings: Settings) -> datetime:
    """Register the demo shipments (idempotent); return when the demo was first seeded."""
    engine = create_db_engine(settings.sqlalchemy_url)
    try:
        with session_scope(make_session_factory(engine), write=True) as session:
            for item in DEMO_SHIPMENTS:
                service.register_shipment(
                    session,
                    tracking_number=item.tracking_number,
                    carrier=item.carrier,
                    description=item.description,
                )
            ensure_demo_account(session)  # so a token can be made for it at once
            first = _first_seeded_at(session)
    finally:
        engine.dispose()
    return first or datetime.now(UTC)


def _first_seeded_at(session: Session) -> datetime | None:
    """The demo's anchor: when the first of its tracking numbers was registered."""
    numbers = [item.tracking_number for item in DEMO_SHIPMENTS]
    return session.scalars(
        select(Shipment.created_at)
        .where(Shipment.tracking_number.in_(numbers))
        .order_by(Shipment.created_at)
        .limit(1)
    ).first()


def _seeded(session: Session) -> list[Shipment]:
    """The shipments the demo seeded and nobody changed (same carrier, number, description)."""
    seeded = {(item.carrier, item.tracking_number, item.description) for item in DEMO_SHIPMENTS}
    candidates = session.scalars(
        select(Shipment).where(Shipment.tracking_number.in_([number for _, number, _ in seeded]))
    ).all()
    return [s for s in candidates if (s.carrier, s.tracking_number, s.description) in seeded]


def remove_demo_shipments(settings: Settings) -> int:
    """Delete the shipments the demo seeded (same carrier, number and description), so that
    once real carriers are configured their fake numbers are neither shown nor sent to the
    real APIs. A shipment the user registered or renamed is kept. Returns how many went."""
    engine = create_db_engine(settings.sqlalchemy_url)
    try:
        with session_scope(make_session_factory(engine), write=True) as session:
            demo = _seeded(session)
            for shipment in demo:
                service.delete_shipment(session, shipment.id)
            return len(demo)
    finally:
        engine.dispose()


_running = ExitStack()
atexit.register(_running.close)


def prepare_demo(settings: Settings, *, stack: ExitStack | None = None) -> Settings:
    """What `serve` calls before `create_app`: the settings unchanged when the demo is off;
    otherwise seeds the demo shipments, starts the emulator (stopped when `stack` closes,
    by default at exit) and returns the demo settings."""
    if not demo_requested(settings):
        removed = remove_demo_shipments(settings)
        if removed:
            log.info("demo mode is off: removed the demo shipments", count=removed)
        return settings
    anchor = seed_demo_shipments(settings)
    config, clock = demo_emulator_config(anchor)
    emulator = create_emulator_app(config, clock=clock)
    url = (stack or _running).enter_context(run_in_thread(app=emulator))
    log.warning(
        "demo mode: tracking demo shipments through the built-in carrier emulator",
        emulator=url,
        how_to_stop=(
            "set carrier credentials (e.g. USPS_CLIENT_ID and USPS_CLIENT_SECRET, or "
            "SHIPENGINE_API_KEY) or PARCELWATCH_DEMO=false and restart"
        ),
    )
    return demo_settings(settings, url)


def running_demo_anchor(settings: Settings) -> datetime | None:
    """The anchor of the demo `serve` runs on this database, or None when it runs none: demo
    mode is off, or no seeded demo shipment is there (the server never ran the demo here, or
    they were removed). Reads only: a database that is missing (a SQLite file is not created),
    unreachable or not migrated has no demo."""
    if not demo_requested(settings):
        return None
    url = make_url(settings.sqlalchemy_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        return None
    engine = create_db_engine(settings.sqlalchemy_url)
    try:
        with make_session_factory(engine)() as session:
            return _first_seeded_at(session) if _seeded(session) else None
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()


@contextmanager
def demo_beside_the_server(settings: Settings) -> Iterator[Settings]:
    """For a command that asks carriers (`sync`, `health`, `carriers check`, `alert`) on the
    database of a demo server: the server's emulator is in its own process, out of reach, so
    run the same one here. Same pins and seed, and a clock mapped onto real time from the same
    anchor, so it answers as the server's does. The settings unchanged when there is no demo."""
    anchor = running_demo_anchor(settings)
    if anchor is None:
        yield settings
        return
    config, clock = demo_emulator_config(anchor)
    with run_in_thread(app=create_emulator_app(config, clock=clock)) as url:
        yield demo_settings(settings, url)
