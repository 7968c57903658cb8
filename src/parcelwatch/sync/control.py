"""The updater's pause, kept in the database so that it reaches every engine: the admin API
writes it, each updater and worker reads it before claiming its next batch (and every
`PAUSE_POLL` seconds while idle or paused). It is kept until resumed, across restarts of any
process, a full restart included: a worker that Kubernetes or systemd restarts cannot tell a
full restart from its own, and must not resume polling on its own."""

from __future__ import annotations

from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session

from parcelwatch.db import reading
from parcelwatch.domain import utcnow
from parcelwatch.models import SyncControl

__all__ = ["PAUSE_POLL", "UPDATER", "is_paused", "paused_in", "set_paused"]

UPDATER = "updater"  # the row every updater and worker obeys
PAUSE_POLL = 1.0  # seconds: how often an idle or paused updater looks at the pause again


def paused_in(connection: Connection) -> bool:
    """Whether the pause is set, read on an open connection (inside a claim's transaction)."""
    paused = connection.scalar(select(SyncControl.paused).where(SyncControl.name == UPDATER))
    return bool(paused)


def is_paused(db: Engine) -> bool:
    with reading(db) as connection:
        return paused_in(connection)


def set_paused(db: Engine, *, paused: bool) -> None:
    """Set or clear the pause for every engine (committed here: the admin action is the
    transaction)."""
    with Session(db.execution_options(sqlite_begin="IMMEDIATE")) as session, session.begin():
        row = session.get(SyncControl, UPDATER)
        if row is None:
            session.add(SyncControl(name=UPDATER, paused=paused, changed_at=utcnow()))
        elif row.paused != paused:
            row.paused, row.changed_at = paused, utcnow()
