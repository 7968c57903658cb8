"""What started a sync pass, how it ended, and what it did to each shipment.

StrEnums: the stored `sync_runs` values, the logs and the JSON/CLI output are the plain strings
they always were."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "SUCCESSFUL_PASS_OUTCOMES",
    "FAILED_PASS_OUTCOMES",
    "PassOutcome",
    "PassTrigger",
    "ShipmentOutcome",
]


class PassTrigger(StrEnum):
    """Who asked for a pass (`sync_runs.trigger`)."""

    SYNC = "sync"  # `parcelwatch sync`, due shipments
    SYNC_FORCE = "sync-force"  # `parcelwatch sync --force` or named shipments
    UPDATER = "updater"  # the in-server updater
    MANUAL = "manual"  # a manual refresh from the API or the dashboard
    BENCH = "bench"  # bench/sync_throughput.py


class PassOutcome(StrEnum):
    """How a pass ended (`sync_runs.outcome`)."""

    RUNNING = "running"
    OK = "ok"
    PARTIAL = "partial"  # some shipments failed, were deferred or abandoned
    FAILED = "failed"  # every carrier called was down
    STOPPED = "stopped"
    ERROR = "error"
    ABANDONED = "abandoned"  # its engine died mid-pass (closed by another engine's clean-up)


SUCCESSFUL_PASS_OUTCOMES = (PassOutcome.OK, PassOutcome.PARTIAL)
FAILED_PASS_OUTCOMES = (PassOutcome.FAILED, PassOutcome.ERROR)


class ShipmentOutcome(StrEnum):
    """What one pass did to one shipment."""

    UPDATED = "updated"
    UNCHANGED = "unchanged"
    EXPIRED = "expired"  # silent too long: marked expired
    NOT_FOUND = "not_found"
    FAILED = "failed"
    DISABLED = "disabled"  # failed once too often: auto-refresh switched off
    DEFERRED = "deferred"
