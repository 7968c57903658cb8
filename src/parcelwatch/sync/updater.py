"""The updater loop, run by `serve` when AUTO_UPDATE_ENABLED and by every `parcelwatch worker`:
a first pass shortly after start, then pass after pass, sleeping until the next shipment is due
(capped), never on a fixed tick that piles up. Pause and resume act at the next batch boundary;
the pause the admin API sets is kept in the database (`sync.control`), read before each claim
and every `PAUSE_POLL` seconds, so it reaches every updater and worker. On shutdown (SIGTERM:
uvicorn's handling ends the lifespan, the worker's own handler stops its loops) the engine
stops within a deadline and nothing is half-written."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.orm import Session

from parcelwatch.carriers.registry import open_registry
from parcelwatch.domain import utcnow
from parcelwatch.logs import get_logger
from parcelwatch.ops.metrics import UPDATER_PAUSED
from parcelwatch.sync import report
from parcelwatch.sync.control import PAUSE_POLL, is_paused
from parcelwatch.sync.engine import ProviderLookup, SyncEngine
from parcelwatch.sync.outcomes import PassTrigger
from parcelwatch.sync.selection import Selection

__all__ = ["Updater", "sync_lifespan"]

log = get_logger(__name__)

FIRST_PASS_DELAY = 2.0
IDLE_CAP = 60.0  # seconds: look again at least this often (new shipments, other engines)
EMPTY_PASS_PAUSE = 15.0  # after a pass that found nothing, do not look again sooner
ERROR_PAUSE = 30.0
STOP_DEADLINE = 10.0


class Updater:
    """Drives `sync_engine` continuously in a background task (a worker's `sync` loop)."""

    name = "sync"

    def __init__(
        self,
        sync_engine: SyncEngine,
        *,
        first_delay: float | None = None,
        idle_cap: float = IDLE_CAP,
        empty_pause: float = EMPTY_PASS_PAUSE,
        stop_deadline: float = STOP_DEADLINE,
        carriers: list[str] | None = None,
        pause_poll: float = PAUSE_POLL,
    ) -> None:
        self.sync_engine = sync_engine
        self.first_delay = FIRST_PASS_DELAY if first_delay is None else first_delay
        self.idle_cap = idle_cap
        self.empty_pause = empty_pause
        self.stop_deadline = stop_deadline
        self.carriers = carriers  # only these carriers' shipments (`worker --carrier`)
        self.pause_poll = pause_poll
        self.enabled = False
        self.next_wake_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._watching: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._holding_heartbeat = False

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self.enabled = True
        self.sync_engine.obeys_shared_pause = True
        self.sync_engine.carriers = self.carriers
        self.sync_engine.on_takeover = self.wake
        self.sync_engine.hold_heartbeat()  # alive between passes too
        self._holding_heartbeat = True
        self._task = asyncio.create_task(self._run(), name="parcelwatch-updater")
        self._watching = asyncio.create_task(self._watch_pause(), name="parcelwatch-pause")

    def pause(self, *, shared: bool = False) -> None:
        """Pause this updater; `shared`: because of the pause kept in the database, so that
        clearing it there resumes this updater too."""
        self.sync_engine.pause(shared=shared)
        self._wake.set()
        UPDATER_PAUSED.set(1)
        log.info("updater paused")

    def resume(self) -> None:
        self.sync_engine.resume()
        UPDATER_PAUSED.set(0)
        self._wake.set()
        log.info("updater resumed")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        """No new batch; in-flight batches finish or are dropped unwritten in the deadline."""
        if self._task is None:
            return
        if self._watching is not None:
            self._watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watching
        if self._holding_heartbeat:
            self._holding_heartbeat = False
            self.sync_engine.release_heartbeat()
        await self.sync_engine.stop(self.stop_deadline)
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), 2.0)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        log.info("updater stopped")

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(0.0, seconds))

    async def _watch_pause(self) -> None:
        """Follow the pause kept in the database while idle, paused or waiting on a budget
        (a pass also reads it before each claim). A local `pause()` stands on its own."""
        engine = self.sync_engine
        while True:
            try:
                shared = await engine.in_db(is_paused, engine.db)
            except Exception:
                log.exception("could not read the shared pause")
            else:
                if shared and not engine.paused:
                    self.pause(shared=True)
                elif not shared and engine.paused and engine.paused_by_shared:
                    self.resume()
                UPDATER_PAUSED.set(1 if engine.paused else 0)  # a claim may have paused it
            await asyncio.sleep(self.pause_poll)

    async def _run(self) -> None:
        await self._sleep(self.first_delay)
        while not self.sync_engine.stopping:
            if self.sync_engine.paused:
                await self.sync_engine.heartbeat()
                await self._sleep(min(self.idle_cap, self.sync_engine.options.heartbeat_every))
                continue
            try:
                summary = await self.sync_engine.run_pass(
                    Selection(carriers=self.carriers), trigger=PassTrigger.UPDATER
                )
            except Exception:
                log.exception("updater pass failed")
                await self._sleep(ERROR_PAUSE)
                continue
            if self.sync_engine.stopping:
                return
            delay = await self._until_next_due(exclude=summary.paced_until)
            if summary.paced_until:  # due, but their budget affords a call only then
                first = min(summary.paced_until.values())
                delay = min(delay, max(1.0, (first - utcnow()).total_seconds()))
            if summary.checked == 0:
                delay = max(delay, self.empty_pause)
            await self._sleep(min(delay, self.idle_cap))

    async def _until_next_due(self, *, exclude: Collection[str] = ()) -> float:
        """Seconds until the next shipment is due, of carriers other than `exclude`."""

        def query() -> float:
            with Session(self.sync_engine.db) as session:
                configured = self.sync_engine.configured_carriers(self.carriers)
                carriers = [code for code in configured if code not in exclude]
                due = report.next_due_at(session, self.sync_engine.settings, carriers)
            if due is None:
                return self.idle_cap
            return max(1.0, (due - utcnow()).total_seconds())

        try:
            return await asyncio.to_thread(query)
        except Exception:
            log.exception("could not read the next due time")
            return ERROR_PAUSE


@asynccontextmanager
async def sync_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Lifespan hook: builds the sync engine (and the updater when AUTO_UPDATE_ENABLED) over the
    app's database; tests may preset `app.state.sync_providers`."""
    settings = app.state.settings
    async with AsyncExitStack() as stack:
        preset: ProviderLookup | None = getattr(app.state, "sync_providers", None)
        if preset is None:
            registry = await stack.enter_async_context(open_registry(settings))
            preset = registry
        providers: ProviderLookup = preset
        sync_engine = SyncEngine(
            settings=settings, db=app.state.database, providers=providers, kind="server"
        )
        updater = Updater(sync_engine)
        app.state.sync_engine = sync_engine
        app.state.sync_manual = sync_engine.sibling("manual")
        app.state.updater = updater
        UPDATER_PAUSED.set(0)
        if settings.auto_update_enabled:
            updater.start()
        try:
            yield
        finally:
            await updater.stop()
            await app.state.sync_manual.aclose()
            await sync_engine.aclose()
