"""What a crashed engine leaves behind, and how the living clean it up.

Every engine (the server's updater, a manual-refresh engine, `parcelwatch sync`, a worker)
refreshes its row in `engine_heartbeats` every `heartbeat_every` seconds while it lives and
deletes it when it closes cleanly. An engine is **gone** when its row has not been refreshed for
`stale_after` (three missed heartbeats), or, on this host, when its process no longer exists
(`kill -9`, a crash, an OOM kill): no need to wait out the heartbeat then.

A gone engine's leftovers:
- its `sync_runs` rows still `running` are closed as `abandoned` (finished at its last
  heartbeat);
- its leases are taken over: the shipments become due now instead of when the lease runs out
  (10 minutes by default); the number taken over is logged and counted in
  `parcelwatch_sync_leases_taken_over_total`;
- its heartbeat row is deleted.

Readers that must not write (health, `sync --stats`) use `gone_engine_ids` to show a run whose
engine is gone as `abandoned` before any engine has cleaned it up.

Hostnames must differ between machines (and containers) that share a database, as they do by
default under Docker, Kubernetes and systemd: the process check only looks at this host's
processes.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import CursorResult, Engine, Executable, delete, exists, select, update
from sqlalchemy.orm import Session

from parcelwatch.models import EngineHeartbeat, Shipment, SyncRun
from parcelwatch.sync.outcomes import PassOutcome

__all__ = [
    "HEARTBEAT_EVERY",
    "MISSED_HEARTBEATS",
    "Recovery",
    "gone_engine_ids",
    "live_engines",
    "process_alive",
    "recover",
    "stale_after",
]

HEARTBEAT_EVERY = 30.0  # seconds between an engine's heartbeats (EngineOptions.heartbeat_every)
MISSED_HEARTBEATS = 3  # an engine that missed this many heartbeats is gone


def stale_after(heartbeat_every: float = HEARTBEAT_EVERY) -> timedelta:
    """How long an engine's heartbeat may be silent before it counts as gone."""
    return timedelta(seconds=MISSED_HEARTBEATS * heartbeat_every)


@dataclass(frozen=True, slots=True)
class Recovery:
    """What one clean-up found and did."""

    engines: tuple[str, ...] = ()
    runs_closed: int = 0
    leases_taken_over: int = 0

    def __bool__(self) -> bool:
        return bool(self.engines or self.runs_closed or self.leases_taken_over)


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (a zombie counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _gone(
    heartbeats: Iterable[EngineHeartbeat], *, now: datetime, silent_for: timedelta, me: str | None
) -> dict[str, datetime]:
    """Engine id -> last sign of life, for the engines among `heartbeats` that are gone."""
    host = socket.gethostname()
    gone: dict[str, datetime] = {}
    for row in heartbeats:
        if row.engine_id == me:
            continue
        stale = row.heartbeat_at < now - silent_for
        dead_here = row.hostname == host and row.pid != os.getpid() and not process_alive(row.pid)
        if stale or dead_here:
            gone[row.engine_id] = row.heartbeat_at
    return gone


def _changed(session: Session, statement: Executable) -> int:
    """Rows an UPDATE changed."""
    result = session.execute(statement)
    return result.rowcount if isinstance(result, CursorResult) else 0


def gone_engine_ids(
    session: Session, *, now: datetime, silent_for: timedelta | None = None
) -> set[str]:
    """Engines with a run still `running` that are gone: no heartbeat row (once the run is
    older than `silent_for`), a silent one, or a dead process on this host. Read-only."""
    silent_for = silent_for or stale_after()
    running = session.execute(
        select(SyncRun.engine_id, SyncRun.started_at).where(SyncRun.outcome == PassOutcome.RUNNING)
    ).all()
    if not running:
        return set()
    owners = {engine_id for engine_id, _ in running if engine_id}
    rows = session.scalars(
        select(EngineHeartbeat).where(EngineHeartbeat.engine_id.in_(owners))
    ).all()
    known = {row.engine_id for row in rows}
    gone = set(_gone(rows, now=now, silent_for=silent_for, me=None))
    gone.update(
        engine_id
        for engine_id, started_at in running
        if engine_id and engine_id not in known and started_at < now - silent_for
    )
    return gone


def live_engines(
    session: Session, *, now: datetime, silent_for: timedelta | None = None
) -> list[EngineHeartbeat]:
    """The engines alive now (a fresh heartbeat, and on this host a living process), oldest
    first. Read-only."""
    rows = session.scalars(select(EngineHeartbeat).order_by(EngineHeartbeat.started_at)).all()
    gone = _gone(rows, now=now, silent_for=silent_for or stale_after(), me=None)
    return [row for row in rows if row.engine_id not in gone]


def _find(
    session: Session, *, now: datetime, silent_for: timedelta, me: str
) -> tuple[dict[str, datetime], list[tuple[int, str | None]]]:
    """The gone engines (id -> last heartbeat), and the runs still `running` of engines with
    no heartbeat row at all (died between starting the run and the first beat, or already
    cleaned up)."""
    gone = _gone(
        session.scalars(select(EngineHeartbeat)).all(), now=now, silent_for=silent_for, me=me
    )
    orphan_runs = session.execute(
        select(SyncRun.id, SyncRun.engine_id).where(
            SyncRun.outcome == PassOutcome.RUNNING,
            SyncRun.engine_id != me,
            SyncRun.started_at < now - silent_for,
            ~exists().where(EngineHeartbeat.engine_id == SyncRun.engine_id),
        )
    ).all()
    return gone, [(run_id, engine_id) for run_id, engine_id in orphan_runs]


def recover(db: Engine, *, now: datetime, silent_for: timedelta, me: str) -> Recovery:
    """Close the runs, take over the leases and drop the heartbeat rows of gone engines, in
    one write transaction (engines doing this at the same time each do a share of it). Looks
    first in a read-only transaction: the write lock is taken only when there is work."""
    with Session(db) as session:
        if _find(session, now=now, silent_for=silent_for, me=me) == ({}, []):
            return Recovery()
    with Session(db.execution_options(sqlite_begin="IMMEDIATE")) as session, session.begin():
        gone, orphan_runs = _find(session, now=now, silent_for=silent_for, me=me)
        runs_closed = 0
        for engine_id, last_seen in gone.items():
            runs_closed += _changed(
                session,
                update(SyncRun)
                .where(SyncRun.engine_id == engine_id, SyncRun.outcome == PassOutcome.RUNNING)
                .values(outcome=PassOutcome.ABANDONED, finished_at=last_seen)
                .execution_options(synchronize_session=False),
            )
        if orphan_runs:
            runs_closed += _changed(
                session,
                update(SyncRun)
                .where(SyncRun.id.in_([run_id for run_id, _ in orphan_runs]))
                .values(outcome=PassOutcome.ABANDONED, finished_at=now)
                .execution_options(synchronize_session=False),
            )
        owners = set(gone) | {engine_id for _, engine_id in orphan_runs if engine_id}
        taken = 0
        if owners:
            taken = _changed(
                session,
                update(Shipment)
                .where(Shipment.lease_owner.in_(owners))
                .values(lease_owner=None, lease_expires_at=None, next_check_at=now)
                .execution_options(synchronize_session=False),
            )
        if gone:
            session.execute(delete(EngineHeartbeat).where(EngineHeartbeat.engine_id.in_(gone)))
    return Recovery(engines=tuple(sorted(owners)), runs_closed=runs_closed, leases_taken_over=taken)
