"""What routes need from the running app, as typed FastAPI dependencies (`Annotated` aliases):
the settings, a session, the database, the sync engine and updater (who is asking is
`parcelwatch.api.auth`).

`create_app` puts these on `app.state` (the lifespan adds the sync engine, the updater and the
ShipEngine key cache once they run); this module is the one place that reads them back, so a
route names its type instead of reaching into `app.state`. The plain `*_of(app)` readers serve
code that holds the app rather than a request (the dashboard's status panel, in-server alerts).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Annotated, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Path, Request, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from parcelwatch.carriers.base import Provider
from parcelwatch.config import Settings
from parcelwatch.shipments.service import MAX_ID
from parcelwatch.sync.engine import SyncEngine
from parcelwatch.sync.updater import Updater
from parcelwatch.webhooks.signatures import JwksCache

__all__ = [
    "DatabaseDep",
    "ManualSyncDep",
    "SessionDep",
    "SessionsDep",
    "SettingsDep",
    "ShipmentId",
    "UpdaterDep",
    "database_of",
    "health_providers_of",
    "jwks_of",
    "manual_sync_of",
    "public_base",
    "settings_of",
    "short_read",
    "updater_of",
]


def settings_of(app: FastAPI) -> Settings:
    settings: Settings = app.state.settings
    return settings


def public_base(request: Request) -> str:
    """Where people reach this server, for links: PUBLIC_URL, else the request's own base."""
    return settings_of(request.app).public_url or str(request.base_url).rstrip("/")


def database_of(app: FastAPI) -> Engine:
    """The app's SQLAlchemy engine (the database, not the sync engine)."""
    database: Engine = app.state.database
    return database


def sessions_of(app: FastAPI) -> sessionmaker[Session]:
    sessions: sessionmaker[Session] = app.state.sessions
    return sessions


def read_sessions_of(app: FastAPI) -> sessionmaker[Session]:
    """Sessions for requests that only read (`parcelwatch.db.for_reading`)."""
    sessions: sessionmaker[Session] = app.state.read_sessions
    return sessions


def updater_of(app: FastAPI) -> Updater | None:
    """The in-process updater, once the lifespan started it (None in a bare app)."""
    updater: Updater | None = getattr(app.state, "updater", None)
    return updater


def manual_sync_of(app: FastAPI) -> SyncEngine | None:
    """The sync engine manual refreshes run on, beside the updater's (None until started)."""
    engine: SyncEngine | None = getattr(app.state, "sync_manual", None)
    return engine


def jwks_of(app: FastAPI) -> JwksCache | None:
    """ShipEngine's webhook signing keys, once the lifespan opened their cache."""
    keys: JwksCache | None = getattr(app.state, "shipengine_jwks", None)
    return keys


def health_providers_of(app: FastAPI) -> Mapping[str, Provider] | None:
    """Providers the health checks ask instead of the configured ones (a test seam)."""
    providers: Mapping[str, Provider] | None = getattr(app.state, "health_providers", None)
    return providers


def get_settings(request: Request) -> Settings:
    return settings_of(request.app)


def get_database(request: Request) -> Engine:
    return database_of(request.app)


def get_sessions(request: Request) -> sessionmaker[Session]:
    return sessions_of(request.app)


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class TransactionGate:
    """Admits request transactions in turn, waiting on the event loop rather than in a thread.

    A request's transaction opens, runs its route and commits on worker threads of one shared
    pool. Were many requests to wait for a lock (SQLite's one writer; on PostgreSQL the row a
    concurrent create of the same number holds) inside those threads, the holder could find no
    thread left to commit on, and every waiter would time out together. So at most `capacity`
    request transactions are open at once (below both the thread pool and the connection
    pool); the rest wait here, costing nothing. On SQLite the writers among them then take
    turns on the engine's writer lock (`parcelwatch.db`) in their threads, so the next one has
    parsed its request and is ready the moment the previous one commits. No write may begin on
    the event loop: a SQLite request commits there, and would wait for itself.

    A freed place goes to a waiting writer before a waiting reader: writes are few and a
    person waits on each, while a busy dashboard or script can keep the places full of reads
    (without it, under a read load a write queued behind every read ahead of it).
    """

    def __init__(self, *, capacity: int) -> None:
        self._free = capacity
        self._waiting: dict[bool, deque[asyncio.Future[None]]] = {True: deque(), False: deque()}

    @asynccontextmanager
    async def turn(self, *, write: bool) -> AsyncIterator[None]:
        await self._acquire(write)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, write: bool) -> None:
        if self._free > 0 and not self._anyone_waiting():
            self._free -= 1
            return
        place = asyncio.get_running_loop().create_future()
        self._waiting[write].append(place)
        try:
            await place
        except asyncio.CancelledError:
            if place.done() and not place.cancelled():  # given a place, then cancelled
                self._release()
            raise

    def _anyone_waiting(self) -> bool:
        for queue in self._waiting.values():
            while queue and queue[0].done():  # cancelled while waiting
                queue.popleft()
        return any(self._waiting.values())

    def _release(self) -> None:
        for queue in (self._waiting[True], self._waiting[False]):
            while queue:
                place = queue.popleft()
                if not place.done():
                    place.set_result(None)
                    return
        self._free += 1


# Below anyio's 40 worker threads and SQLAlchemy's default 5 + 10 pooled connections, leaving
# connections for the sync engines that share the pool.
REQUEST_TRANSACTIONS = 10


def transaction_gate_for() -> TransactionGate:
    return TransactionGate(capacity=REQUEST_TRANSACTIONS)


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One transaction per request: committed when the route returns, rolled back on error.
    It waits its turn at the app's `TransactionGate`, and a request that may write starts as
    a writer (`BEGIN IMMEDIATE` on SQLite), so writers of other processes queue too. (The
    turn is taken here rather than in a dependency of its own: each dependency costs FastAPI
    some work on every request.)

    An async dependency, so that a request costs one hop to a worker thread (the route's
    own) instead of three (a sync generator dependency is entered and left on worker threads
    too, and under load each hop waits its turn for the event loop and the GIL). The session
    connects lazily, in the route's thread: a writing one then begins as the writer there
    (which may wait for the lock). Closing a read session only gives its connection back to
    the pool (on PostgreSQL it holds no transaction: `parcelwatch.db.for_reading`), so it
    happens here; so does a SQLite commit (WAL, no fsync: microseconds, and the lock was this
    process's to hand over). A PostgreSQL commit is a round trip to the server: it goes to a
    worker thread."""
    gate: TransactionGate = request.app.state.transaction_gate
    write = request.method not in READ_METHODS
    async with gate.turn(write=write):
        if not write:
            session = read_sessions_of(request.app)()
            try:
                yield session
            finally:
                session.close()
            return
        database = database_of(request.app)
        session = sessions_of(request.app)(
            bind=database.execution_options(sqlite_begin="IMMEDIATE")
        )
        inline = database.dialect.name == "sqlite"
        try:
            yield session
        except BaseException:
            if inline:
                session.close()  # rolls back
            else:
                await run_in_threadpool(session.close)
            raise
        try:
            if not session.in_transaction():
                pass  # committed already, in the route's thread (`api.threads.OneHopRoute`)
            elif inline:
                session.commit()
            else:
                await run_in_threadpool(session.commit)
        finally:
            session.close()


T = TypeVar("T")


async def short_read(request: Request, read: Callable[[Session], T], *, bounded: bool = True) -> T:
    """`read(session)`, a short read (a lookup by key, a page along an index), in a
    transaction of its own. On SQLite it runs on the event loop itself, over the loop's own
    connection (`app.state.loop_reads`): the hop to a worker thread and back cost more than
    the read, and a connection of its own means the loop never waits for the pool (WAL
    readers wait for no writer). Elsewhere, or when the read is not `bounded` (it may scan
    many rows, and would hold up every request of the process), it runs on a worker thread,
    in its turn at the transaction gate.

    Under `bench/api_load.py` on SQLite, list pages on the loop instead of worker threads
    took the list's p99 from 175 to 60 ms and its throughput from 156 to 246 pages a second:
    the threads' statements each let go of the GIL and waited to take it back from the loop
    and the updater."""
    loop_reads: sessionmaker[Session] | None = getattr(request.app.state, "loop_reads", None)
    if loop_reads is not None and bounded:
        with loop_reads() as session:
            return read(session)
    gate: TransactionGate = request.app.state.transaction_gate
    async with gate.turn(write=False):
        return await run_in_threadpool(_read_in_thread, read_sessions_of(request.app), read)


def _read_in_thread(sessions: sessionmaker[Session], read: Callable[[Session], T]) -> T:
    """`read` once more, on a new connection, when the server had dropped the pooled one (a
    connection used moments ago is trusted without a ping: `parcelwatch.db`)."""
    try:
        with sessions() as session:
            return read(session)
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
    with sessions() as session:
        return read(session)


def get_updater(request: Request) -> Updater:
    updater = updater_of(request.app)
    if updater is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "The updater is not running.")
    return updater


def get_manual_sync(request: Request) -> SyncEngine:
    engine = manual_sync_of(request.app)
    if engine is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "The sync engine is not running yet."
        )
    return engine


ShipmentId = Annotated[
    int, Path(ge=1, le=MAX_ID, description=f"The shipment's id (1 to {MAX_ID}).")
]
SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Engine, Depends(get_database)]
SessionsDep = Annotated[sessionmaker[Session], Depends(get_sessions)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
UpdaterDep = Annotated[Updater, Depends(get_updater)]
ManualSyncDep = Annotated[SyncEngine, Depends(get_manual_sync)]
