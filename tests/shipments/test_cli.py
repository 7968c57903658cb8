"""`parcelwatch shipments`, run as a user runs it, on the configured database."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from parcelwatch.cli.main import app
from parcelwatch.config import Settings

Invoke = Callable[..., Result]

UPS_NUMBER = "1Z5R89390357567127"
USPS_NUMBER = "9361289673090019555035"


@pytest.fixture
def run(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(app, list(args), input=input)

    return invoke


def test_add_registers_numbers_and_reports_each(run: Invoke) -> None:
    result = run("shipments", "add", UPS_NUMBER, USPS_NUMBER, "-d", "Gift")
    assert result.exit_code == 0, result.output
    assert f"Added: #1 {UPS_NUMBER} (ups)" in result.output
    assert f"Added: #2 {USPS_NUMBER} (usps)" in result.output
    again = run("shipments", "add", UPS_NUMBER)
    assert "Already tracked: #1" in again.output


def test_add_exits_non_zero_naming_what_is_wrong(run: Invoke) -> None:
    result = run("shipments", "add", "HELLO12345")
    assert result.exit_code == 1
    assert "Could not detect the carrier" in result.output


def test_json_output_is_exactly_one_document(run: Invoke) -> None:
    run("shipments", "add", UPS_NUMBER, "--description", "Shoes")
    result = run("shipments", "list", "--json")
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert [item["tracking_number"] for item in document["items"]] == [UPS_NUMBER]
    assert document["next_cursor"] is None
    shown = json.loads(run("shipments", "show", UPS_NUMBER, "--json").stdout)
    assert shown["description"] == "Shoes"
    assert json.loads(run("shipments", "events", "1", "--json").stdout) == []


def test_list_filters_and_prints_a_table(run: Invoke) -> None:
    run("shipments", "add", UPS_NUMBER, USPS_NUMBER)
    result = run("shipments", "list", "--carrier", "usps")
    assert result.exit_code == 0
    assert USPS_NUMBER in result.output
    assert UPS_NUMBER not in result.output


def test_update_changes_description_and_auto_refresh(run: Invoke) -> None:
    run("shipments", "add", UPS_NUMBER)
    result = run("shipments", "update", "1", "-d", "Boots", "--disable-auto-refresh", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["description"] == "Boots"
    assert body["auto_refresh_enabled"] is False
    assert body["next_check_at"] is None


def test_update_without_a_change_says_what_to_give(run: Invoke) -> None:
    run("shipments", "add", UPS_NUMBER)
    result = run("shipments", "update", "1")
    assert result.exit_code == 1
    assert "nothing to change" in result.output


def test_delete_asks_for_confirmation(run: Invoke) -> None:
    run("shipments", "add", UPS_NUMBER)
    refused = run("shipments", "delete", UPS_NUMBER, input="n\n")
    assert refused.exit_code == 1
    assert json.loads(run("shipments", "list", "--json").stdout)["items"] != []
    accepted = run("shipments", "delete", UPS_NUMBER, input="y\n")
    assert accepted.exit_code == 0
    assert json.loads(run("shipments", "list", "--json").stdout)["items"] == []


def test_delete_with_json_needs_yes_and_deletes_nothing_without_it(run: Invoke) -> None:
    run("shipments", "add", UPS_NUMBER)

    refused = run("shipments", "delete", UPS_NUMBER, "--json")
    deleted = run("shipments", "delete", UPS_NUMBER, "--json", "--yes")

    assert refused.exit_code == 1
    assert "add --yes" in refused.output
    assert deleted.exit_code == 0
    assert "deleted" in json.loads(deleted.stdout)


def test_an_unknown_shipment_exits_1_with_a_message(run: Invoke) -> None:
    result = run("shipments", "show", "42")
    assert result.exit_code == 1
    assert "No shipment with id or tracking number '42'" in result.output


def test_a_database_that_was_never_migrated_says_to_run_db_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")

    result = CliRunner().invoke(app, ["shipments", "list"])

    assert result.exit_code == 2
    assert "parcelwatch db upgrade" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_an_unreachable_database_is_one_line_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://parcel:hunter2secret@127.0.0.1:1/parcelwatch")

    result = CliRunner().invoke(app, ["shipments", "list"])

    assert result.exit_code == 2
    assert result.output.startswith("parcelwatch: cannot use the database: OperationalError")
    assert "hunter2secret" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
