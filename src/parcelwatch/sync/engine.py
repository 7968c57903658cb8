"""The sync engine: claim due shipments page by page, call their carriers in batches within
each provider's budget, write each batch's results in one transaction, and record the pass.

One engine serves the in-process updater, `parcelwatch worker`, `parcelwatch sync` and manual
refresh. Its `clock` (default: the real time) decides what is due, when a result's next check
is and where the budgets' windows fall, so a benchmark can run a simulated week
(`bench/freshness.py`).
Stopping is clean: after `stop()` no new batch starts; batches already calling finish and
are written, or, past the deadline, are cancelled and dropped unwritten (leases released).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol, TypeVar

import structlog
from sqlalchemy import Engine

from parcelwatch.carriers.base import Provider, numbers_per_request
from parcelwatch.carriers.catalog import CARRIERS
from parcelwatch.config import Settings
from parcelwatch.domain import utcnow
from parcelwatch.lifecycle import Lifecycle
from parcelwatch.logs import get_logger
from parcelwatch.ops.metrics import (
    LAST_SUCCESSFUL_SYNC,
    LEASES_TAKEN_OVER,
    RUNS_ABANDONED,
    UPDATE_ATTEMPTS,
)
from parcelwatch.shipments.trackers import archive_delivered
from parcelwatch.sync.batches import BatchWriter, CalledBatch
from parcelwatch.sync.budgets import BudgetStore, DatabaseBudgets, RedisBudgets
from parcelwatch.sync.calls import Abandoned, CallStats, CarrierGroup, call_batch, judge_held
from parcelwatch.sync.circuit import BreakerPolicy, CircuitBreaker
from parcelwatch.sync.claims import ClaimedShipment, claim, claim_ahead, release
from parcelwatch.sync.control import is_paused
from parcelwatch.sync.limits import Budget, RateLearning, SharedRate, budget_spec
from parcelwatch.sync.outcomes import SUCCESSFUL_PASS_OUTCOMES, PassOutcome, PassTrigger
from parcelwatch.sync.patterns import FailurePattern, HeldFailures
from parcelwatch.sync.planning import CheckPlan, checks_per_hour, plan_scale, population_values
from parcelwatch.sync.priority import ClassTurns
from parcelwatch.sync.recovery import HEARTBEAT_EVERY, Recovery, recover, stale_after
from parcelwatch.sync.retry import ProviderRetryPolicy
from parcelwatch.sync.runs import PassSummary, beat, finish_run, forget_engine, start_run
from parcelwatch.sync.scheduling import SchedulePolicy
from parcelwatch.sync.selection import Selection, ahead_filter, claimable_filter

__all__ = ["EngineOptions", "ProviderLookup", "SyncEngine"]

log = get_logger(__name__)
T = TypeVar("T")
ARCHIVE_EVERY = 600.0  # seconds between two AUTO_ARCHIVE_DAYS runs of one engine
REPLAN_EVERY = timedelta(minutes=10)  # of the engine's clock: a provider's check plan is redone
SHARED_PAUSE_EVERY = 0.2  # seconds: a claim reads the shared pause at most this often
Progress = Callable[[PassSummary], None]


class ProviderLookup(Protocol):
    """What the engine asks the provider registry: which provider tracks a parcel carrier,
    or why none does."""

    def provider_for(self, carrier_code: str) -> Provider | None: ...

    def unconfigured_reason(self, carrier_code: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class EngineOptions:
    concurrency: int | None = None  # overrides every provider's in-flight cap (--concurrency)
    retry: ProviderRetryPolicy = field(default_factory=ProviderRetryPolicy)
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    learning: RateLearning = field(default_factory=RateLearning)
    lease: timedelta = timedelta(minutes=10)
    # Most shipments written in one transaction (several batches): small enough that a
    # request waiting for SQLite's one writer's lock waits for a short transaction (500 held
    # it up to 115 ms under bench/api_load.py; 50, about a tenth of that).
    write_group: int = 50
    heartbeat_every: float = HEARTBEAT_EVERY
    record_outcomes: bool = False  # keep every shipment's outcome in the summary


class SyncEngine:
    def __init__(
        self,
        *,
        settings: Settings,
        db: Engine,
        providers: ProviderLookup,
        kind: str = "sync",
        options: EngineOptions | None = None,
        engine_id: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._archived_at: float | None = None  # when AUTO_ARCHIVE_DAYS last ran (monotonic)
        self.db = db
        self.providers = providers
        self.kind = kind
        self.options = options or EngineOptions()
        self.policy = SchedulePolicy.from_settings(settings)
        self.lifecycle = Lifecycle.from_settings(settings, tracked=self.configured_carriers())
        self.engine_id = engine_id or (
            f"{kind}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        )
        self.started_at = utcnow()
        self.paused = False
        self.paused_by_shared = False
        # Set by an updater or worker: the pause kept in the database (`sync.control`) is
        # read before every claim, so it reaches this engine within one batch.
        self.obeys_shared_pause = False
        self.carriers: list[str] | None = None  # the carriers it serves (None: every one)
        self.on_takeover: Callable[[], None] | None = None  # leases of a gone engine are due
        self.running = False
        self.in_flight_batches = 0
        self._synced_before = 0  # shipments synced by the passes that finished
        self._rate_mark = (time.monotonic(), 0)  # (when, synced_total) at the last heartbeat
        self._pause_read_at = float("-inf")  # when a claim last read the shared pause
        self.last_summary: PassSummary | None = None
        self.current: PassSummary | None = None
        self._stopping = False
        self._budgets: dict[str, Budget] = {}
        self._breakers: dict[str, CircuitBreaker] = {}
        self._patterns: dict[str, FailurePattern] = {}
        self._turns: dict[str, ClassTurns] = {}  # per carrier: which class a short claim favours
        # per provider: the next checks planned from its budget (`sync.planning`), and when
        self._plans: dict[str, CheckPlan] = {}
        self._planned_at: dict[str, datetime] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parcelwatch-db")
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._last_beat = 0.0
        self._beating: asyncio.Task[None] | None = None
        self._beat_holders = 0
        self._shared = SharedRate.from_url(settings.redis_url) if settings.redis_url else None
        self._owns_shared = True
        # Counted quota windows: in Redis beside the shared rate, else in the database.
        self._store: BudgetStore = (
            RedisBudgets(self._shared.client) if self._shared else DatabaseBudgets(db, self.in_db)
        )

    def sibling(self, kind: str) -> SyncEngine:
        """Another engine (for manual refreshes beside the updater's passes) that shares this
        one's providers, request budgets and circuit breakers."""
        other = SyncEngine(
            settings=self.settings,
            db=self.db,
            providers=self.providers,
            kind=kind,
            options=replace(self.options, record_outcomes=True),
            clock=self.clock,
        )
        other._budgets, other._breakers = self._budgets, self._breakers
        other._patterns = self._patterns
        other._turns = self._turns
        other._plans, other._planned_at = self._plans, self._planned_at
        other._shared, other._owns_shared = self._shared, False
        other._store = self._store
        return other

    # -- control ---------------------------------------------------------------------------
    @property
    def stopping(self) -> bool:
        return self._stopping

    def pause(self, *, shared: bool = False) -> None:
        """New batches wait from the next batch boundary on; calls in flight finish.
        `shared`: the pause kept in the database asked for it (its clearing resumes)."""
        self.paused = True
        self.paused_by_shared = shared or self.paused_by_shared
        self._wake.set()

    def resume(self) -> None:
        self.paused = False
        self.paused_by_shared = False
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def stop(self, deadline: float = 10.0) -> None:
        """No new batch after this; in-flight batches get `deadline` seconds to finish and be
        written, then are cancelled and dropped unwritten."""
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(self._idle.wait(), deadline)
        except TimeoutError:
            log.warning("stop deadline reached, abandoning in-flight batches")
            for task in list(self._tasks):
                task.cancel()
            await self._idle.wait()

    async def aclose(self) -> None:
        """Close what `close` cannot: the Redis connection of a shared rate limit; and say
        goodbye (delete the heartbeat row), so that a row left behind means a crash."""
        if self._shared is not None and self._owns_shared:
            await self._shared.close()
        if self._last_beat:
            try:
                await self.in_db(forget_engine, self.db, engine_id=self.engine_id)
            except Exception:
                log.exception("could not delete the heartbeat row")
        self.close()

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    # -- helpers ---------------------------------------------------------------------------
    async def in_db(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(function, *args, **kwargs))

    def configured_carriers(self, only: Sequence[str] | None = None) -> list[str]:
        codes = list(only) if only else list(CARRIERS)
        return [code for code in codes if self.providers.provider_for(code) is not None]

    def breaker_for(self, provider: str) -> CircuitBreaker:
        if provider not in self._breakers:
            self._breakers[provider] = CircuitBreaker(provider, self.options.breaker)
        return self._breakers[provider]

    def _group(self, carrier: str, provider: Provider) -> CarrierGroup:
        if provider.code not in self._budgets:
            spec = budget_spec(self.settings, provider.code, concurrency=self.options.concurrency)
            self._budgets[provider.code] = Budget(
                spec,
                provider=provider.code,
                shared=self._shared,
                store=self._store,
                learning=self.options.learning,
                max_wait=self.options.retry.max_retry_after,
                now=self.clock,
            )
        size = numbers_per_request(provider, self.settings.auto_update_batch_size)
        return CarrierGroup(
            carrier=carrier,
            provider=provider,
            budget=self._budgets[provider.code],
            breaker=self.breaker_for(provider.code),
            batch_size=size,
        )

    def _capacity(self, group: CarrierGroup) -> int:
        """Claimed-but-unwritten shipments per carrier: enough to keep every slot busy, few
        enough to be done well within the lease at the carrier's request rate."""
        spec = group.budget.spec
        busy = spec.concurrency * group.batch_size * 2
        within_lease = int(spec.rate * self.options.lease.total_seconds() / 4) * group.batch_size
        return max(group.batch_size, min(busy, within_lease))

    # -- one pass --------------------------------------------------------------------------
    async def run_pass(
        self,
        selection: Selection | None = None,
        *,
        trigger: PassTrigger = PassTrigger.SYNC,
        progress: Progress | None = None,
    ) -> PassSummary:
        """Sync what `selection` names (due shipments by default) until nothing is left."""
        selection = selection or Selection()
        summary = PassSummary(trigger=trigger, engine_id=self.engine_id)
        self.running, self.current = True, summary
        self._idle.clear()
        groups: dict[str, CarrierGroup] = {}
        held: dict[str, HeldFailures] = {}  # one per provider, for this pass
        for code in self.configured_carriers(selection.carriers):
            provider = self.providers.provider_for(code)
            if provider is not None:
                groups[code] = self._group(code, provider)
                pattern = self._patterns.setdefault(provider.code, FailurePattern())
                groups[code].held = held.setdefault(provider.code, HeldFailures(pattern))
        stats = CallStats()
        queue: asyncio.Queue[CalledBatch | None] = asyncio.Queue()
        releases: list[ClaimedShipment] = []
        self.hold_heartbeat()
        try:
            summary.run_id = await self.in_db(start_run, self.db, summary)
            # Every log line of this pass (tasks copy the context) names the run.
            structlog.contextvars.bind_contextvars(run_id=summary.run_id, trigger=trigger)
            await self.heartbeat()
            await self.recover()
            writer = BatchWriter(
                database=self.db,
                run_in_db=self.in_db,
                owner=self.engine_id,
                policy=self.policy,
                wake=self.wake,
                write_group=self.options.write_group,
                record_outcomes=self.options.record_outcomes,
                summary=summary,
                releases=releases,
                progress=progress,
                clock=self.clock,
                plans=self._plans,
            )
            if not (selection.manual or selection.by_id):
                await self._replan(groups)
            writing = asyncio.create_task(writer.drain(queue))
            try:
                await self._produce(selection, groups, queue, summary, stats, releases)
            finally:
                while self._tasks:
                    await asyncio.gather(*list(self._tasks), return_exceptions=True)
                for group in groups.values():  # what is still held is judged on what was seen
                    await self._settle(group.held, queue, stats, final=True)
                await queue.put(None)
                await writing
            if releases:
                await self.in_db(release, self.db, owner=self.engine_id, shipments=releases)
            await self._give_back(groups)
            summary.outcome = self._outcome(summary, stats)
        except BaseException:
            summary.outcome = PassOutcome.ERROR
            raise
        finally:
            summary.api_calls, summary.retries = stats.api_calls, stats.retries
            summary.carriers_down = {
                code: error
                for code, error in stats.carrier_failures.items()
                if code not in stats.carrier_successes
            }
            summary.finished_at = utcnow()
            self.running, self.current, self.last_summary = False, None, summary
            self._synced_before += summary.synced
            self.release_heartbeat()
            await self._finish(summary)
            structlog.contextvars.unbind_contextvars("run_id", "trigger")
            self._idle.set()
        return summary

    async def _replan(self, groups: dict[str, CarrierGroup]) -> None:
        """Plan each provider's next checks from its budget and its active shipments, at
        most every `REPLAN_EVERY` of the engine's clock (`sync.planning`)."""
        now = self.clock()
        by_provider: dict[str, list[CarrierGroup]] = {}
        for group in groups.values():
            by_provider.setdefault(group.provider.code, []).append(group)
        for code, of_provider in by_provider.items():
            planned = self._planned_at.get(code)
            if planned is not None and timedelta(0) <= now - planned < REPLAN_EVERY:
                continue
            carriers = [group.carrier for group in of_provider]
            try:
                values = await self.in_db(population_values, self.db, self.lifecycle, carriers, now)
            except Exception:
                log.exception("could not plan the checks", carrier=code)
                continue
            group = of_provider[0]
            per_hour = checks_per_hour(
                shipments=len(values),
                update_interval=self.policy.update_interval,
                numbers_per_call=group.batch_size,
                windows=group.budget.spec.counted,
            )
            self._plans[code] = plan_scale(values, per_hour, floor=self.policy.update_interval)
            self._planned_at[code] = now

    async def _give_back(self, groups: dict[str, CarrierGroup]) -> None:
        """Return the quota calls reserved and not made, so the store counts what was spent."""
        for budget in {id(g.budget): g.budget for g in groups.values()}.values():
            try:
                await budget.give_back()
            except Exception:  # counted as spent: never more calls than the quota
                log.exception("could not give back reserved quota", carrier=budget.provider)

    @property
    def budgets(self) -> dict[str, Budget]:
        """The providers' budgets this engine has used, by provider code."""
        return dict(self._budgets)

    async def _finish(self, summary: PassSummary) -> None:
        try:
            await self.in_db(finish_run, self.db, summary)
        except Exception:
            log.exception("could not record the sync run", run_id=summary.run_id)
        if summary.outcome in SUCCESSFUL_PASS_OUTCOMES:
            LAST_SUCCESSFUL_SYNC.set(time.time())
        await self._archive_delivered()
        # A pass that changed nothing is routine for the updater (it wakes for every due
        # shipment): debug, so `info` logs show what moved and what failed.
        quiet = summary.updated == summary.failed == summary.deferred == summary.waiting == 0
        emit = log.debug if quiet and summary.trigger == PassTrigger.UPDATER else log.info
        emit(
            "sync pass finished",
            run_id=summary.run_id,
            trigger=summary.trigger,
            outcome=summary.outcome,
            checked=summary.checked,
            updated=summary.updated,
            failed=summary.failed,
            deferred=summary.deferred,
            waiting=summary.waiting,
            seconds=round(summary.duration_seconds, 2),
        )

    async def _archive_delivered(self) -> None:
        """AUTO_ARCHIVE_DAYS: after a pass, at most every `ARCHIVE_EVERY` seconds."""
        days = self.settings.auto_archive_days
        now = time.monotonic()
        if not days or (self._archived_at is not None and now - self._archived_at < ARCHIVE_EVERY):
            return
        self._archived_at = now
        try:
            archived = await self.in_db(archive_delivered, self.db, days=days)
        except Exception:
            log.exception("could not archive delivered shipments")
            return
        if archived:
            log.info("delivered shipments archived", trackers=archived, after_days=days)

    def _outcome(self, summary: PassSummary, stats: CallStats) -> PassOutcome:
        if self._stopping:
            return PassOutcome.STOPPED
        down = [code for code in stats.carrier_failures if code not in stats.carrier_successes]
        if summary.checked and summary.synced == 0 and down and not stats.carrier_successes:
            return PassOutcome.FAILED
        if summary.failed or summary.deferred or summary.abandoned:
            return PassOutcome.PARTIAL
        return PassOutcome.OK

    @property
    def synced_total(self) -> int:
        """Shipments this engine has synced since it started (the pass under way included)."""
        return self._synced_before + (self.current.synced if self.current else 0)

    def _rate(self) -> float:
        """Shipments a second since the previous heartbeat."""
        now, total = time.monotonic(), self.synced_total
        since, before = self._rate_mark
        self._rate_mark = (now, total)
        return round((total - before) / (now - since), 2) if now > since else 0.0

    async def heartbeat(self) -> None:
        """Refresh this engine's row in `engine_heartbeats` (health checks and the admin
        status read it)."""
        self._last_beat = time.monotonic()
        try:
            await self.in_db(
                beat,
                self.db,
                engine_id=self.engine_id,
                kind=self.kind,
                started_at=self.started_at,
                paused=self.paused,
                in_flight_batches=self.in_flight_batches,
                shipments_per_second=self._rate(),
                carriers=",".join(self.carriers) if self.carriers else None,
            )
        except Exception:
            log.exception("heartbeat failed")

    def hold_heartbeat(self) -> None:
        """Beat every `heartbeat_every` seconds until as many `release_heartbeat` calls (a
        pass holds it while it runs; the updater for as long as it lives): a long pass or a
        sleeping updater still shows it is alive, and its leases are not taken over."""
        self._beat_holders += 1
        if self._beating is None or self._beating.done():
            self._beating = asyncio.create_task(self._keep_beating(), name="parcelwatch-beat")

    def release_heartbeat(self) -> None:
        self._beat_holders = max(0, self._beat_holders - 1)
        if not self._beat_holders and self._beating is not None:
            self._beating.cancel()
            self._beating = None

    async def _keep_beating(self) -> None:
        every = self.options.heartbeat_every
        while True:
            await asyncio.sleep(max(every / 10, self._last_beat + every - time.monotonic()))
            if time.monotonic() - self._last_beat >= every * 0.9:
                await self.heartbeat()
                await self.recover()

    async def recover(self) -> Recovery:
        """Clean up after engines that are gone (see `parcelwatch.sync.recovery`)."""
        try:
            found = await self.in_db(
                recover,
                self.db,
                now=utcnow(),
                silent_for=stale_after(self.options.heartbeat_every),
                me=self.engine_id,
            )
        except Exception:
            log.exception("could not clean up after gone engines")
            return Recovery()
        if found:
            if self.current is not None:
                self.current.taken_over += found.leases_taken_over
            LEASES_TAKEN_OVER.inc(found.leases_taken_over)
            RUNS_ABANDONED.inc(found.runs_closed)
            log.warning(
                "took over from engines that are gone",
                engines=list(found.engines),
                runs_closed=found.runs_closed,
                leases_taken_over=found.leases_taken_over,
            )
            if found.leases_taken_over:
                self.wake()
                if self.on_takeover is not None:  # an idle updater looks again now
                    self.on_takeover()
        return found

    async def _produce(
        self,
        selection: Selection,
        groups: dict[str, CarrierGroup],
        queue: asyncio.Queue[CalledBatch | None],
        summary: PassSummary,
        stats: CallStats,
        releases: list[ClaimedShipment],
    ) -> None:
        claimed_total = 0
        while not self._stopping:
            self._wake.clear()
            if time.monotonic() - self._last_beat > self.options.heartbeat_every:
                await self.heartbeat()
            if self.paused:
                await self.heartbeat()  # shows the pause; keeps the row fresh while paused
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.options.heartbeat_every)
                continue
            claimed_any = False
            for group in groups.values():
                if group.exhausted or self._stopping or self.paused:
                    continue
                room = self._capacity(group) - group.queued
                if room < group.batch_size and group.queued:
                    continue
                if selection.limit is not None:
                    room = min(room, selection.limit - claimed_total)
                    if room <= 0:
                        group.exhausted = True
                        continue
                if not selection.manual:  # claim no more than the budget affords now
                    room = await self._affordable(group, room, summary)
                    if room <= 0:
                        continue
                claimed = await self.in_db(self._claim, group, selection, room)
                if claimed is None:  # paused for every engine (sync.control)
                    self.pause(shared=True)
                    break
                if not claimed:
                    group.exhausted = True
                    continue
                short = -len(claimed) % group.batch_size
                if short and selection.limit is None and not (selection.manual or selection.by_id):
                    claimed += await self.in_db(self._claim_ahead, group, short)
                claimed_any = True
                claimed_total += len(claimed)
                summary.checked += len(claimed)
                group.cursor = claimed[-1].id if selection.by_id else group.cursor
                group.queued += len(claimed)
                for start in range(0, len(claimed), group.batch_size):
                    batch = claimed[start : start + group.batch_size]
                    task = asyncio.create_task(
                        self._batch(group, batch, queue, summary, stats, releases)
                    )
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            if all(group.exhausted for group in groups.values()):
                return
            if not claimed_any:
                await self._wake.wait()

    async def _affordable(self, group: CarrierGroup, room: int, summary: PassSummary) -> int:
        """`room` cut to the calls a paced provider may start now. When its pace line allows
        none, its due shipments stay due (highest priority first at the next claim) and the
        pass says until when (`paced_until`); nothing is claimed and deferred for it."""
        await asyncio.sleep(0)  # batches just made reach their budget turn and count in it
        calls, paced = await group.budget.ready()
        if paced is not None:
            group.exhausted = True
            summary.paced_until[group.carrier] = paced.until
            return 0
        if calls < 0:
            return room
        if calls == 0 and not group.queued:  # held calls taken by others' requests: one batch
            return min(room, group.batch_size)
        return min(room, calls * group.batch_size)

    def _claim(
        self, group: CarrierGroup, selection: Selection, room: int
    ) -> list[ClaimedShipment] | None:
        """The next shipments of `group`, leased; None when the shared pause is set (read at
        most every `SHARED_PAUSE_EVERY` seconds: claims come one batch at a time)."""
        if self.obeys_shared_pause and time.monotonic() - self._pause_read_at >= SHARED_PAUSE_EVERY:
            self._pause_read_at = time.monotonic()
            if is_paused(self.db):
                return None
        now = self.clock()
        where = claimable_filter(
            selection,
            now=now,
            lifecycle=self.lifecycle,
            carriers=[group.carrier],
        )
        turns = self._turns.setdefault(group.carrier, ClassTurns())
        claimed = claim(
            self.db,
            owner=self.engine_id,
            where=where,
            limit=room,
            lease=self.options.lease,
            now=now,
            by_id=selection.by_id,
            after_id=group.cursor,
            order=turns.order(),
        )
        turns.took([s.check_priority for s in claimed])
        return claimed

    def _claim_ahead(self, group: CarrierGroup, room: int) -> list[ClaimedShipment]:
        """Shipments of `group` due next, leased to fill the last request of a claim: its
        room costs no call (`claims.claim_ahead`)."""
        now = self.clock()
        where = ahead_filter(now=now, lifecycle=self.lifecycle, carriers=[group.carrier])
        return claim_ahead(
            self.db,
            owner=self.engine_id,
            where=where,
            limit=room,
            lease=self.options.lease,
            now=now,
        )

    async def _batch(
        self,
        group: CarrierGroup,
        batch: Sequence[ClaimedShipment],
        queue: asyncio.Queue[CalledBatch | None],
        summary: PassSummary,
        stats: CallStats,
        releases: list[ClaimedShipment],
    ) -> None:
        if self._stopping:
            self._abandon(group, batch, summary, releases)
            return
        if self.paused:  # give the leases back now: the pause may last
            self._abandon(group, batch, summary, [])
            await self.in_db(release, self.db, owner=self.engine_id, shipments=batch)
            return
        self.in_flight_batches += 1
        group.held.in_flight += 1
        started = time.perf_counter()
        UPDATE_ATTEMPTS.labels(carrier=group.carrier).inc(len(batch))
        try:
            results = await call_batch(
                group,
                batch,
                retry=self.options.retry,
                batch_timeout=self.settings.auto_update_batch_timeout.total_seconds(),
                request_timeout=self.settings.auto_update_individual_timeout.total_seconds(),
                stats=stats,
                may_start=lambda: not (self._stopping or self.paused),
                may_continue=lambda: not self._stopping,
            )
        except Abandoned:
            if self._stopping:
                self._abandon(group, batch, summary, releases)
            else:  # paused: give the leases back now, the pause may last
                self._abandon(group, batch, summary, [])
                await self.in_db(release, self.db, owner=self.engine_id, shipments=batch)
            return
        except asyncio.CancelledError:
            self._abandon(group, batch, summary, releases)
            raise
        finally:
            self.in_flight_batches -= 1
            group.held.in_flight -= 1
        called = CalledBatch(group, batch, results, started)
        group.held.pattern.record(results)
        if any(result.pattern is not None for result in results):
            group.held.batches.append(called)  # written once the pattern can be judged
        else:
            await queue.put(called)
        await self._settle(group.held, queue, stats, final=False)

    async def _settle(
        self,
        held: HeldFailures,
        queue: asyncio.Queue[CalledBatch | None],
        stats: CallStats,
        *,
        final: bool,
    ) -> None:
        """Queue the held batches for writing once their provider's answers can be judged
        (enough of them, no call in flight, or the pass is over): a carrier-wide pattern is
        deferred, an isolated failure stays the shipment's own (`sync.patterns`)."""
        if not held.batches or not (final or held.can_judge()):
            return
        batches, held.batches = held.batches, []
        for called in batches:
            called.results = judge_held(called.group, called.results, stats)
            await queue.put(called)

    def _abandon(
        self,
        group: CarrierGroup,
        batch: Sequence[ClaimedShipment],
        summary: PassSummary,
        releases: list[ClaimedShipment],
    ) -> None:
        releases.extend(batch)
        summary.abandoned += len(batch)
        summary.checked -= len(batch)
        group.queued -= len(batch)
        self._wake.set()
