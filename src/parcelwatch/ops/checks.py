"""Health check results: a level per check and the report that rolls them up."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from parcelwatch import __version__

__all__ = ["EXIT_CODES", "Check", "HealthReport", "Level"]


class Level(StrEnum):
    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Level.OK: 0, Level.WARNING: 1, Level.CRITICAL: 2}
OVERALL = {Level.OK: "healthy", Level.WARNING: "warning", Level.CRITICAL: "critical"}
EXIT_CODES = {"healthy": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True, slots=True)
class Check:
    """One check: `name` (`database`, `carrier:usps`, `sync_activity`, ...), its level, a
    sentence an operator can act on, and the figures behind it."""

    name: str
    status: Level
    message: str
    figures: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "message": self.message,
            "figures": self.figures,
        }


@dataclass(slots=True)
class HealthReport:
    """Every check; the overall status is the worst one."""

    checked_at: datetime
    checks: list[Check]
    stale_shipments: list[dict[str, Any]] | None = None

    @property
    def level(self) -> Level:
        return max(
            (check.status for check in self.checks), key=lambda lv: lv.rank, default=Level.OK
        )

    @property
    def status(self) -> str:
        return OVERALL[self.level]

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    @property
    def http_status(self) -> int:
        return 503 if self.level is Level.CRITICAL else 200

    def problems(self) -> list[Check]:
        return [check for check in self.checks if check.status is not Level.OK]

    def as_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "status": self.status,
            "checked_at": self.checked_at.isoformat(),
            "version": __version__,
            "checks": [check.as_dict() for check in self.checks],
        }
        if self.stale_shipments is not None:
            document["stale_shipments"] = self.stale_shipments
        return document
