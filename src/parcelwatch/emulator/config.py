"""Emulator configuration: storyline pins and knobs, built in code or loaded from a scenario file.

A scenario file is JSON or TOML with the same fields as `EmulatorConfig`, for example::

    seed = 7
    speed = 60                      # one emulated hour per real minute
    epoch = "2026-11-01T08:00:00Z"  # optional: every number starts here
    [latency]
    distribution = "uniform"        # fixed | uniform | normal
    min_ms = 50
    max_ms = 300
    [rate_limits]
    usps = 1.0                      # requests a second, token bucket
    [quotas]
    dhl = "250/day@00:00Z"          # hour and day allowances (the <CARRIER>_QUOTA syntax)
    [faults]
    server_error = 0.05             # probabilities per tracking request
    timeout = 0.01
    malformed = 0.01
    token_expiry = 0.02
    connection_reset = 0.01
    malformed_numbers = ["1Z999AA10123456784"]  # always malformed answers
    [faults.carriers.ups]
    server_error = 0.5
    [pins]
    "1Z999AA10123456784" = "failed_attempt"
    "9400100000000000000017" = { storyline = "normal", age = "3d" }
"""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from parcelwatch.carriers.quotas import parse_quota
from parcelwatch.config import parse_duration
from parcelwatch.emulator.storylines import Storyline

__all__ = [
    "CARRIERS",
    "DEMO_SCENARIO",
    "EmulatorConfig",
    "FaultRates",
    "Latency",
    "Pin",
    "ScenarioError",
    "load_scenario",
]

CARRIERS = ("usps", "ups", "fedex", "dhl", "shipengine")
# Shipped with the package for the demo mode: pinned numbers, speed 600, mild faults.
DEMO_SCENARIO = Path(__file__).with_name("demo-scenario.json")

# The real APIs' token lifetimes (API-FACTS.md); UPS sends its value as a string.
DEFAULT_TOKEN_LIFETIMES = {"usps": 28799.0, "ups": 14399.0, "fedex": 3599.0}

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class ScenarioError(Exception):
    """A scenario file or knob value the emulator cannot run with."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Latency(_Model):
    """Added delay before each carrier answer: fixed, uniform(min, max) or normal(mean, stddev)."""

    distribution: Literal["fixed", "uniform", "normal"] = "fixed"
    ms: float = Field(0.0, ge=0)
    min_ms: float = Field(0.0, ge=0)
    max_ms: float = Field(0.0, ge=0)
    mean_ms: float = Field(0.0, ge=0)
    stddev_ms: float = Field(0.0, ge=0)


class FaultRates(_Model):
    """Probability (0..1) that one carrier request gets each fault; at most one fault a request."""

    server_error: float = Field(0.0, ge=0, le=1)
    timeout: float = Field(0.0, ge=0, le=1)
    malformed: float = Field(0.0, ge=0, le=1)
    token_expiry: float = Field(0.0, ge=0, le=1)
    connection_reset: float = Field(0.0, ge=0, le=1)

    def total(self) -> float:
        return (
            self.server_error + self.timeout + self.malformed + self.token_expiry
        ) + self.connection_reset


class Faults(FaultRates):
    """Global fault rates, per-carrier overrides and the hang used for timeouts."""

    timeout_seconds: float = Field(60.0, gt=0)
    carriers: dict[str, FaultRates] = Field(default_factory=dict)
    # Faults normally hit tracking calls only, so a client's token fetch still works.
    on_token_endpoints: bool = False
    # Tracking numbers whose every answer is malformed (cut in half), whatever the rates: a
    # few bad numbers in an otherwise good carrier. A FedEx answer naming one is cut whole.
    malformed_numbers: list[str] = Field(default_factory=list)

    def for_carrier(self, carrier: str) -> FaultRates:
        return self.carriers.get(carrier, self)


class Credentials(_Model):
    """Exact credentials one carrier accepts (id/secret, or the API key in `client_id`)."""

    client_id: str
    client_secret: str = ""


class Pin(_Model):
    """A tracking number pinned to a storyline, optionally already `age` into it."""

    storyline: Storyline
    age: Duration = timedelta(0)


def _pin(value: Any) -> Any:
    return {"storyline": value} if isinstance(value, str) else value


class EmulatorConfig(_Model):
    """Everything the emulator does differently from its defaults."""

    seed: int = 0
    # Emulated seconds per real second; 0 freezes the clock (move it with advance()).
    speed: float = Field(1.0, ge=0)
    # The emulated time at start-up (default: the real time).
    start: datetime | None = None
    # When set, every number's storyline starts here instead of when it is first seen.
    epoch: datetime | None = None
    # Numbers first seen start this far into their storyline (handy for demos).
    head_start: Duration = timedelta(0)
    pins: dict[str, Annotated[Pin, BeforeValidator(_pin)]] = Field(default_factory=dict)
    latency: Latency = Latency()
    rate_limits: dict[str, float] = Field(default_factory=dict)  # carrier -> requests/s
    # carrier -> allowance windows, e.g. "250/day@00:00Z"; once one is spent the carrier
    # answers 429 its own way until it resets (FedEx: "Retry after 12:00AM GMT")
    quotas: dict[str, str] = Field(default_factory=dict)
    faults: Faults = Faults()
    # Token lifetime in seconds per OAuth carrier (default: the real APIs' values).
    token_lifetimes: dict[str, float] = Field(default_factory=dict)
    # None: any non-empty id/secret (or API key) is accepted; set to demand exact values.
    credentials: dict[str, Credentials] = Field(default_factory=dict)
    reject_credentials: bool = False  # refuse every credential (auth-failure tests)
    # The public URL ShipEngine webhook bodies name in resource_url.
    public_base_url: str = "http://127.0.0.1:9000"

    @field_validator("start", "epoch")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @field_validator("quotas")
    @classmethod
    def _quotas(cls, value: dict[str, str]) -> dict[str, str]:
        for text in value.values():
            parse_quota(text)
        return value

    @field_validator("rate_limits", "token_lifetimes", "credentials", "quotas")
    @classmethod
    def _known_carriers(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(CARRIERS))
        if unknown:
            raise ValueError(f"unknown carrier {', '.join(unknown)}; expected {CARRIERS}")
        return value

    def token_lifetime(self, carrier: str) -> float:
        return self.token_lifetimes.get(carrier, DEFAULT_TOKEN_LIFETIMES.get(carrier, 3600.0))


def load_scenario(path: str | Path, **overrides: Any) -> EmulatorConfig:
    """Read a JSON or TOML scenario file; keyword overrides (e.g. from the CLI) win."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
        data: dict[str, Any] = (
            tomllib.loads(text) if file.suffix.lower() == ".toml" else json.loads(text)
        )
    except (OSError, ValueError) as error:
        raise ScenarioError(f"cannot read scenario {file}: {error}") from error
    return build_config({**data, **overrides})


def build_config(data: dict[str, Any]) -> EmulatorConfig:
    """Validate a mapping into an `EmulatorConfig`, raising `ScenarioError` with the field."""
    try:
        return EmulatorConfig.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
            for item in error.errors()
        )
        raise ScenarioError(f"invalid emulator configuration: {problems}") from error
