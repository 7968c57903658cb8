"""What an alert says: a notice (one problem, recovery or test) and the batch sent at once."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from parcelwatch import __version__

__all__ = ["AlertBatch", "Notice", "NoticeKind"]

NoticeKind = Literal["alert", "recovery", "test"]


@dataclass(frozen=True, slots=True)
class Notice:
    """`key` is the health check's name (`sync_activity`, `carrier:usps`, ...); `severity` is
    `warning` or `critical` for an alert, `ok` for a recovery, `test` for a test."""

    kind: NoticeKind
    key: str
    severity: str
    message: str
    figures: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        label = {"alert": self.severity.upper(), "recovery": "RECOVERED", "test": "TEST"}
        return f"[{label[self.kind]}] {self.key}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "key": self.key,
            "severity": self.severity,
            "message": self.message,
            "figures": self.figures,
        }


@dataclass(frozen=True, slots=True)
class AlertBatch:
    """The notices of one evaluation, sent as one message per channel."""

    notices: tuple[Notice, ...]
    created_at: datetime
    overall: str  # the health report's status at the time: healthy | warning | critical
    host: str = field(default_factory=socket.gethostname)

    @property
    def is_test(self) -> bool:
        return any(notice.kind == "test" for notice in self.notices)

    @property
    def kind(self) -> NoticeKind:
        if self.is_test:
            return "test"
        return "alert" if any(n.kind == "alert" for n in self.notices) else "recovery"

    @property
    def severity(self) -> str:
        """The worst severity in the batch: critical, warning, ok (recoveries only) or test."""
        if self.is_test:
            return "test"
        severities = {notice.severity for notice in self.notices if notice.kind == "alert"}
        for level in ("critical", "warning"):
            if level in severities:
                return level
        return "ok"

    @property
    def title(self) -> str:
        if self.is_test:
            return "[parcelwatch] TEST alert: please ignore, this is only a test"
        keys = ", ".join(notice.key for notice in self.notices)
        label = {"critical": "CRITICAL", "warning": "WARNING", "ok": "RECOVERED"}[self.severity]
        return f"[parcelwatch] {label}: {keys}"

    def text(self) -> str:
        lines = [self.title, ""]
        lines += [notice.line() for notice in self.notices]
        lines += [
            "",
            f"Overall status: {self.overall}",
            f"Host: {self.host}",
            f"Time: {self.created_at.isoformat()}",
            "Run `parcelwatch health` for the full report.",
        ]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": "parcelwatch",
            "version": __version__,
            "kind": self.kind,
            "severity": self.severity,
            "test": self.is_test,
            "title": self.title,
            "overall_status": self.overall,
            "host": self.host,
            "created_at": self.created_at.isoformat(),
            "notices": [notice.as_dict() for notice in self.notices],
        }
