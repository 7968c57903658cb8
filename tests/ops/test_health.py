"""The health report: each state through the endpoint (200 / 503) and the command (exit
0 / 1 / 2), on SQLite and PostgreSQL, with carriers checked against the emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from parcelwatch.api.app import create_app
from parcelwatch.cli.main import app as cli
from parcelwatch.config import Settings, load_settings
from parcelwatch.domain import ShipmentStatus, utcnow
from parcelwatch.sync.testing import FakeProvider
from tests.conftest import Database, account_token
from tests.ops.conftest import RunFactory, ShipmentFactory
from tests.sync.conftest import Emulator, running_emulator


def dhl_values(database: Database, emulator_url: str) -> dict[str, Any]:
    """Only DHL configured, against the emulator."""
    return {
        "database_url": database.url.replace("postgresql+psycopg://", "postgresql://"),
        "auto_update_enabled": False,
        "dhl_api_key": "key",
        "dhl_base_url": f"{emulator_url}/dhl",
    }


def as_environment(values: dict[str, Any]) -> dict[str, str]:
    return {
        name.upper(): str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in values.items()
    }


@pytest.fixture
def dhl_settings(database: Database, emulator: Emulator) -> Settings:
    return load_settings(**dhl_values(database, emulator.url), _env_file=None)


@pytest.fixture
def dhl_api(dhl_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(dhl_settings), headers=account_token(dhl_settings)) as client:
        yield client


def run_command(
    monkeypatch: pytest.MonkeyPatch, values: dict[str, Any], *args: str
) -> tuple[int, str]:
    for name, value in as_environment(values).items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, ["health", *args])
    return result.exit_code, result.stdout


def check(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(item for item in document["checks"] if item["name"] == name)


def test_a_fresh_install_with_no_sync_run_is_a_warning_not_critical(api: TestClient) -> None:
    response = api.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "warning"
    assert check(body, "sync_activity")["message"] == "no sync run yet"
    assert check(body, "carriers")["status"] == "warning"  # nothing configured
    assert check(body, "database")["status"] == "ok"


def test_recent_success_and_reachable_carrier_are_healthy_with_exit_0(
    database: Database,
    emulator: Emulator,
    dhl_api: TestClient,
    add_run: RunFactory,
    add_shipment: ShipmentFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    add_run(minutes_ago=10)
    add_shipment("dhl", tracking_number="7777777770", last_auto_refresh=utcnow())
    response = dhl_api.get("/api/health")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "healthy"
    assert check(body, "carrier:dhl")["status"] == "ok"
    assert check(body, "sync_activity")["figures"]["age_hours"] < 0.2

    code, stdout = run_command(monkeypatch, dhl_values(database, emulator.url), "--json")
    assert code == 0
    document = json.loads(stdout)  # exactly one JSON document
    assert document["status"] == "healthy"
    assert [c["name"] for c in document["checks"]] == [c["name"] for c in body["checks"]]


def test_no_success_beyond_the_threshold_is_critical_503_and_exit_2(
    database: Database,
    emulator: Emulator,
    dhl_api: TestClient,
    add_run: RunFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    add_run(minutes_ago=8 * 60)
    add_run(minutes_ago=30, outcome="failed", checked=5, updated=0, unchanged=0, failed=5)
    response = dhl_api.get("/api/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "critical"
    assert check(body, "sync_activity")["status"] == "critical"
    assert check(body, "error_rate")["status"] == "critical"  # every run this hour failed

    values = dhl_values(database, emulator.url)
    code, stdout = run_command(monkeypatch, values)
    assert code == 2
    assert "CRITICAL" in stdout
    assert "no successful sync run for 8" in stdout


def test_alert_threshold_moves_the_critical_line(
    database: Database,
    emulator: Emulator,
    add_run: RunFactory,
    monkeypatch: pytest.MonkeyPatch,
    dhl_api: TestClient,
) -> None:
    add_run(minutes_ago=8 * 60)
    values = dhl_values(database, emulator.url)
    code, stdout = run_command(monkeypatch, values, "--json", "--alert-threshold=12")
    assert code == 1
    activity = check(json.loads(stdout), "sync_activity")
    assert activity["status"] == "warning"
    assert activity["figures"]["threshold_hours"] == 12
    assert dhl_api.get("/api/health", params={"alert_threshold": 12}).status_code == 200
    assert dhl_api.get("/api/health", params={"alert_threshold": 2}).status_code == 503


def test_runs_but_never_a_success_turn_critical_once_older_than_the_threshold(
    api: TestClient, add_run: RunFactory
) -> None:
    add_run(minutes_ago=20, outcome="failed", failed=10, updated=0, unchanged=0)
    assert check(api.get("/api/health").json(), "sync_activity")["status"] == "warning"
    add_run(minutes_ago=7 * 60, outcome="error")
    activity = check(api.get("/api/health").json(), "sync_activity")
    assert activity["status"] == "critical"
    assert "no successful sync run since the first run" in activity["message"]


def test_some_stale_shipments_warn_and_check_stale_lists_them(
    database: Database,
    emulator: Emulator,
    dhl_api: TestClient,
    add_run: RunFactory,
    add_shipment: ShipmentFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = utcnow()
    add_run(minutes_ago=5)
    stale = add_shipment(
        "dhl",
        tracking_number="1111111111",
        created_at=now - timedelta(hours=40),
        last_auto_refresh=now - timedelta(hours=30),
    )
    add_shipment(
        "dhl",
        tracking_number="2222222222",
        created_at=now - timedelta(hours=40),
        last_auto_refresh=now - timedelta(hours=30),
        last_manual_refresh=now,
    )
    add_shipment("dhl", tracking_number="3333333333", created_at=now - timedelta(hours=2))
    add_shipment(
        "dhl",
        tracking_number="4444444444",
        created_at=now - timedelta(hours=50),
        status=ShipmentStatus.DELIVERED,
    )
    add_shipment(
        "dhl",
        tracking_number="5555555555",
        created_at=now - timedelta(hours=50),
        auto_refresh_enabled=False,
    )
    body = dhl_api.get("/api/health", params={"check_stale": True}).json()
    stale_check = check(body, "stale_shipments")
    assert stale_check["status"] == "warning"
    assert stale_check["figures"] | {"by_carrier": None} == {
        "stale": 1,
        "active": 3,
        "stale_hours": 24,
        "by_carrier": None,
    }
    assert [row["id"] for row in body["stale_shipments"]] == [stale.id]

    code, stdout = run_command(monkeypatch, dhl_values(database, emulator.url), "--check-stale")
    assert code == 1
    assert "Stale shipments" in stdout
    assert "1111111111" in stdout


def test_most_active_shipments_stale_is_critical(
    dhl_api: TestClient, add_shipment: ShipmentFactory, add_run: RunFactory
) -> None:
    add_run(minutes_ago=5)
    add_shipment("dhl", tracking_number="1234567890", created_at=utcnow() - timedelta(hours=25))
    response = dhl_api.get("/api/health")
    assert response.status_code == 503
    assert check(response.json(), "stale_shipments")["status"] == "critical"


def test_shipments_past_the_cutoff_or_of_an_unconfigured_carrier_are_not_stale(
    dhl_api: TestClient, add_shipment: ShipmentFactory, add_run: RunFactory
) -> None:
    now = utcnow()
    add_run(minutes_ago=5)
    # Registered 31 days ago: past AUTO_UPDATE_CUTOFF_DAYS, the updater no longer checks it.
    add_shipment("dhl", tracking_number="1234567890", created_at=now - timedelta(days=31))
    # UPS has no credentials here: the `carriers` check says so, it is not stale.
    add_shipment("ups", created_at=now - timedelta(hours=30))
    stale = check(dhl_api.get("/api/health").json(), "stale_shipments")
    assert stale["status"] == "ok"
    assert stale["figures"]["stale"] == 0
    assert stale["figures"]["waiting_for_carrier"] == 1
    assert "1 wait for their carrier to be configured" in stale["message"]


def test_a_tenth_of_checks_failing_in_the_last_hour_is_a_warning(
    api: TestClient, add_run: RunFactory
) -> None:
    add_run(minutes_ago=90, failed=10)  # older than an hour: not counted
    add_run(minutes_ago=40, checked=10, failed=0)
    add_run(minutes_ago=10, outcome="partial", checked=10, failed=3)
    rate = check(api.get("/api/health").json(), "error_rate")
    assert rate["status"] == "warning"
    assert rate["figures"] == {
        "runs": 2,
        "failed_runs": 0,
        "checked": 20,
        "failed": 3,
        "error_rate": 0.15,
    }


def test_a_carrier_refusing_credentials_is_critical(
    database: Database, add_run: RunFactory
) -> None:
    add_run(minutes_ago=5)
    with running_emulator(reject_credentials=True) as refusing:
        values = dhl_values(database, refusing.url) | {"dhl_api_key": "sekrit-dhl-key-123"}
        settings = load_settings(**values, _env_file=None)
        with TestClient(create_app(settings), headers=account_token(settings)) as client:
            response = client.get("/api/health")
    assert response.status_code == 503
    carrier = check(response.json(), "carrier:dhl")
    assert carrier["status"] == "critical"
    assert carrier["message"].startswith("DHL: AuthError")
    assert "DHL_API_KEY" in carrier["message"]
    assert "sekrit" not in response.text


class CountingCarrier(FakeProvider):
    checks = 0

    async def check(self) -> None:
        self.checks += 1
        await super().check()


def test_carrier_checks_are_cached_for_a_minute(settings: Settings) -> None:
    app = create_app(settings)
    carrier = CountingCarrier(code="ups")
    app.state.health_providers = {"ups": carrier}
    with TestClient(app, headers=account_token(settings)) as client:
        first = client.get("/api/health").json()
        client.get("/api/health")
    assert check(first, "carrier:ups")["status"] == "ok"
    assert carrier.checks == 1


def test_an_unreachable_database_is_critical(tmp_path: Any) -> None:
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path}/missing/dir/parcelwatch.db",
        auto_update_enabled=False,
        admin_api_key="ops-key",  # no account can be looked up without the database
        _env_file=None,
    )
    with TestClient(create_app(settings)) as client:
        token = client.get("/api/health", headers={"Authorization": "Bearer pwt_" + "x" * 43})
        response = client.get("/api/health", headers={"Authorization": "Bearer ops-key"})
        assert client.get("/healthz").status_code == 200  # alive all the same
        ready = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"][0]["status"] == "critical"
    assert [c["name"] for c in response.json()["checks"]][0] == "database"
    assert ready.status_code == 503
    assert "database unreachable" in ready.json()["problems"][0]
    assert token.status_code == 503  # a personal token cannot be checked: never a 500
    assert "database" in token.json()["detail"]


def test_readyz_follows_the_updater_when_it_is_enabled(settings: Settings) -> None:
    from parcelwatch.sync.testing import StaticProviders

    app = create_app(settings.model_copy(update={"auto_update_enabled": True}))
    app.state.sync_providers = StaticProviders({})
    with TestClient(app) as client:
        assert client.get("/readyz").json() == {"status": "ready"}
        client.portal.call(app.state.updater.stop)
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["problems"] == ["the tracking updater is not running"]
