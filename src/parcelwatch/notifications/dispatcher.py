"""The notification dispatcher: claims due deliveries from the outbox with a lease, sends
them concurrently (a bounded number in flight), and records every attempt; failures back off
exponentially with jitter (at least as long as a `Retry-After` asks) until NOTIFY_RETRY_FOR
after the delivery was written, then it is dead-lettered. `serve` runs one beside the updater
when NOTIFY_ENABLED (`dispatch_lifespan`); a worker process runs the same class.

Wake-ups: a short poll (one indexed read; the claim, a write, only when something is due),
and `nudge()` / `wakeup.wake_dispatchers()` after a commit that queued deliveries, so a
notification leaves well under a second after its commit. Results are written in batches by
one recorder task: a slow receiver delays nobody else's record.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import FastAPI
from sqlalchemy import Engine

from parcelwatch.config import Settings
from parcelwatch.domain import utcnow
from parcelwatch.logs import get_logger
from parcelwatch.notifications import deliveries, wakeup
from parcelwatch.notifications.deliveries import ChannelResult, Claimed, Outcome
from parcelwatch.notifications.senders import Senders, SendResult
from parcelwatch.ops.metrics import (
    NOTIFICATION_CHANNELS_DISABLED,
    NOTIFICATION_LATENCY,
    NOTIFICATIONS_DEAD_LETTERED,
    NOTIFICATIONS_DELIVERED,
    NOTIFICATIONS_ENQUEUED,
    NOTIFICATIONS_FAILED,
)

__all__ = ["Dispatcher", "DispatcherOptions", "dispatch_lifespan"]

log = get_logger(__name__)


@dataclass(kw_only=True, slots=True)
class DispatcherOptions:
    """The dispatcher's knobs; the defaults suit a server, tests shorten the waits."""

    max_in_flight: int = 100  # sends at once (an email/Apprise group is one)
    claim_batch: int = 100
    # Longer than any send can take (webhooks 10 s, SMTP 20 s a step, Apprise 30 s): a lease
    # that ran out mid-send would have another dispatcher send it again.
    lease: timedelta = timedelta(minutes=2)
    poll_interval: float = 0.25  # seconds; a nudge wakes it sooner
    backoff_base: float = 10.0  # seconds before the second try; doubles, jittered
    backoff_cap: float = 3600.0
    stop_deadline: float = 10.0
    error_pause: float = 5.0


class Dispatcher:
    """Delivers the deliveries. `start()` runs it in a task of the current loop (or await
    `run()` in a task of your own); `nudge()` from any thread after committing deliveries;
    `await stop()` ends it within `stop_deadline` (and waits for `run()` to return)."""

    name = "notification dispatcher"  # as one of a worker's background loops

    def __init__(
        self,
        settings: Settings,
        db: Engine,
        *,
        options: DispatcherOptions | None = None,
        senders: Senders | None = None,
        owner: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.db = db
        self.options = options or DispatcherOptions()
        self.senders = senders or Senders(settings)
        self._own_senders = senders is None
        self.owner = owner or (
            f"dispatcher-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        )
        self.clock = clock
        self.jitter = jitter
        self._wake = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._results_ready = asyncio.Event()
        self._results: list[tuple[Claimed, SendResult | None, datetime]] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._finished: asyncio.Event | None = None

    # -- control -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Run in a background task of the current event loop."""
        self._task = asyncio.create_task(self.run(), name="parcelwatch-dispatcher")

    def nudge(self) -> None:
        """Look for due deliveries now. Safe from any thread (the sync writer's commit runs
        in a worker thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._wake.set)

    async def stop(self) -> None:
        """No new claim; sends in flight finish within the deadline (the rest are abandoned:
        their leases run out and another dispatcher sends them again), results are written."""
        self._stopping = True
        self._wake.set()
        self._slot_free.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self.options.stop_deadline + 5.0)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        elif self._finished is not None:  # `run()` awaited by the caller's own task
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._finished.wait(), self.options.stop_deadline + 5.0)
        if self._own_senders:
            await self.senders.aclose()

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Claim, send and record until `stop()`."""
        self._loop = asyncio.get_running_loop()
        self._finished = asyncio.Event()
        wakeup.register(self)
        recorder = asyncio.create_task(self._recorder(), name="parcelwatch-dispatch-recorder")
        log.info("notification dispatcher started", owner=self.owner)
        try:
            while not self._stopping:
                try:
                    delay = await self._idle_delay()
                    if delay <= 0 and await self._claim_and_send():
                        continue  # claimed (or waited for free slots): look again at once
                except Exception:
                    log.exception("notification dispatcher: claim failed")
                    delay = self.options.error_pause
                # Due but nothing claimed: another dispatcher holds it; do not spin.
                await self._sleep(delay if delay > 0 else self.options.poll_interval)
        finally:
            wakeup.unregister(self)
            await self._finish_in_flight()
            self._stopping = True
            self._results_ready.set()
            await recorder
            self._finished.set()
            log.info("notification dispatcher stopped", owner=self.owner)

    async def run_once(self) -> int:
        """Claim what is due now, send it and write the results (for tests and commands);
        the number of sends."""
        self._loop = asyncio.get_running_loop()
        units = await asyncio.to_thread(self._claim, self.options.claim_batch)
        sent = await asyncio.gather(*(self._send(unit) for unit in units))
        await asyncio.to_thread(self._write, list(sent))
        return len(units)

    async def _claim_and_send(self) -> bool:
        """Claim into the free slots and start the sends; True when it claimed something or
        waited for slots to free (more may be due at once), False when nothing was left."""
        free = self.options.max_in_flight - len(self._in_flight)
        # Claim in chunks: a claim per freed slot would be a write transaction per send.
        low_water = max(1, min(self.options.claim_batch, self.options.max_in_flight) // 4)
        if free < low_water and self._in_flight and not self._stopping:
            self._slot_free.clear()
            await self._slot_free.wait()
            return True
        limit = min(free, self.options.claim_batch)
        self._wake.clear()
        units = await asyncio.to_thread(self._claim, limit)
        for unit in units:
            task = asyncio.create_task(self._send_and_queue(unit))
            self._in_flight.add(task)
            task.add_done_callback(self._done)
        return bool(units)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slot_free.set()

    async def _idle_delay(self) -> float:
        """Seconds until the next delivery is due (0 or less: one is due now), at most the
        poll interval. A read only: the claim, a write transaction (on SQLite the one writer's
        lock), is taken only when something is due."""
        due = await asyncio.to_thread(deliveries.next_due_at, self.db)
        if due is None:
            return self.options.poll_interval
        return min(self.options.poll_interval, (due - self.clock()).total_seconds())

    async def _sleep(self, seconds: float) -> None:
        if self._wake.is_set() or seconds <= 0:
            self._wake.clear()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _finish_in_flight(self) -> None:
        if not self._in_flight:
            return
        _done, pending = await asyncio.wait(
            set(self._in_flight), timeout=self.options.stop_deadline
        )
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
            log.warning("notification sends abandoned at stop", count=len(pending))

    # -- claim, send, record -------------------------------------------------------------

    def _claim(self, limit: int) -> list[Claimed]:
        return deliveries.claim(
            self.db,
            owner=self.owner,
            limit=limit,
            lease=self.options.lease,
            now=self.clock(),
            group_window=self.settings.notify_group_window,
        )

    async def _send(self, unit: Claimed) -> tuple[Claimed, SendResult | None, datetime]:
        if unit.refusal is not None:
            return unit, None, self.clock()
        try:
            result = await self.senders.send(unit.channel, [d.outgoing for d in unit.deliveries])
        except Exception as error:  # a bug in a sender must not lose the lease's bookkeeping
            log.exception("notification send failed unexpectedly", channel_id=unit.channel.id)
            result = SendResult(delivered=False, error=f"internal error: {type(error).__name__}")
        return unit, result, self.clock()

    async def _send_and_queue(self, unit: Claimed) -> None:
        sent = await self._send(unit)
        self._results.append(sent)  # after the await: the recorder swaps the list meanwhile
        self._results_ready.set()

    async def _recorder(self) -> None:
        """Write finished sends in batches, until stopped and drained."""
        while True:
            await self._results_ready.wait()
            self._results_ready.clear()
            batch, self._results = self._results, []
            if batch:
                try:
                    await asyncio.to_thread(self._write, batch)
                except Exception:
                    # Unrecorded sends are sent again when their leases run out.
                    log.exception("notification dispatcher: could not record results")
            if self._stopping and not self._in_flight and not self._results:
                return

    def _write(self, sent: list[tuple[Claimed, SendResult | None, datetime]]) -> None:
        outcomes: list[Outcome] = []
        verdicts: list[ChannelResult] = []
        for unit, result, finished in sent:
            outcomes += self._outcomes(unit, result, finished)
            if result is not None:
                verdicts.append(
                    ChannelResult(
                        channel_id=unit.channel.id,
                        delivered=result.delivered,
                        counts=result.counts_against_channel,
                        error=result.error,
                    )
                )
        recorded = deliveries.record(
            self.db,
            owner=self.owner,
            outcomes=outcomes,
            channel_results=verdicts,
            disable_after=self.settings.notify_disable_after,
            now=self.clock(),
        )
        for outcome in outcomes:
            if outcome.status == deliveries.DELIVERED:
                NOTIFICATIONS_DELIVERED.labels(outcome.kind).inc()
                latency = (outcome.attempted_at - outcome.notification_created_at).total_seconds()
                NOTIFICATION_LATENCY.labels(outcome.kind).observe(max(latency, 0.0))
            else:
                if outcome.attempt_logged:
                    NOTIFICATIONS_FAILED.labels(outcome.kind).inc()
                if outcome.status == deliveries.DEAD:
                    NOTIFICATIONS_DEAD_LETTERED.labels(outcome.kind).inc()
        for kind, count in recorded.dead_lettered.items():
            NOTIFICATIONS_DEAD_LETTERED.labels(kind).inc(count)
        for kind, count in recorded.notices_enqueued.items():
            NOTIFICATIONS_ENQUEUED.labels(kind).inc(count)
        for channel_id in recorded.disabled_channels:
            kind = next(u.channel.kind for u, _, _ in sent if u.channel.id == channel_id)
            NOTIFICATION_CHANNELS_DISABLED.labels(kind).inc()
            log.warning("notification channel switched off", channel_id=channel_id, kind=kind)
        if recorded.notices_enqueued:
            self.nudge()

    def _outcomes(
        self, unit: Claimed, result: SendResult | None, finished: datetime
    ) -> list[Outcome]:
        kind = unit.channel.kind
        outcomes = []
        for delivery in unit.deliveries:
            status, next_at, error = deliveries.DELIVERED, None, None
            if result is None:
                status, error = deliveries.DEAD, unit.refusal
            elif not result.delivered:
                error = result.error
                deadline = delivery.retry_from + self.settings.notify_retry_for
                if finished >= deadline:
                    status = deliveries.DEAD
                else:
                    delay = deliveries.backoff_delay(
                        delivery.attempts + 1,
                        base=self.options.backoff_base,
                        cap=self.options.backoff_cap,
                        random=self.jitter,
                    )
                    if result.retry_after is not None:
                        delay = max(delay, result.retry_after)
                    status = deliveries.PENDING
                    next_at = min(finished + timedelta(seconds=delay), deadline)
            outcomes.append(
                Outcome(
                    delivery_id=delivery.id,
                    channel_id=unit.channel.id,
                    kind=kind,
                    status=status,
                    attempted_at=finished,
                    next_attempt_at=next_at,
                    status_code=result.status_code if result else None,
                    latency_ms=result.latency_ms if result else None,
                    error=error,
                    notification_created_at=delivery.notification_created_at,
                    attempt_logged=result is not None,
                )
            )
        return outcomes


@asynccontextmanager
async def dispatch_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Lifespan hook: the dispatcher over the app's database when NOTIFY_ENABLED
    (`app.state.dispatcher`, None otherwise)."""
    settings: Settings = app.state.settings
    dispatcher = Dispatcher(settings, app.state.database) if settings.notify_enabled else None
    app.state.dispatcher = dispatcher
    if dispatcher is not None:
        dispatcher.start()
    try:
        yield
    finally:
        if dispatcher is not None:
            await dispatcher.stop()
