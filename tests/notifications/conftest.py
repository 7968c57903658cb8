"""Fixtures for notification tests: people, their shipments and channels."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from parcelwatch.accounts.roles import Role
from parcelwatch.accounts.service import create_user
from parcelwatch.models import NotificationChannel, User
from parcelwatch.notifications.events import DEFAULT_EVENT_TYPES
from parcelwatch.shipments.service import register_shipment
from tests.conftest import Database

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
