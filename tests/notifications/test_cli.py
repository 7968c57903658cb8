"""`parcelwatch notify`: tests queued for the dispatcher (and waited for), channels listed,
added and removed, with exactly one JSON document under --json."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from parcelwatch.accounts.roles import Role
from parcelwatch.models import NotificationDelivery
from tests.conftest import Database, Invoke
from tests.notifications.conftest import MakePerson, record_attempt

HOOK = "https://93.184.216.34/hook?token=abc123"


@pytest.fixture
def ann(person: MakePerson) -> str:
    person("ann", Role.OWNER)
    return "ann"


def _add(run: Invoke, *args: str) -> dict[str, object]:
    result = run("notify", "channels", "add", "--user", "ann", *args, "--json")
    assert result.exit_code == 0, result.output
    document: dict[str, object] = json.loads(result.stdout)
    return document


@pytest.mark.usefixtures("ann")
def test_a_webhook_is_added_with_its_secret_printed_once(run: Invoke) -> None:
    made = _add(run, "--kind", "webhook", "--target", HOOK, "--event-type", "shipment.late")
    assert str(made["secret"]).startswith("whsec_")
    assert made["event_types"] == ["shipment.late"]
    listed = run("notify", "channels", "list", "--json")
    assert json.loads(listed.stdout)[0]["target"] == "https://93.184.216.34/hook?token=…"
    assert str(made["secret"]) not in listed.stdout
    table = run("notify", "channels", "list", "--user", "ann")
    assert "webhook" in table.stdout


@pytest.mark.usefixtures("ann")
def test_a_bad_channel_is_refused_with_why(run: Invoke) -> None:
    result = run("notify", "channels", "add", "--user", "ann", "--kind", "email", "--target", "x")
    assert result.exit_code == 1
    assert "is not an email address" in result.output


@pytest.mark.usefixtures("ann")
def test_each_of_a_persons_channels_gets_a_test(run: Invoke, database: Database) -> None:
    _add(run, "--kind", "email", "--target", "ann@example.org")
    _add(run, "--kind", "webhook", "--target", HOOK)
    result = run("notify", "test", "--user", "ann", "--json")
    assert result.exit_code == 0, result.output
    queued = json.loads(result.stdout)
    assert [(item["kind"], item["status"]) for item in queued] == [
        ("email", "pending"),
        ("webhook", "pending"),
    ]
    with database.sessions() as session:
        assert len(session.scalars(select(NotificationDelivery)).all()) == 2


@pytest.fixture
def stand_in_dispatcher(database: Database) -> Iterator[None]:
    """Marks every pending delivery delivered, as the dispatcher would, until the test ends."""
    stop = threading.Event()

    def deliver() -> None:
        while not stop.is_set():
            with database.sessions() as session:
                pending = session.scalars(
                    select(NotificationDelivery.id).where(NotificationDelivery.status == "pending")
                ).all()
            for delivery_id in pending:
                record_attempt(database, delivery_id, outcome="delivered", status_code=204)
            time.sleep(0.1)

    worker = threading.Thread(target=deliver, daemon=True)
    worker.start()
    yield
    stop.set()
    worker.join(timeout=5)


@pytest.mark.usefixtures("ann", "stand_in_dispatcher")
def test_waiting_for_a_test_reports_its_delivery(run: Invoke) -> None:
    made = _add(run, "--kind", "email", "--target", "ann@example.org")
    result = run("notify", "test", "--channel", str(made["id"]), "--wait", "10")
    assert result.exit_code == 0, result.output
    assert "delivered" in result.stdout


@pytest.mark.usefixtures("ann")
def test_a_test_nobody_delivers_fails_after_the_wait(run: Invoke) -> None:
    made = _add(run, "--kind", "email", "--target", "ann@example.org")
    result = run("notify", "test", "--channel", str(made["id"]), "--wait", "0.5", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)[0]["status"] == "pending"


@pytest.mark.usefixtures("ann")
def test_test_needs_a_channel_or_a_person(run: Invoke) -> None:
    assert run("notify", "test").exit_code == 2
    missing = run("notify", "test", "--channel", "99")
    assert missing.exit_code == 1
    assert "does not exist" in missing.output
    assert run("notify", "test", "--user", "ann").exit_code == 1  # no channel yet


@pytest.mark.usefixtures("ann")
def test_a_channel_is_removed(run: Invoke) -> None:
    made = _add(run, "--kind", "email", "--target", "ann@example.org")
    assert run("notify", "channels", "remove", str(made["id"]), "--json").exit_code == 2
    removed = run("notify", "channels", "remove", str(made["id"]), "--yes", "--json")
    assert json.loads(removed.stdout) == {"id": made["id"], "removed": True}
    assert json.loads(run("notify", "channels", "list", "--json").stdout) == []
