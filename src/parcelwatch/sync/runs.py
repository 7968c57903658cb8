"""The audit trail: a `SyncRun` row per pass, and the engine's heartbeat row."""

from __future__ import annotations

import os
import socket
from collections import Counter
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, update
from sqlalchemy.orm import Session

from parcelwatch.domain import utcnow
from parcelwatch.models import EngineHeartbeat, SyncRun
from parcelwatch.sync.outcomes import PassOutcome, PassTrigger

__all__ = [
    "MAX_ERRORS_KEPT",
    "PassSummary",
    "beat",
    "finish_run",
    "forget_engine",
    "run_as_dict",
    "start_run",
]

MAX_ERRORS_KEPT = 20


@dataclass(slots=True)
class PassSummary:
    """What one pass did. `outcomes` holds a `ShipmentOutcome` per shipment id (the CLI adds
    `skipped: <reason>` for named shipments it could not take)."""

    trigger: PassTrigger
    engine_id: str
    run_id: int | None = None
    started_at: datetime = field(default_factory=utcnow)
    finished_at: datetime | None = None
    outcome: PassOutcome = PassOutcome.RUNNING
    checked: int = 0
    updated: int = 0
    unchanged: int = 0
    not_found: int = 0
    failed: int = 0
    deferred: int = 0
    waiting: int = 0  # deferred until the provider's budget allows a call: not a failure
    disabled: int = 0
    expired: int = 0
    skipped: int = 0
    abandoned: int = 0
    taken_over: int = 0  # leases of gone engines this pass's clean-up made due again
    api_calls: int = 0
    retries: int = 0
    events_added: int = 0
    carriers_down: dict[str, str] = field(default_factory=dict)
    # carrier -> when its provider's pace line allows the next call (its due shipments were
    # left due: the budget could not afford them yet)
    paced_until: dict[str, datetime] = field(default_factory=dict)
    error_counts: Counter[str] = field(default_factory=Counter)
    outcomes: dict[int, str] = field(default_factory=dict)

    @property
    def synced(self) -> int:
        return self.updated + self.unchanged + self.not_found

    @property
    def errors(self) -> list[str]:
        return [
            f"{message} (x{count})" if count > 1 else message
            for message, count in self.error_counts.most_common(MAX_ERRORS_KEPT)
        ]

    @property
    def duration_seconds(self) -> float:
        end = self.finished_at or utcnow()
        return (end - self.started_at).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("error_counts")
        data["errors"] = self.errors
        data["synced"] = self.synced
        data["duration_seconds"] = round(self.duration_seconds, 3)
        data["outcomes"] = {str(key): value for key, value in self.outcomes.items()}
        data["paced_until"] = {key: at.isoformat() for key, at in self.paced_until.items()}
        return data


def run_as_dict(
    run: SyncRun, *, max_errors: int, gone_engines: Collection[str] = ()
) -> dict[str, Any]:
    """A recorded pass as the admin status and `sync --stats` show it; a run still `running`
    whose engine is among `gone_engines` shows as `abandoned`."""
    outcome = run.outcome
    if outcome == PassOutcome.RUNNING and run.engine_id in gone_engines:
        outcome = PassOutcome.ABANDONED
    return {
        "id": run.id,
        "trigger": run.trigger,
        "engine_id": run.engine_id,
        "outcome": outcome,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "checked": run.checked,
        "updated": run.updated,
        "unchanged": run.unchanged,
        "failed": run.failed,
        "skipped": run.skipped,
        "api_calls": run.api_calls,
        "error_rate": round(run.failed / run.checked, 3) if run.checked else 0.0,
        "errors": list(run.errors or [])[:max_errors],
    }


def _writing(db: Engine) -> Engine:
    return db.execution_options(sqlite_begin="IMMEDIATE")


def start_run(db: Engine, summary: PassSummary) -> int:
    with Session(_writing(db)) as session, session.begin():
        run = SyncRun(
            trigger=summary.trigger,
            engine_id=summary.engine_id,
            started_at=summary.started_at,
            outcome=PassOutcome.RUNNING,
            errors=[],
        )
        session.add(run)
        session.flush()
        return run.id


def finish_run(db: Engine, summary: PassSummary) -> None:
    if summary.run_id is None:
        return
    with db.connect().execution_options(sqlite_begin="IMMEDIATE") as connection:
        with connection.begin():
            connection.execute(
                update(SyncRun)
                .where(SyncRun.id == summary.run_id)
                .values(
                    finished_at=summary.finished_at or utcnow(),
                    outcome=summary.outcome,
                    checked=summary.checked,
                    updated=summary.updated,
                    unchanged=summary.unchanged + summary.not_found,
                    failed=summary.failed + summary.deferred,
                    skipped=summary.skipped + summary.abandoned,
                    api_calls=summary.api_calls,
                    errors=summary.errors,
                )
            )


def beat(
    db: Engine,
    *,
    engine_id: str,
    kind: str,
    started_at: datetime,
    paused: bool,
    in_flight_batches: int = 0,
    shipments_per_second: float = 0.0,
    carriers: str | None = None,
) -> None:
    """Insert or refresh this engine's heartbeat row."""
    with Session(_writing(db)) as session, session.begin():
        row = session.get(EngineHeartbeat, engine_id)
        if row is None:
            row = EngineHeartbeat(
                engine_id=engine_id,
                kind=kind,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                started_at=started_at,
            )
            session.add(row)
        row.heartbeat_at = utcnow()
        row.paused = paused
        row.in_flight_batches = in_flight_batches
        row.shipments_per_second = shipments_per_second
        row.carriers = carriers


def forget_engine(db: Engine, *, engine_id: str) -> None:
    """Delete this engine's heartbeat row: it closed cleanly (a row left behind means a crash)."""
    with db.connect().execution_options(sqlite_begin="IMMEDIATE") as connection:
        with connection.begin():
            connection.execute(
                delete(EngineHeartbeat).where(EngineHeartbeat.engine_id == engine_id)
            )
