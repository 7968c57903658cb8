"""`parcelwatch emulator`: serve every emulated carrier on one port and say how to use it."""

from __future__ import annotations

import re
from typing import Any

import typer
import uvicorn

from parcelwatch.cli.common import fail
from parcelwatch.config import parse_duration
from parcelwatch.emulator.app import create_emulator_app
from parcelwatch.emulator.config import (
    CARRIERS,
    EmulatorConfig,
    ScenarioError,
    build_config,
    load_scenario,
)
from parcelwatch.emulator.faults import FaultKind
from parcelwatch.emulator.server import quiet_emulated_resets

__all__ = ["emulator", "parse_latency"]

# carrier -> (id variable, secret variable or None) of parcelwatch's own settings
CREDENTIAL_VARIABLES = {
    "usps": ("USPS_CLIENT_ID", "USPS_CLIENT_SECRET"),
    "ups": ("UPS_CLIENT_ID", "UPS_CLIENT_SECRET"),
    "fedex": ("FEDEX_API_KEY", "FEDEX_SECRET_KEY"),
    "dhl": ("DHL_API_KEY", None),
    "shipengine": ("SHIPENGINE_API_KEY", None),
}


def _milliseconds(text: str) -> float:
    text = text.strip()
    if text.endswith("ms"):
        return float(text[:-2])
    return parse_duration(text).total_seconds() * 1000


def parse_latency(text: str) -> dict[str, Any]:
    """`200ms` fixed, `50ms-300ms` (or `50-300ms`) uniform, `normal:200ms,50ms` normal."""
    text = text.strip()
    if text.startswith("normal:"):
        mean, _, stddev = text.removeprefix("normal:").partition(",")
        return {
            "distribution": "normal",
            "mean_ms": _milliseconds(mean),
            "stddev_ms": _milliseconds(stddev or "0ms"),
        }
    match = re.fullmatch(r"([\d.]+)(ms|s)?\s*(?:-|\.\.)\s*([\d.]+)(ms|s)?", text)
    if match:
        low, low_unit, high, high_unit = match.groups()
        unit = high_unit or "ms"
        return {
            "distribution": "uniform",
            "min_ms": _milliseconds(low + (low_unit or unit)),
            "max_ms": _milliseconds(high + unit),
        }
    return {"distribution": "fixed", "ms": _milliseconds(text)}


def _pairs(values: list[str], option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, separator, setting = value.partition("=")
        if not separator or not key.strip() or not setting.strip():
            fail(f"{option} expects KEY=VALUE, got {value!r}", code=2)
        pairs[key.strip()] = setting.strip()
    return pairs


def _faults(values: list[str], base: dict[str, Any]) -> dict[str, Any]:
    """`server_error=0.1` (every carrier) or `ups:timeout=0.5` (one carrier)."""
    faults = dict(base)
    per_carrier: dict[str, dict[str, Any]] = {
        name: dict(rates) for name, rates in dict(faults.get("carriers", {})).items()
    }
    kinds = {kind.value for kind in FaultKind}
    for key, rate in _pairs(values, "--fault-rate").items():
        carrier, _, kind = key.rpartition(":")
        if kind not in kinds or (carrier and carrier not in CARRIERS):
            fail(f"--fault-rate: unknown fault {key!r}; kinds: {', '.join(sorted(kinds))}", code=2)
        target = per_carrier.setdefault(carrier, {}) if carrier else faults
        target[kind] = float(rate)
    if per_carrier:
        faults["carriers"] = per_carrier
    return faults


def emulator(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(9000, help="Port to listen on."),
    scenario: str | None = typer.Option(None, help="Scenario file (JSON or TOML): pins, knobs."),
    speed: float | None = typer.Option(None, help="Emulated seconds per real second (60: 1h/min)."),
    latency: str | None = typer.Option(
        None, help="Added latency: 200ms, 50-300ms (uniform) or normal:200ms,50ms."
    ),
    rate_limit: list[str] = typer.Option(
        [], "--rate-limit", help="CARRIER=REQUESTS_PER_SECOND, repeatable (429 + Retry-After)."
    ),
    quota: list[str] = typer.Option(
        [],
        "--quota",
        help="CARRIER=WINDOWS (e.g. dhl=250/day@00:00Z), repeatable: 429 once one is spent.",
    ),
    fault_rate: list[str] = typer.Option(
        [],
        "--fault-rate",
        help="KIND=P or CARRIER:KIND=P, repeatable; kinds: server_error, timeout, malformed, "
        "token_expiry, connection_reset.",
    ),
    seed: int | None = typer.Option(None, help="Seed for storylines, faults and latency."),
    head_start: str | None = typer.Option(
        None, help="Start new numbers this far into their storyline, e.g. 2d."
    ),
    timeout_hang: str | None = typer.Option(
        None, help="How long a `timeout` fault holds the answer (default 60s)."
    ),
    reject_credentials: bool = typer.Option(False, help="Refuse every credential (401s)."),
) -> None:
    """Run the carrier emulator: USPS, UPS, FedEx, DHL and ShipEngine on one port."""
    try:
        config = load_scenario(scenario) if scenario else EmulatorConfig()
        data = config.model_dump(exclude_unset=True)
        for name, value in (("speed", speed), ("seed", seed), ("head_start", head_start)):
            if value is not None:
                data[name] = value
        if latency:
            data["latency"] = parse_latency(latency)
        if rate_limit:
            limits = {k: float(v) for k, v in _pairs(rate_limit, "--rate-limit").items()}
            data["rate_limits"] = {**data.get("rate_limits", {}), **limits}
        if quota:
            data["quotas"] = {**data.get("quotas", {}), **_pairs(quota, "--quota")}
        faults = dict(data.get("faults", {}))
        if timeout_hang:
            faults["timeout_seconds"] = parse_duration(timeout_hang).total_seconds()
        data["faults"] = _faults(fault_rate, faults)
        data["reject_credentials"] = reject_credentials or config.reject_credentials
        data.setdefault("public_base_url", f"http://{host}:{port}")
        config = build_config(data)
    except (ScenarioError, ValueError) as error:
        fail(str(error), code=2)
    typer.echo(_banner(config, f"http://{host}:{port}"))
    quiet_emulated_resets()
    uvicorn.run(create_emulator_app(config), host=host, port=port, log_level="warning")


def _banner(config: EmulatorConfig, base: str) -> str:
    lines = [
        f"parcelwatch carrier emulator on {base} (speed x{config.speed:g}, seed {config.seed})"
    ]
    lines.append("Point parcelwatch at it with:")
    for carrier, (id_variable, secret_variable) in CREDENTIAL_VARIABLES.items():
        expected = config.credentials.get(carrier)
        lines.append(f"  {carrier.upper()}_BASE_URL={base}/{carrier}")
        lines.append(f"  {id_variable}={expected.client_id if expected else 'emulator'}")
        if secret_variable:
            lines.append(
                f"  {secret_variable}={expected.client_secret if expected else 'emulator'}"
            )
    lines.append(f"  SHIPENGINE_JWKS_URL={base}/shipengine/jwks")
    if config.reject_credentials:
        lines.append("Every credential is refused (--reject-credentials).")
    else:
        lines.append("Any non-empty credentials are accepted unless the scenario sets some.")
    lines.append(f"Stats: {base}/_emulator/stats   Clock: POST {base}/_emulator/clock")
    return "\n".join(lines)
