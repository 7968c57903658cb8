"""Configuration: the contract's variables, their defaults, and refusing bad values."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from parcelwatch.config import ConfigError, load_settings, parse_duration


def test_every_contract_variable_has_its_documented_default() -> None:
    settings = load_settings(_env_file=None)
    assert settings.auto_update_enabled is True
    assert settings.auto_update_cutoff_days == 30
    assert settings.auto_update_batch_size == 10
    assert settings.auto_update_max_retries == 10
    assert settings.update_interval == timedelta(hours=1)
    assert settings.auto_update_batch_timeout == timedelta(seconds=60)
    assert settings.auto_update_individual_timeout == timedelta(seconds=30)
    assert settings.tracking_api_provider == "auto"
    assert settings.database_url == "sqlite:///./parcelwatch.db"
    assert settings.admin_api_key is None
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.alert_email_enabled is False
    assert settings.alert_slack_enabled is False
    assert settings.alert_webhook_enabled is False


def test_environment_variables_are_read_by_their_contract_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTO_UPDATE_BATCH_SIZE", "25")
    monkeypatch.setenv("UPDATE_INTERVAL", "1h30m")
    monkeypatch.setenv("USPS_BASE_URL", "http://127.0.0.1:9000/usps/")
    monkeypatch.setenv("ALERT_EMAIL_RECIPIENTS", "ops@example.com, oncall@example.com")
    monkeypatch.setenv("TRACKING_API_PROVIDER", "shipengine")
    settings = load_settings(_env_file=None)
    assert settings.auto_update_batch_size == 25
    assert settings.update_interval == timedelta(hours=1, minutes=30)
    assert settings.usps_base_url == "http://127.0.0.1:9000/usps"
    assert settings.alert_email_recipients == ["ops@example.com", "oncall@example.com"]
    assert settings.tracking_api_provider == "shipengine"


def test_an_empty_variable_means_unset_so_an_empty_admin_key_disables_the_admin_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ADMIN_API_KEY", "")
    monkeypatch.setenv("USPS_CLIENT_ID", "")
    monkeypatch.setenv("AUTO_UPDATE_BATCH_SIZE", "")
    settings = load_settings(_env_file=None)
    assert settings.admin_api_key is None
    assert settings.usps_client_id is None
    assert settings.auto_update_batch_size == 10


def test_usps_batches_with_v3r2_and_35_numbers_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defaults = load_settings(_env_file=None)
    monkeypatch.setenv("USPS_API_VERSION", "V3")
    monkeypatch.setenv("USPS_BATCH_SIZE", "20")
    chosen = load_settings(_env_file=None)

    assert (defaults.usps_api_version, defaults.usps_batch_size) == ("v3r2", 35)
    assert (chosen.usps_api_version, chosen.usps_batch_size) == ("v3", 20)


def test_choice_values_are_read_whatever_their_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "INFO")
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    monkeypatch.setenv("TRACKING_API_PROVIDER", "ShipEngine")
    settings = load_settings(_env_file=None)
    assert (settings.log_level, settings.log_format) == ("info", "json")
    assert settings.tracking_api_provider == "shipengine"


def test_a_dotenv_file_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("AUTO_UPDATE_CUTOFF_DAYS=7\nLOG_FORMAT=json\n")
    settings = load_settings()
    assert settings.auto_update_cutoff_days == 7
    assert settings.log_format == "json"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("5m", timedelta(minutes=5)),
        ("1h", timedelta(hours=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("45", timedelta(seconds=45)),
    ],
)
def test_durations_accept_the_documented_forms(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("AUTO_UPDATE_CUTOFF_DAYS", "-3", "AUTO_UPDATE_CUTOFF_DAYS=-3"),
        ("AUTO_UPDATE_BATCH_SIZE", "0", "AUTO_UPDATE_BATCH_SIZE=0"),
        ("DATABASE_URL", "not a url", "DATABASE_URL"),
        ("DATABASE_URL", "mysql://db/parcels", "DATABASE_URL"),
        ("UPDATE_INTERVAL", "often", "UPDATE_INTERVAL=often"),
        ("UPDATE_INTERVAL", "-5m", "UPDATE_INTERVAL"),
        ("TRACKING_API_PROVIDER", "pigeon", "TRACKING_API_PROVIDER=pigeon"),
        ("USPS_BASE_URL", "ftp://x", "USPS_BASE_URL"),
        ("USPS_API_VERSION", "v4", "USPS_API_VERSION=v4: Input should be 'v3r2' or 'v3'"),
        ("USPS_BATCH_SIZE", "0", "USPS_BATCH_SIZE=0: Input should be greater than or equal to 1"),
        ("USPS_BATCH_SIZE", "101", "USPS_BATCH_SIZE=101: Input should be less than or equal"),
        ("USPS_BATCH_SIZE", "lots", "USPS_BATCH_SIZE=lots: Input should be a valid integer"),
    ],
)
def test_an_invalid_value_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=named):
        load_settings(_env_file=None)


def test_secrets_are_not_echoed_in_configuration_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://user:hunter2@db/parcels")
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None)
    assert "hunter2" not in str(caught.value)


def test_the_cli_stops_with_one_line_and_status_2_on_a_bad_value(tmp_path: Path) -> None:
    environment = {**os.environ, "AUTO_UPDATE_BATCH_SIZE": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "parcelwatch", "shipments", "list"],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "AUTO_UPDATE_BATCH_SIZE=0" in lines[0]
    assert "Traceback" not in result.stderr
