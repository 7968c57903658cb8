"""Manual refresh and the updater's admin API, served by the app with its lifespan."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from parcelwatch.accounts.roles import Role, Scope
from parcelwatch.api.app import create_app
from parcelwatch.config import Settings
from parcelwatch.domain import ShipmentStatus, utcnow
from parcelwatch.models import Shipment
from tests.conftest import Database, account_token
from tests.sync.conftest import Emulator, ShipmentFactory, running_emulator

ADMIN = {"Authorization": "Bearer s3cret-admin-token"}


@pytest.fixture
def api_settings(database: Database, emulator: Emulator) -> Settings:
    return emulator.settings_for(database, admin_api_key="s3cret-admin-token")


@pytest.fixture
def client(api_settings: Settings) -> Iterator[TestClient]:
    """Signed in as a member, with a write token."""
    account_token(api_settings)  # the first account is the owner
    member = account_token(api_settings, name="member", role=Role.MEMBER, scope=Scope.WRITE)
    with TestClient(create_app(api_settings), headers=member) as client:
        yield client


def test_manual_refresh_asks_the_carrier_now(
    client: TestClient, add_shipment: ShipmentFactory, emulator: Emulator
) -> None:
    shipment = add_shipment("fedex", next_check_at=utcnow() + timedelta(hours=3))
    response = client.post(f"/api/shipments/{shipment.id}/refresh")
    body = response.json()
    assert response.status_code == 200
    assert body["refreshed"] is True
    assert body["shipment"]["last_manual_refresh"] is not None
    assert body["shipment"]["auto_refresh_count"] == 1
    assert emulator.polls("fedex", shipment.tracking_number) == 1


def test_a_second_refresh_within_five_minutes_answers_429_with_retry_after(
    client: TestClient, add_shipment: ShipmentFactory, emulator: Emulator
) -> None:
    shipment = add_shipment("ups")
    assert client.post(f"/api/shipments/{shipment.id}/refresh").status_code == 200
    again = client.post(f"/api/shipments/{shipment.id}/refresh")
    assert again.status_code == 429
    assert 290 <= int(again.headers["Retry-After"]) <= 300
    assert emulator.polls("ups", shipment.tracking_number) == 1


def test_force_skips_the_cooldown_only_with_the_admin_token(
    client: TestClient, add_shipment: ShipmentFactory, emulator: Emulator
) -> None:
    shipment = add_shipment("ups", last_manual_refresh=utcnow())
    url = f"/api/shipments/{shipment.id}/refresh?force=true"
    assert client.post(url).status_code == 403  # the member's write token
    assert client.post(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.post(url, headers=ADMIN).status_code == 200
    assert emulator.polls("ups", shipment.tracking_number) == 1


def test_refreshing_a_final_shipment_answers_clearly_without_calling_the_carrier(
    client: TestClient, add_shipment: ShipmentFactory, emulator: Emulator
) -> None:
    shipment = add_shipment("ups", status=ShipmentStatus.DELIVERED, next_check_at=None)
    response = client.post(f"/api/shipments/{shipment.id}/refresh")
    assert response.status_code == 200
    assert response.json()["refreshed"] is False
    assert "delivered" in response.json()["detail"]
    assert emulator.polls("ups", shipment.tracking_number) == 0


def test_refreshing_an_unknown_shipment_is_404(client: TestClient) -> None:
    assert client.post("/api/shipments/999/refresh").status_code == 404


def test_without_admin_api_key_an_owners_admin_token_runs_the_admin_api(
    database: Database, emulator: Emulator
) -> None:
    settings = emulator.settings_for(database)
    owner = account_token(settings)
    admin_read = account_token(settings, name="ops", role=Role.ADMIN, scope=Scope.READ)
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/admin/tracking-updater/status", headers=owner).status_code == 200
        narrow = client.post("/api/admin/tracking-updater/pause", headers=admin_read)
        anonymous = client.get("/api/admin/tracking-updater/status")
    assert narrow.status_code == 403
    assert "'admin' scope" in narrow.json()["detail"]
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"


def test_a_member_cannot_run_operations_nor_force_a_refresh(
    client: TestClient, add_shipment: ShipmentFactory
) -> None:
    shipment = add_shipment("ups")
    status = client.get("/api/admin/tracking-updater/status")
    forced = client.post(f"/api/shipments/{shipment.id}/refresh", params={"force": "true"})
    assert status.status_code == 403
    assert "members cannot run operations" in status.json()["detail"]
    assert forced.status_code == 403
    assert "force" in forced.json()["detail"]


def test_a_read_token_cannot_refresh(api_settings: Settings, add_shipment: ShipmentFactory) -> None:
    shipment = add_shipment("ups")
    reader = account_token(api_settings, scope=Scope.READ)
    with TestClient(create_app(api_settings), headers=reader) as client:
        refused = client.post(f"/api/shipments/{shipment.id}/refresh")
    assert refused.status_code == 403
    assert "'write' scope" in refused.json()["detail"]


def test_pause_resume_and_status(client: TestClient, add_shipment: ShipmentFactory) -> None:
    add_shipment("ups")
    assert client.get("/api/admin/tracking-updater/status").status_code == 403
    status = client.get("/api/admin/tracking-updater/status", headers=ADMIN).json()
    assert status["paused"] is False
    assert status["enabled"] is False  # AUTO_UPDATE_ENABLED=false in tests
    assert status["due_now"] == 1
    paused = client.post("/api/admin/tracking-updater/pause", headers=ADMIN).json()
    assert paused["paused"] is True
    resumed = client.post("/api/admin/tracking-updater/resume", headers=ADMIN).json()
    assert resumed["paused"] is False


def test_two_refreshes_at_once_give_one_refresh_and_one_429(
    database: Database, add_shipment: ShipmentFactory
) -> None:
    with running_emulator(latency={"distribution": "fixed", "ms": 300}) as slow:
        settings = slow.settings_for(database, admin_api_key="s3cret-admin-token")
        shipment = add_shipment("ups")
        url = f"/api/shipments/{shipment.id}/refresh"
        auth = account_token(settings)
        with (
            TestClient(create_app(settings), headers=auth) as client,
            ThreadPoolExecutor(2) as pool,
        ):
            answers = list(pool.map(lambda _: client.post(url), range(2)))
        polls = slow.polls("ups", shipment.tracking_number)
    assert sorted(a.status_code for a in answers) == [200, 429]
    refused = next(a for a in answers if a.status_code == 429)
    assert 290 <= int(refused.headers["Retry-After"]) <= 300
    assert polls == 1


def test_a_refresh_that_finds_the_shipment_busy_keeps_no_cooldown(
    client: TestClient, add_shipment: ShipmentFactory, database: Database
) -> None:
    shipment = add_shipment("ups")
    now = utcnow()
    with database.sessions.begin() as session:  # another engine holds the lease
        row = session.get(Shipment, shipment.id)
        assert row is not None
        row.lease_owner, row.lease_expires_at = "cron-sync", now + timedelta(minutes=10)
    busy = client.post(f"/api/shipments/{shipment.id}/refresh")
    assert busy.status_code == 409
    assert "being synced" in busy.json()["detail"]
    with database.sessions() as session:
        row = session.get(Shipment, shipment.id)
        assert row is not None
        assert row.last_manual_refresh is None  # free to refresh as soon as it is done
