"""The CLI beside a demo server: on the demo's database, the commands that ask carriers see
the demo emulator as the server does, and say so; anywhere else they are unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from parcelwatch.cli.common import DEMO_NOTE
from parcelwatch.cli.main import app
from parcelwatch.config import Settings
from parcelwatch.demo import DEMO_SHIPMENTS, running_demo_anchor, seed_demo_shipments

NARROW = {"COLUMNS": "80"}


@pytest.fixture
def run(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.delenv("PARCELWATCH_DEMO", raising=False)
    return CliRunner()


def invoke(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(app, list(args), env=NARROW)


def test_on_the_demo_database_carriers_check_asks_the_demo_emulator(
    run: CliRunner, settings: Settings
) -> None:
    seed_demo_shipments(settings)
    result = invoke(run, "carriers", "check", "--json")
    assert result.exit_code == 0, result.output
    providers = json.loads(result.stdout)["providers"]
    assert {p["provider"]: p["outcome"] for p in providers} == {
        "usps": "ok",
        "ups": "ok",
        "fedex": "ok",
        "dhl": "ok",
        "shipengine": "ok",
    }
    assert DEMO_NOTE in result.stderr


def test_on_the_demo_database_health_reports_the_carriers_the_server_reports(
    run: CliRunner, settings: Settings
) -> None:
    seed_demo_shipments(settings)
    result = invoke(run, "health", "--json")
    checks = {check["name"]: check["status"] for check in json.loads(result.stdout)["checks"]}
    assert "carriers" not in checks  # the "no carrier API is configured" warning
    assert {name: status for name, status in checks.items() if name.startswith("carrier:")} == {
        "carrier:usps": "ok",
        "carrier:ups": "ok",
        "carrier:fedex": "ok",
        "carrier:dhl": "ok",
        "carrier:shipengine": "ok",
    }
    assert DEMO_NOTE in result.stderr
    table = invoke(run, "health")
    assert "No carrier API is configured" not in table.stdout
    assert "USPS: API reachable" in table.stdout


def test_on_the_demo_database_sync_tracks_the_demo_shipments(
    run: CliRunner, settings: Settings
) -> None:
    seed_demo_shipments(settings)
    result = invoke(run, "sync", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["checked"] == len(DEMO_SHIPMENTS)
    assert summary["failed"] == 0
    assert "no carrier is configured" not in result.output
    assert DEMO_NOTE in result.stderr


def test_with_the_demo_turned_off_the_commands_see_no_carrier(
    run: CliRunner, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_demo_shipments(settings)
    monkeypatch.setenv("PARCELWATCH_DEMO", "false")
    result = invoke(run, "sync")
    assert result.exit_code == 2
    assert "no carrier is configured" in result.stderr
    assert DEMO_NOTE not in result.stderr
    assert invoke(run, "carriers", "check", "--json").exit_code == 2


def test_without_demo_shipments_there_is_no_demo_to_follow(
    run: CliRunner, settings: Settings
) -> None:
    assert running_demo_anchor(settings) is None
    result = invoke(run, "health", "--json")
    checks = {check["name"] for check in json.loads(result.stdout)["checks"]}
    assert "carriers" in checks
    assert DEMO_NOTE not in result.stderr


def test_finding_no_demo_never_creates_a_sqlite_file(settings: Settings, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "parcelwatch.db"
    elsewhere = settings.model_copy(update={"database_url": f"sqlite:///{missing}"})
    assert running_demo_anchor(elsewhere) is None
    assert not missing.exists()


def test_a_database_whose_demo_shipments_were_all_renamed_has_no_demo_to_follow(
    run: CliRunner, settings: Settings
) -> None:
    seed_demo_shipments(settings)
    for shipment in json.loads(invoke(run, "shipments", "list", "--json").stdout)["items"]:
        invoke(run, "shipments", "update", str(shipment["id"]), "-d", "mine now")
    assert running_demo_anchor(settings) is None
