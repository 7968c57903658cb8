"""What the dashboard shows about the running server: updater state, carriers, health.

Reads the running sync engine and updater through `api.deps`, and degrades to a clear "not
available" when a piece is not running (tests, `AUTO_UPDATE_ENABLED=false`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import FastAPI
from sqlalchemy.orm import Session

from parcelwatch.api.deps import manual_sync_of, settings_of, updater_of
from parcelwatch.carriers.providers import PROVIDERS
from parcelwatch.carriers.registry import missing_credentials
from parcelwatch.config import Settings
from parcelwatch.logs import get_logger
from parcelwatch.ops import health

__all__ = [
    "HealthView",
    "UpdaterState",
    "health_report",
    "manual_refresh_supported",
    "not_polled_reason",
    "provider_rows",
    "updater_state",
    "wake_updater",
]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class UpdaterState:
    available: bool
    enabled: bool = False
    running: bool = False
    paused: bool = False
    in_flight_batches: int = 0
    pass_in_progress: bool = False

    @property
    def label(self) -> str:
        if not self.available:
            return "Not running"
        if not self.enabled:
            return "Off (AUTO_UPDATE_ENABLED=false)"
        if self.paused:
            return "Paused"
        if self.pass_in_progress:
            return "Updating now"
        return "Running" if self.running else "Stopped"

    @property
    def tone(self) -> str:
        if not self.available or not self.enabled:
            return "muted"
        if self.paused:
            return "warn"
        return "ok" if self.running else "bad"


def updater_state(app: FastAPI) -> UpdaterState:
    updater = updater_of(app)
    if updater is None:
        return UpdaterState(available=False)
    sync_engine = updater.sync_engine
    return UpdaterState(
        available=True,
        enabled=updater.enabled,
        running=updater.running,
        paused=sync_engine.paused,
        in_flight_batches=sync_engine.in_flight_batches,
        pass_in_progress=sync_engine.current is not None,
    )


async def wake_updater(app: FastAPI) -> None:
    """Let the updater look at new shipments now rather than after its idle sleep (run as a
    background task, so after the request's transaction committed)."""
    updater = updater_of(app)
    if updater is not None and updater.enabled:
        updater.wake()


def manual_refresh_supported(app: FastAPI) -> bool:
    return manual_sync_of(app) is not None


def not_polled_reason(app: FastAPI, carrier: str) -> str | None:
    """Why the carrier's shipments are not polled (no credentials...), from the registry."""
    engine = manual_sync_of(app)
    if engine is None:
        return None
    providers = engine.providers
    try:
        if providers.provider_for(carrier) is not None:
            return None
        reason: str | None = providers.unconfigured_reason(carrier)
    except Exception:  # a provider table that cannot answer must not break the page
        log.exception("could not ask the carrier registry", carrier=carrier)
        return None
    return reason


@dataclass(frozen=True, slots=True)
class ProviderRow:
    code: str
    name: str
    configured: bool
    missing: list[str]
    base_url: str


def provider_rows(settings: Settings) -> list[ProviderRow]:
    return [
        ProviderRow(
            code=spec.code,
            name=spec.name,
            configured=not missing_credentials(spec, settings),
            missing=missing_credentials(spec, settings),
            base_url=str(getattr(settings, spec.base_url_setting)),
        )
        for spec in PROVIDERS
    ]


@dataclass(frozen=True, slots=True)
class HealthCheck:
    name: str
    status: str  # ok | warning | critical
    message: str

    @property
    def tone(self) -> str:
        return _TONES.get(self.status, "muted")


_TONES = {"ok": "ok", "healthy": "ok", "warning": "warn", "critical": "bad"}


@dataclass(frozen=True, slots=True)
class HealthView:
    available: bool
    status: str = "unknown"
    checks: list[HealthCheck] = field(default_factory=list)
    note: str | None = None

    @property
    def tone(self) -> str:
        return _TONES.get(self.status, "muted")


def health_report(app: FastAPI, session: Session) -> HealthView:
    """The health service's database checks (carrier calls are left to `GET /api/health`,
    so a page polled every few seconds never calls a carrier)."""
    try:
        report = health.health_report(session, settings_of(app))
    except Exception as error:  # the page shows the failure instead of failing itself
        log.exception("health report failed")
        return HealthView(available=False, note=f"Health checks failed: {type(error).__name__}")
    return HealthView(
        available=True,
        status=report.status,
        checks=[
            HealthCheck(name=check.name, status=check.status.value, message=check.message)
            for check in report.checks
        ],
        note="Carrier API checks run in GET /api/health and `parcelwatch health`.",
    )
