"""`parcelwatch sync`: flags and exit statuses, run as a command against the emulator."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from parcelwatch.cli.main import app
from parcelwatch.domain import ShipmentStatus
from tests.conftest import Database
from tests.sync.conftest import Emulator, ShipmentFactory, reload, running_emulator

INVALID_AT_UPS = "1Z" + "9" * 36


def run(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], *args: str) -> Result:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return CliRunner().invoke(app, ["sync", *args])


def document(result: Result) -> dict[str, Any]:
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_sync_syncs_due_shipments_and_exits_0(
    monkeypatch: pytest.MonkeyPatch,
    database: Database,
    emulator: Emulator,
    add_shipment: ShipmentFactory,
) -> None:
    shipment = add_shipment("fedex")
    result = run(monkeypatch, emulator.environment(database))
    assert result.exit_code == 0, result.output
    assert "1 checked" in result.stdout
    assert reload(database, shipment.id).auto_refresh_count == 1


def test_json_prints_one_document_and_a_shipment_failure_exits_1(
    monkeypatch: pytest.MonkeyPatch,
    database: Database,
    emulator: Emulator,
    add_shipment: ShipmentFactory,
) -> None:
    add_shipment("ups", tracking_number=INVALID_AT_UPS)
    add_shipment("ups")
    result = run(monkeypatch, emulator.environment(database), "--json")
    summary = document(result)
    assert result.exit_code == 1
    assert summary["failed"] == 1
    assert summary["synced"] == 1
    assert summary["outcome"] == "partial"


def test_every_carrier_down_exits_2(
    monkeypatch: pytest.MonkeyPatch, database: Database, add_shipment: ShipmentFactory
) -> None:
    add_shipment("ups")
    add_shipment("fedex")
    with running_emulator(reject_credentials=True) as emulator:
        result = run(monkeypatch, emulator.environment(database), "--json")
    assert result.exit_code == 2
    assert document(result)["outcome"] == "failed"
    assert set(document(result)["carriers_down"]) == {"ups", "fedex"}


def test_invalid_configuration_exits_2(
    monkeypatch: pytest.MonkeyPatch, database: Database, emulator: Emulator
) -> None:
    env = emulator.environment(database) | {"AUTO_UPDATE_BATCH_SIZE": "0"}
    result = run(monkeypatch, env)
    assert result.exit_code == 2
    assert "AUTO_UPDATE_BATCH_SIZE" in result.stderr


def test_an_unreachable_database_exits_2(
    monkeypatch: pytest.MonkeyPatch, database: Database, emulator: Emulator
) -> None:
    env = emulator.environment(database) | {"DATABASE_URL": "sqlite:////nonexistent/dir/x.db"}
    result = run(monkeypatch, env)
    assert result.exit_code == 2
    assert "database" in result.stderr


def test_dry_run_explains_and_neither_calls_nor_writes(
    monkeypatch: pytest.MonkeyPatch,
    database: Database,
    emulator: Emulator,
    add_shipment: ShipmentFactory,
) -> None:
    due = add_shipment("ups")
    unconfigured = add_shipment("royal_mail")
    env = emulator.environment(database) | {"SHIPENGINE_API_KEY": ""}
    result = run(monkeypatch, env, "--dry-run", "--json")
    plan = {item["id"]: item for item in document(result)["shipments"]}
    assert result.exit_code == 0
    assert plan[due.id]["action"] == "sync"
    assert "never checked" in plan[due.id]["reason"]
    assert plan[unconfigured.id]["action"] == "skip"
    assert "not configured" in plan[unconfigured.id]["reason"]
    assert emulator.stats()["requests_total"] == 0
    assert reload(database, due.id).auto_refresh_count == 0


def test_force_syncs_active_shipments_that_are_not_due_but_never_final_ones(
    monkeypatch: pytest.MonkeyPatch,
    database: Database,
    emulator: Emulator,
    add_shipment: ShipmentFactory,
) -> None:
    from datetime import timedelta

    from parcelwatch.domain import utcnow

    later = add_shipment("ups", next_check_at=utcnow() + timedelta(hours=5))
    delivered = add_shipment("ups", status=ShipmentStatus.DELIVERED, next_check_at=None)
    plain = run(monkeypatch, emulator.environment(database), "--json")
    assert document(plain)["checked"] == 0
    forced = run(monkeypatch, emulator.environment(database), "--force", "--json")
    assert document(forced)["checked"] == 1
    assert emulator.polls("ups", later.tracking_number) == 1
    assert emulator.polls("ups", delivered.tracking_number) == 0


def test_shipments_flag_takes_ids_and_tracking_numbers_and_carrier_filters(
    monkeypatch: pytest.MonkeyPatch,
    database: Database,
    emulator: Emulator,
    add_shipment: ShipmentFactory,
) -> None:
    by_id = add_shipment("ups")
    by_number = add_shipment("fedex")
    untouched = add_shipment("ups")
    env = emulator.environment(database)
    named = f"--shipments={by_id.id},{by_number.tracking_number}"
    result = run(monkeypatch, env, named, "--json", "--verbose")
    assert result.exit_code == 0, result.output
    assert set(document(result)["outcomes"]) == {str(by_id.id), str(by_number.id)}
    assert emulator.polls("ups", untouched.tracking_number) == 0

    only_fedex = run(monkeypatch, env, "--carrier", "fedex", "--force", "--json")
    assert document(only_fedex)["checked"] == 1
    assert emulator.polls("ups", untouched.tracking_number) == 0
    unknown = run(monkeypatch, env, "--shipments=424242")
    assert unknown.exit_code == 2


def test_stats_reports_counts_due_failing_and_last_runs_without_syncing(
    monkeypatch: pytest.MonkeyPatch,
    database: Database,
    emulator: Emulator,
    add_shipment: ShipmentFactory,
) -> None:
    add_shipment("ups")
    add_shipment("fedex", auto_refresh_enabled=False, next_check_at=None)
    env = emulator.environment(database)
    run(monkeypatch, env, "--carrier", "fedex")
    result = run(monkeypatch, env, "--stats", "--json")
    stats = document(result)
    assert result.exit_code == 0
    assert stats["total"] == 2
    assert stats["due_now"] == 1
    assert stats["disabled"] == 1
    assert stats["by_carrier"] == {"fedex": 1, "ups": 1}
    assert len(stats["last_runs"]) == 1
    assert emulator.polls("ups", "x") == 0
    assert emulator.stats()["requests"].get("ups", 0) == 0
    text = run(monkeypatch, env, "--stats")
    assert "due now: 1" in text.stdout


def test_named_shipments_that_cannot_be_synced_are_reported_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
    database: Database,
    emulator: Emulator,
    add_shipment: ShipmentFactory,
) -> None:
    delivered = add_shipment("ups", status=ShipmentStatus.DELIVERED, next_check_at=None)
    result = run(
        monkeypatch, emulator.environment(database), f"--shipments={delivered.id}", "--verbose"
    )
    assert result.exit_code == 0
    assert "final status delivered" in result.stdout
    assert emulator.polls("ups", delivered.tracking_number) == 0
