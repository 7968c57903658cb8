"""Fixtures for notification tests: people, their shipments and channels made through the
services; a stand-in for the dispatcher that records an attempt the way it would; outbox rows
written as the enqueue writes them; and real receivers on 127.0.0.1: an HTTP server that
verifies Standard Webhooks signatures with `svix`, and aiosmtpd."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from svix.webhooks import Webhook, WebhookVerificationError

from parcelwatch.accounts.roles import Role
from parcelwatch.accounts.service import create_user
from parcelwatch.config import Settings, load_settings
from parcelwatch.domain import ShipmentStatus, utcnow
from parcelwatch.models import (
    DeliveryAttempt,
    Notification,
    NotificationChannel,
    NotificationDelivery,
    Shipment,
    Tracker,
    User,
)
from parcelwatch.notifications.dispatcher import Dispatcher, DispatcherOptions
from parcelwatch.notifications.events import DEFAULT_EVENT_TYPES, PAYLOAD_VERSION, EventType
from parcelwatch.notifications.outbox import new_message_id
from parcelwatch.shipments.service import register_shipment
from tests.conftest import Database
from tests.ops.conftest import Mailbox, serve_mailbox


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


# -- people, trackers, channels, outbox rows ------------------------------------------------


@dataclass
class Person:
    id: int
    name: str


@dataclass
class World:
    """What a test builds on: people with trackers and channels, and the outbox."""

    database: Database
    numbers: Iterator[int] = field(default_factory=lambda: iter(range(1, 1_000_000)))

    def person(self, name: str, role: Role = Role.MEMBER) -> Person:
        """An account made by the account service (the first one must be the owner)."""
        with self.database.sessions.begin() as session:
            user = create_user(session, name=name, role=role, password=None)
            return Person(user.id, user.name)

    def tracker(self, person: Person, description: str = "Running shoes") -> int:
        number = f"1ZNOTIFY{next(self.numbers):010d}"
        with self.database.sessions.begin() as session:
            shipment, _ = register_shipment(
                session,
                tracking_number=number,
                carrier="ups",
                description=description,
                owner_id=person.id,
            )
            tracker = session.query(Tracker).filter_by(shipment_id=shipment.id).one()
            return tracker.id

    def channel(
        self, person: Person, kind: str, target: str, *, name: str | None = None, **fields: Any
    ) -> int:
        if kind == "webhook":
            fields.setdefault("secret", new_secret())
        with self.database.sessions.begin() as session:
            channel = NotificationChannel(
                user_id=person.id,
                kind=kind,
                name=name or f"my {kind}",
                target=target,
                event_types=[t.value for t in EventType],
                **fields,
            )
            session.add(channel)
            session.flush()
            return channel.id

    def notify(
        self,
        tracker_id: int,
        channel_ids: list[int],
        *,
        event_type: EventType = EventType.OUT_FOR_DELIVERY,
        due: datetime | None = None,
        created_at: datetime | None = None,
        status: ShipmentStatus = ShipmentStatus.OUT_FOR_DELIVERY,
    ) -> list[str]:
        """A milestone of `tracker_id`'s shipment queued to `channel_ids` as the enqueue
        writes it (payload per the contract, one pending delivery per channel); the
        deliveries' message ids."""
        now = created_at or utcnow()
        with self.database.sessions.begin() as session:
            tracker = session.get(Tracker, tracker_id)
            assert tracker is not None
            shipment = session.get(Shipment, tracker.shipment_id)
            assert shipment is not None
            shipment.status = status
            notification = Notification(
                user_id=tracker.user_id,
                tracker_id=tracker.id,
                shipment_id=shipment.id,
                event_type=event_type.value,
                dedupe_key=f"{event_type.value}:{tracker.id}:{secrets.token_hex(4)}",
                urgent=False,
                payload=payload_of(shipment, tracker, event_type, now),
                created_at=now,
            )
            session.add(notification)
            session.flush()
            ids = []
            for channel_id in channel_ids:
                message_id = new_message_id()
                session.add(
                    NotificationDelivery(
                        notification_id=notification.id,
                        channel_id=channel_id,
                        message_id=message_id,
                        status="pending",
                        attempts=0,
                        next_attempt_at=due or now,
                        created_at=now,
                    )
                )
                ids.append(message_id)
        return ids

    def deliveries(self) -> list[NotificationDelivery]:
        with self.database.sessions() as session:
            return list(session.query(NotificationDelivery).order_by(NotificationDelivery.id))

    def delivery(self, message_id: str) -> NotificationDelivery:
        with self.database.sessions() as session:
            return session.query(NotificationDelivery).filter_by(message_id=message_id).one()

    def channel_row(self, channel_id: int) -> NotificationChannel:
        with self.database.sessions() as session:
            found = session.get(NotificationChannel, channel_id)
            assert found is not None
            return found


def payload_of(
    shipment: Shipment, tracker: Tracker, event_type: EventType, now: datetime
) -> dict[str, Any]:
    return {
        "type": event_type.value,
        "timestamp": now.isoformat(),
        "version": PAYLOAD_VERSION,
        "data": {
            "shipment": {
                "id": shipment.id,
                "carrier": shipment.carrier,
                "tracking_number": shipment.tracking_number,
                "status": shipment.status.value,
                "status_detail": None,
                "estimated_delivery": (now + timedelta(days=1)).date().isoformat()
                + "T00:00:00+00:00",
                "delivered_at": None,
                "signed_by": None,
                "tracking_url": shipment.tracking_url,
                "url": f"https://parcels.example/shipments/{shipment.id}",
            },
            "tracker": {"id": tracker.id, "description": tracker.description, "labels": []},
            "previous_status": "in_transit",
            "events": [
                {
                    "occurred_at": now.isoformat(),
                    "status": shipment.status.value,
                    "description": "On the vehicle for delivery",
                    "location": {
                        "city": "Louisville",
                        "state": "KY",
                        "postal_code": "40201",
                        "country": "US",
                    },
                }
            ],
        },
    }


@pytest.fixture
def world(database: Database) -> World:
    return World(database)


def notify_settings(database: Database, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database.url.replace("postgresql+psycopg://", "postgresql://"),
        "auto_update_enabled": False,
        "notify_allow_private_networks": True,  # the receivers are on 127.0.0.1
        "notify_group_window": timedelta(0),
        "_env_file": None,
    }
    return load_settings(**(values | overrides))


FAST = DispatcherOptions(
    poll_interval=0.05, backoff_base=0.05, backoff_cap=0.2, lease=timedelta(seconds=30)
)


# A failure is retried a minute later at the earliest: a test sees each delivery tried once.
NO_RETRY_SOON = DispatcherOptions(
    poll_interval=0.05, backoff_base=60.0, lease=timedelta(seconds=30)
)


@asynccontextmanager
async def dispatching(
    settings: Settings, database: Database, options: DispatcherOptions = FAST, **kwargs: Any
) -> AsyncIterator[Dispatcher]:
    dispatcher = Dispatcher(settings, database.engine, options=options, **kwargs)
    dispatcher.start()
    try:
        yield dispatcher
    finally:
        await dispatcher.stop()


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


# -- an HTTP receiver verifying Standard Webhooks signatures -------------------------------


@dataclass
class Arrival:
    at: float  # time.time()
    path: str
    headers: dict[str, str]
    body: bytes
    verified_by: list[str]  # the secrets (by label) whose signature svix accepted

    def json(self) -> Any:
        return json.loads(self.body)


def spec_signatures(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The Standard Webhooks signature computed from the specification by hand (svix 2.9.1
    wraps the `standardwebhooks` package that signs, so this is the independent check)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return f"v1,{expected}" in headers["webhook-signature"].split(" ")


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1. Each POST is recorded with the secrets whose
    signatures verify; it answers the next scripted `(status, headers)` (for its path, or
    for any) or 200."""

    url: str = ""
    secrets: dict[str, str] = field(default_factory=dict)  # label -> whsec_...
    arrivals: list[Arrival] = field(default_factory=list)
    scripts: dict[str | None, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, *responses: tuple[int, dict[str, str]] | int, path: str | None = None) -> None:
        """Answer the next POSTs (to `path` only, when given) with these, in turn."""
        with self.lock:
            self.scripts.setdefault(path, []).extend(
                (r, {}) if isinstance(r, int) else r for r in responses
            )

    def next_answer(self, path: str) -> tuple[int, dict[str, str]]:
        for key in (path, None):
            if self.scripts.get(key):
                return self.scripts[key].pop(0)
        return 200, {}

    def ids(self) -> list[str]:
        return [arrival.headers["webhook-id"] for arrival in self.arrivals]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            verified = []
            for label, secret in state.secrets.items():
                try:
                    Webhook(secret).verify(body, headers)
                except WebhookVerificationError:
                    continue
                assert spec_signatures(secret, headers, body)
                verified.append(label)
            with state.lock:
                state.arrivals.append(Arrival(time.time(), self.path, headers, body, verified))
                status, extra = state.next_answer(self.path)
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """aiosmtpd on 127.0.0.1, login alerts / s3cret-smtp."""
    with serve_mailbox() as box:
        yield box


def mail_settings(database: Database, mailbox: Mailbox, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "alert_smtp_host": "127.0.0.1",
        "alert_smtp_port": mailbox.port,
        "alert_smtp_user": "alerts",
        "alert_smtp_pass": "s3cret-smtp",
        "notify_email_from": "parcels@parcelwatch.example",
    }
    return notify_settings(database, **(values | overrides))


MakePerson = Callable[..., int]
PlayDispatcher = Callable[..., None]


@pytest.fixture
def settings(database: Database) -> Settings:
    """The shared settings with no dispatcher in the app (NOTIFY_ENABLED=false): these tests
    use webhook targets on global addresses that nothing must ever call; they play the
    dispatcher themselves (`record_attempt`)."""
    return load_settings(
        database_url=database.url.replace("postgresql+psycopg://", "postgresql://"),
        auto_update_enabled=False,
        notify_enabled=False,
        _env_file=None,
    )


@pytest.fixture
def person(database: Database) -> MakePerson:
    """A new account (the first is the owner); its id."""

    def make(name: str, role: Role = Role.MEMBER) -> int:
        with database.sessions.begin() as session:
            return create_user(session, name=name, role=role, password=None).id

    return make


def record_attempt(
    database: Database,
    delivery_id: int,
    *,
    outcome: str = "delivered",
    status_code: int | None = 200,
    error: str | None = None,
) -> None:
    """What the dispatcher writes after one try: an attempt, and the delivery's new state."""
    now = utcnow()
    with database.sessions.begin() as session:
        delivery = session.get(NotificationDelivery, delivery_id)
        assert delivery is not None
        delivery.attempts += 1
        delivery.last_status_code = status_code
        delivery.last_error = error
        if outcome == "delivered":
            delivery.status, delivery.delivered_at = "delivered", now
            delivery.next_attempt_at = None
        elif outcome == "dead":
            delivery.status, delivery.next_attempt_at = "dead", None
        else:
            delivery.next_attempt_at = now + timedelta(minutes=1)
        delivery.lease_owner, delivery.lease_expires_at = "worker-1", now + timedelta(minutes=1)
        session.add(
            DeliveryAttempt(
                delivery_id=delivery_id,
                attempted_at=now,
                outcome=outcome,
                status_code=status_code,
                latency_ms=12.5,
                error=error,
            )
        )


@pytest.fixture
def play_dispatcher(database: Database) -> PlayDispatcher:
    return partial(record_attempt, database)


ChannelFactory = Callable[..., int]


@pytest.fixture
def people(database: Database) -> dict[str, int]:
    """The owner and two members; their user ids."""
    ids = {}
    with database.sessions.begin() as session:
        for name, role in (("owner", Role.OWNER), ("ann", Role.MEMBER), ("bob", Role.MEMBER)):
            ids[name] = create_user(session, name=name, role=role, password=None).id
    return ids


@pytest.fixture
def track(database: Database) -> Callable[..., int]:
    """`track(user_id, number, description)`: that person's tracker of the number (through
    the shipment service, as the API does); the shipment's id."""

    def follow(user_id: int, number: str, description: str | None = None) -> int:
        with database.sessions.begin() as session:
            shipment, _ = register_shipment(
                session,
                tracking_number=number,
                carrier="ups",
                description=description,
                owner_id=user_id,
            )
            return shipment.id

    return follow


@pytest.fixture
def add_channel(database: Database) -> ChannelFactory:
    def add(
        user_id: int,
        kind: str = "webhook",
        *,
        event_types: tuple[str, ...] = tuple(DEFAULT_EVENT_TYPES),
        **fields: object,
    ) -> int:
        with database.sessions.begin() as session:
            user = session.get(User, user_id)
            assert user is not None
            values: dict[str, object] = {
                "name": f"{kind} of {user.name}",
                "target": f"{user.name}@example.com" if kind == "email" else "http://127.0.0.1:9/",
                "secret": new_secret() if kind == "webhook" else None,
            }
            channel = NotificationChannel(
                user_id=user_id,
                kind=kind,
                event_types=list(event_types),
                **(values | fields),
            )
            session.add(channel)
            session.flush()
            return channel.id

    return add
