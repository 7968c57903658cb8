"""Operators see the outbox: pending deliveries and the longest wait past due in `/metrics`
(read from the database), delivered / failed / dead-letter counters and the latency
histogram by channel kind, and a health warning when due deliveries wait too long."""

from __future__ import annotations

import time
from datetime import timedelta

from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from parcelwatch.accounts.roles import Role
from parcelwatch.api.app import create_app
from parcelwatch.domain import utcnow
from tests.conftest import Database, account_token
from tests.notifications.conftest import Receiver, World, notify_settings
from tests.ops.test_metrics import scrape, value


def check(client: TestClient, name: str) -> dict[str, object]:
    report = client.get("/api/health").json()
    found: dict[str, object] = next(c for c in report["checks"] if c["name"] == name)
    return found


def test_a_stuck_outbox_shows_in_metrics_and_health_and_clears_once_delivered(
    world: World, database: Database, receiver: Receiver
) -> None:
    owner = world.person("owner", Role.OWNER)
    tracker = world.tracker(owner)
    channel = world.channel(owner, "webhook", receiver.url)
    mail = world.channel(owner, "email", "ana@example.org")
    overdue = utcnow() - timedelta(minutes=20)
    world.notify(tracker, [channel], due=overdue, created_at=overdue)
    world.notify(tracker, [mail], due=utcnow() + timedelta(hours=8))  # quiet hours: not due
    stopped = notify_settings(database, notify_enabled=False)
    auth = account_token(stopped)
    with TestClient(create_app(stopped), headers=auth) as client:
        samples = scrape(client)
        outbox = check(client, "notifications")
    assert value(samples, "parcelwatch_notifications_pending", kind="webhook") == 1
    assert value(samples, "parcelwatch_notifications_pending", kind="email") == 1
    assert value(samples, "parcelwatch_notifications_pending", kind="apprise") == 0
    assert value(samples, "parcelwatch_notifications_oldest_pending_seconds") >= 20 * 60
    assert outbox["status"] == "warning"
    assert "NOTIFY_ENABLED is false" in str(outbox["message"])
    assert outbox["figures"] == {
        "pending": 2,
        "due": 1,
        "oldest_due_seconds": outbox["figures"]["oldest_due_seconds"],  # type: ignore[index]
        "warn_after_seconds": 900.0,
    }

    running = notify_settings(database)
    counted = (
        "parcelwatch_notifications_delivered_total",
        "parcelwatch_notification_delivery_latency_seconds_count",
        "parcelwatch_notification_delivery_latency_seconds_sum",
    )
    before = {name: REGISTRY.get_sample_value(name, {"kind": "webhook"}) or 0.0 for name in counted}
    with TestClient(create_app(running), headers=auth) as client:
        deadline = time.monotonic() + 10
        while not receiver.arrivals:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        while value(scrape(client), "parcelwatch_notifications_pending", kind="webhook"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        after = scrape(client)
        outbox = check(client, "notifications")

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - before[name]

    assert grew("parcelwatch_notifications_delivered_total", kind="webhook") == 1
    assert grew("parcelwatch_notification_delivery_latency_seconds_count", kind="webhook") == 1
    # Latency counts from the notification's commit: 20 minutes here.
    assert grew("parcelwatch_notification_delivery_latency_seconds_sum", kind="webhook") >= 1200
    assert value(after, "parcelwatch_notifications_oldest_pending_seconds") == 0
    assert outbox["status"] == "ok"
