"""SQLite stays single-node: a worker on SQLite starts only when no other live engine holds
the updater role (a server with AUTO_UPDATE_ENABLED, another worker), checked and taken in
one write transaction so that two workers starting together cannot both pass."""

from __future__ import annotations

import os
import socket
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from parcelwatch.domain import utcnow
from parcelwatch.models import EngineHeartbeat
from parcelwatch.sync.recovery import live_engines

__all__ = ["UPDATER_KINDS", "SingleNodeError", "take_updater_role"]

UPDATER_KINDS = ("server", "worker")  # engine kinds that poll continuously


class SingleNodeError(RuntimeError):
    """Another engine holds the updater role on this SQLite database."""


def take_updater_role(
    db: Engine, *, engine_id: str, kind: str, started_at: datetime, carriers: str | None
) -> None:
    """Write this worker's first heartbeat, unless another live engine holds the updater
    role: then raise `SingleNodeError` naming it. A server whose updater is off never beats
    as `server`, so it does not count."""
    with Session(db.execution_options(sqlite_begin="IMMEDIATE")) as session, session.begin():
        holders = [
            row
            for row in live_engines(session, now=utcnow())
            if row.kind in UPDATER_KINDS and row.engine_id != engine_id
        ]
        if holders:
            raise SingleNodeError(_message(holders[0]))
        session.add(
            EngineHeartbeat(
                engine_id=engine_id,
                kind=kind,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                started_at=started_at,
                heartbeat_at=utcnow(),
                paused=False,
                carriers=carriers,
            )
        )


def _message(holder: EngineHeartbeat) -> str:
    return (
        f"SQLite is single-node: {holder.kind} {holder.engine_id} (pid {holder.pid} on "
        f"{holder.hostname}) already polls this database. Stop it (or set "
        "AUTO_UPDATE_ENABLED=false on the server), or move to PostgreSQL to run several "
        "workers (README: Scaling out)."
    )
