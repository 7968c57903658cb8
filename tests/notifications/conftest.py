"""Fixtures for notification tests: people made through the account service, their
shipments and channels, and a stand-in for the dispatcher that records an attempt the way it
would."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import partial

import pytest

from parcelwatch.accounts.roles import Role
from parcelwatch.accounts.service import create_user
from parcelwatch.config import Settings, load_settings
from parcelwatch.domain import utcnow
from parcelwatch.models import DeliveryAttempt, NotificationChannel, NotificationDelivery, User
from parcelwatch.notifications.events import DEFAULT_EVENT_TYPES
from parcelwatch.shipments.service import register_shipment
from tests.conftest import Database

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
def anyio_backend() -> str:
    return "asyncio"


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
            channel = NotificationChannel(
                user_id=user_id,
                kind=kind,
                name=f"{kind} of {user.name}",
                target="http://127.0.0.1:9/hook" if kind != "email" else f"{user.name}@example.com",
                event_types=list(event_types),
                secret="whsec_" + "A" * 32 if kind == "webhook" else None,
                **fields,
            )
            session.add(channel)
            session.flush()
            return channel.id

    return add
