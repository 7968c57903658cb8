"""`parcelwatch shipments`, run as a user runs it, on the configured database."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from parcelwatch.cli.main import app
from parcelwatch.config import Settings
from parcelwatch.db import create_db_engine, make_session_factory, session_scope
from parcelwatch.domain import ShipmentStatus, TrackEvent, TrackInfo, utcnow
from parcelwatch.shipments.schemas import ShipmentOut
from parcelwatch.shipments.service import register_shipment
from parcelwatch.sync.writer import apply_track_info
from tests.conftest import Invoke

UPS_NUMBER = "1Z5R89390357567127"
USPS_NUMBER = "9361289673090019555035"


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


def _track(settings: Settings, number: str, status: ShipmentStatus, description: str) -> None:
    """Register a shipment and record a carrier answer, as a sync would."""
    engine = create_db_engine(settings.sqlalchemy_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            shipment, _ = register_shipment(
                session, tracking_number=number, carrier=None, description=description
            )
            when = utcnow() - timedelta(hours=3)
            info = TrackInfo(
                status=status,
                status_detail=status.value.upper(),
                events=(TrackEvent(occurred_at=when, status=status, description="Scan"),),
                estimated_delivery=utcnow() + timedelta(days=2),
                delivered_at=when if status is ShipmentStatus.DELIVERED else None,
                signed_by="J SMITH" if status is ShipmentStatus.DELIVERED else None,
            )
            apply_track_info(session, shipment.id, info, shipment.carrier)
    finally:
        engine.dispose()


LONG_STATUSES = {
    UPS_NUMBER: (ShipmentStatus.RETURNING_TO_SENDER, "Returning to sender"),
    USPS_NUMBER: (ShipmentStatus.AVAILABLE_FOR_PICKUP, "Ready for pickup"),
    "771000000002": (ShipmentStatus.DELIVERY_ATTEMPTED, "Delivery attempted"),
    "1Z999AA10123456784": (ShipmentStatus.DELIVERED, "Delivered"),
}


def test_list_at_80_columns_shows_whole_statuses_and_numbers(
    run: Invoke, settings: Settings
) -> None:
    for number, (status, _) in LONG_STATUSES.items():
        _track(settings, number, status, "A rather long description of what is in the box")
    result = CliRunner().invoke(app, ["shipments", "list"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in result.stdout
    for number, (_, label) in LONG_STATUSES.items():
        (row,) = [line for line in lines if number in line]
        assert label in row
    assert "returning_to_sender" not in result.stdout


def test_list_in_a_wide_terminal_also_shows_when_each_was_checked(
    run: Invoke, settings: Settings
) -> None:
    _track(settings, UPS_NUMBER, ShipmentStatus.IN_TRANSIT, "Boots")
    narrow = CliRunner().invoke(app, ["shipments", "list"], env={"COLUMNS": "80"})
    wide = CliRunner().invoke(app, ["shipments", "list"], env={"COLUMNS": "120"})
    assert "Checked" not in narrow.stdout
    assert "Checked" in wide.stdout
    assert "In transit" in wide.stdout


def test_show_names_each_field_as_a_person_would(run: Invoke, settings: Settings) -> None:
    _track(settings, "1Z999AA10123456784", ShipmentStatus.DELIVERED, "Trail running shoes")
    result = CliRunner().invoke(app, ["shipments", "show", "1"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80

    rows = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in lines)
    assert rows["Tracking number"] == "1Z999AA10123456784"
    assert rows["Carrier"] == "UPS"
    assert rows["Status"] == "Delivered (final: no more updates)"
    assert rows["Signed by"] == "J SMITH"
    assert rows["Automatic updates"] == "on"
    assert rows["Next check"] == "-"
    for field in ShipmentOut.model_fields:
        if "_" in field:
            assert field not in result.stdout, field
