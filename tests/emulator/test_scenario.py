"""Scenario files (TOML or JSON) pin numbers to storylines and set the knobs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from parcelwatch.emulator import (
    EmulatorConfig,
    ScenarioError,
    Storyline,
    create_emulator_app,
    emulator_state,
    load_scenario,
)
from parcelwatch.emulator.config import DEMO_SCENARIO
from parcelwatch.emulator.storylines import EventKind

TOML = """
seed = 7
speed = 60
start = "2026-11-02T12:00:00Z"
head_start = "1h"

[latency]
distribution = "uniform"
min_ms = 50
max_ms = 300

[rate_limits]
usps = 0.5

[faults]
server_error = 0.05
timeout_seconds = 20

[faults.carriers.ups]
timeout = 0.5

[credentials.dhl]
client_id = "dhl-key"

[pins]
"9400100000000000000017" = "failed_attempt"
"1Z999AA10123456784" = { storyline = "normal", age = "3d" }
"""


def test_a_toml_scenario_sets_pins_and_knobs(tmp_path: Path) -> None:
    path = tmp_path / "scenario.toml"
    path.write_text(TOML)
    config = load_scenario(path)
    assert (config.seed, config.speed) == (7, 60)
    assert config.start == datetime(2026, 11, 2, 12, tzinfo=UTC)
    assert config.head_start == timedelta(hours=1)
    assert config.latency.distribution == "uniform"
    assert config.rate_limits == {"usps": 0.5}
    assert config.faults.server_error == 0.05
    assert config.faults.timeout_seconds == 20
    assert config.faults.for_carrier("ups").timeout == 0.5
    assert config.faults.for_carrier("fedex").server_error == 0.05
    assert config.pins["9400100000000000000017"].storyline is Storyline.FAILED_ATTEMPT
    assert config.pins["1Z999AA10123456784"].age == timedelta(days=3)
    assert config.credentials["dhl"].client_id == "dhl-key"


def test_a_json_scenario_works_the_same_and_overrides_win(tmp_path: Path) -> None:
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps({"seed": 3, "pins": {"EMU1": "never_moves"}}))
    config = load_scenario(path, seed=9)
    assert config.seed == 9
    assert config.pins["EMU1"].storyline is Storyline.NEVER_MOVES


def test_a_pinned_number_follows_its_storyline_from_its_age() -> None:
    start = datetime(2026, 11, 2, 12, tzinfo=UTC)
    config = EmulatorConfig(
        speed=0, start=start, pins={"EMU1": {"storyline": "return_to_sender", "age": "30d"}}
    )
    state = emulator_state(create_emulator_app(config))
    timeline = state.timeline("EMU1")
    assert timeline.storyline is Storyline.RETURN_TO_SENDER
    assert timeline.started_at == start - timedelta(days=30)
    assert timeline.visible(start)[0].kind is EventKind.RETURNED


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"pins": {"X": "teleported"}}', "pins.X"),
        ('{"rate_limits": {"royal_mail": 1}}', "unknown carrier"),
        ('{"faults": {"server_error": 2}}', "faults.server_error"),
        ('{"speed": -1}', "speed"),
        ('{"surprise": true}', "surprise"),
        ("{not json", "cannot read scenario"),
    ],
)
def test_an_invalid_scenario_names_the_problem(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "scenario.json"
    path.write_text(content)
    with pytest.raises(ScenarioError, match=problem):
        load_scenario(path)


def test_a_missing_scenario_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "absent.toml")


def test_the_packaged_demo_scenario_loads() -> None:
    config = load_scenario(DEMO_SCENARIO)
    assert config.speed == 600
    assert config.pins["1Z999AA10123456791"].storyline is Storyline.EXCEPTION
