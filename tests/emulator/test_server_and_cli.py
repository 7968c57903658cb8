"""The emulator on a real port: in a background thread and as `parcelwatch emulator`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from parcelwatch.cli.main import app as cli_app
from parcelwatch.emulator import EmulatorConfig, create_emulator_app, emulator_state
from parcelwatch.emulator.cli import parse_latency
from parcelwatch.emulator.server import run_in_thread

NUMBER = "1Z999AA10123456784"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_run_in_thread_serves_on_a_chosen_port_and_counts_requests() -> None:
    app = create_emulator_app(EmulatorConfig(pins={NUMBER: {"storyline": "normal", "age": "9d"}}))
    with run_in_thread(app=app) as base_url:
        with httpx.Client(base_url=base_url, timeout=5) as client:
            answer = client.get(
                "/dhl/track/shipments",
                params={"trackingNumber": NUMBER},
                headers={"DHL-API-Key": "k"},
            )
    assert base_url.startswith("http://127.0.0.1:")
    assert answer.json()["shipments"][0]["status"]["statusCode"] == "delivered"
    assert emulator_state(app).stats.requests["dhl"] == 1


def test_over_the_wire_a_reset_drops_the_connection_and_a_timeout_hangs() -> None:
    config = EmulatorConfig(
        faults={
            "timeout_seconds": 3,
            "carriers": {"dhl": {"connection_reset": 1.0}, "shipengine": {"timeout": 1.0}},
        }
    )
    with run_in_thread(config) as base_url, httpx.Client(base_url=base_url, timeout=0.5) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(
                "/dhl/track/shipments",
                params={"trackingNumber": NUMBER},
                headers={"DHL-API-Key": "k"},
            )
        with pytest.raises(httpx.ReadTimeout):
            client.get(
                "/shipengine/v1/tracking",
                params={"carrier_code": "ups", "tracking_number": NUMBER},
                headers={"API-Key": "k"},
            )


def test_emulator_help_lists_the_knobs() -> None:
    result = CliRunner().invoke(cli_app, ["emulator", "--help"])
    assert result.exit_code == 0
    for option in (
        "--port",
        "--scenario",
        "--speed",
        "--latency",
        "--rate-limit",
        "--fault-rate",
        "--seed",
    ):
        assert option in result.output


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("200ms", {"distribution": "fixed", "ms": 200.0}),
        ("1s", {"distribution": "fixed", "ms": 1000.0}),
        ("50-300ms", {"distribution": "uniform", "min_ms": 50.0, "max_ms": 300.0}),
        ("normal:200ms,50ms", {"distribution": "normal", "mean_ms": 200.0, "stddev_ms": 50.0}),
    ],
)
def test_latency_option_forms(text: str, expected: dict[str, object]) -> None:
    assert parse_latency(text) == expected


def test_a_bad_fault_option_exits_with_status_2() -> None:
    result = CliRunner().invoke(cli_app, ["emulator", "--fault-rate", "meteor=0.5"])
    assert result.exit_code == 2


def test_parcelwatch_emulator_starts_prints_base_urls_and_answers(tmp_path: Path) -> None:
    port = _free_port()
    scenario = tmp_path / "scenario.toml"
    scenario.write_text('[pins]\n"1Z999AA10123456784" = { storyline = "normal", age = "9d" }\n')
    command = [
        sys.executable, "-m", "parcelwatch", "emulator", "--port", str(port),
        "--scenario", str(scenario), "--speed", "60", "--rate-limit", "ups=5", "--seed", "4",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        deadline = time.monotonic() + 20
        answer = None
        while time.monotonic() < deadline:
            try:
                answer = httpx.get(
                    f"http://127.0.0.1:{port}/dhl/track/shipments",
                    params={"trackingNumber": NUMBER},
                    headers={"DHL-API-Key": "k"},
                    timeout=2,
                )
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert answer is not None
        assert answer.status_code == 200
        assert answer.json()["shipments"][0]["status"]["statusCode"] == "delivered"
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert f"USPS_BASE_URL=http://127.0.0.1:{port}/usps" in output
    assert "UPS_CLIENT_SECRET=emulator" in output
    assert f"SHIPENGINE_JWKS_URL=http://127.0.0.1:{port}/shipengine/jwks" in output
