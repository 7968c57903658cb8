"""Writing finished batches: the writer task drains the queue, writes several batches in one
transaction when they are waiting (each batch is all or nothing either way), falls back to one
transaction per batch when a group fails, and counts outcomes into the pass and the metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from parcelwatch.domain import utcnow
from parcelwatch.logs import get_logger
from parcelwatch.notifications.outbox import announce
from parcelwatch.ops.metrics import UPDATE_DURATION, UPDATE_FAILURES, UPDATE_SUCCESSES
from parcelwatch.sync.calls import CarrierGroup
from parcelwatch.sync.claims import ClaimedShipment
from parcelwatch.sync.outcomes import ShipmentOutcome
from parcelwatch.sync.planning import CheckPlan
from parcelwatch.sync.runs import PassSummary
from parcelwatch.sync.scheduling import SchedulePolicy
from parcelwatch.sync.writer import ShipmentResult, ShipmentResultKind, WriteSummary, write_results

__all__ = ["BatchWriter", "CalledBatch"]

log = get_logger(__name__)
RunInDb = Callable[..., Awaitable[Any]]

# The update counter counts an expiry as an update.
_SUCCESS_LABELS = {
    ShipmentOutcome.UPDATED: "updated",
    ShipmentOutcome.UNCHANGED: "unchanged",
    ShipmentOutcome.EXPIRED: "updated",
}


@dataclass(slots=True)
class CalledBatch:
    """A batch whose carrier call is over, waiting to be written."""

    group: CarrierGroup
    batch: Sequence[ClaimedShipment]
    results: list[ShipmentResult]
    started: float


class BatchWriter:
    """The one writer of a pass (writes are serialized on the engine's database thread).

    It gets only what writing needs, not the engine: the database, `run_in_db` (the engine's
    database thread), the lease `owner`, the schedule policy, and `wake` to tell the engine
    there is room for more batches."""

    def __init__(
        self,
        *,
        database: Engine,
        run_in_db: RunInDb,
        owner: str,
        policy: SchedulePolicy,
        wake: Callable[[], None],
        write_group: int,
        record_outcomes: bool,
        summary: PassSummary,
        releases: list[ClaimedShipment],
        progress: Callable[[PassSummary], None] | None,
        clock: Callable[[], datetime] = utcnow,
        plans: Mapping[str, CheckPlan] | None = None,
    ) -> None:
        self.database = database
        self.run_in_db = run_in_db
        self.owner = owner
        self.policy = policy
        self.wake = wake
        self.write_group = write_group
        self.record_outcomes = record_outcomes
        self.summary = summary
        self.releases = releases
        self.progress = progress
        self.clock = clock
        self.plans = plans  # by provider code: the next checks planned from its budget

    async def drain(self, queue: asyncio.Queue[CalledBatch | None]) -> None:
        """Write what arrives until the `None` that ends the pass."""
        finished = False
        while not finished:
            item = await queue.get()
            if item is None:
                return
            items = [item]
            count = len(item.results)
            while count < self.write_group and not queue.empty():
                more = queue.get_nowait()
                if more is None:
                    finished = True
                    break
                items.append(more)
                count += len(more.results)
            await self._write(items)
            for done in items:
                done.group.queued -= len(done.batch)
            self.wake()
            if self.progress is not None:
                self.progress(self.summary)

    async def _write(self, items: list[CalledBatch]) -> None:
        try:
            written = await self.run_in_db(self._write_in_transaction, items)
            self._account(items, written)
            return
        except Exception:
            if len(items) == 1:
                log.exception("writing a batch failed", carrier=items[0].group.carrier)
                self.summary.error_counts["database: writing a batch failed"] += 1
                self.releases.extend(items[0].batch)
                self.summary.abandoned += len(items[0].batch)
                return
        for item in items:  # one batch's failure loses nothing else
            await self._write([item])

    def _write_in_transaction(self, items: list[CalledBatch]) -> WriteSummary:
        results = [result for item in items for result in item.results]
        writing = self.database.connect().execution_options(sqlite_begin="IMMEDIATE")
        with writing as connection, connection.begin():
            written = write_results(
                connection,
                results,
                owner=self.owner,
                policy=self.policy,
                now=self.clock(),
                plans=self.plans,
            )
        announce(written.notifications)
        return written

    def _account(self, items: list[CalledBatch], written: WriteSummary) -> None:
        summary = self.summary
        names = ("updated", "unchanged", "not_found", "failed", "deferred", "waiting", "disabled")
        for name in names:
            setattr(summary, name, getattr(summary, name) + getattr(written, name))
        summary.expired += written.expired
        summary.skipped += written.lost
        summary.events_added += written.events_added
        now = time.perf_counter()
        for item in items:
            UPDATE_DURATION.labels(carrier=item.group.carrier).observe(now - item.started)
            for result in item.results:
                outcome = written.outcomes.get(result.shipment.id)
                if outcome is None:
                    continue
                if self.record_outcomes:
                    summary.outcomes[result.shipment.id] = outcome
                _count(item.group.carrier, result, outcome, summary)


def _count(
    carrier: str, result: ShipmentResult, outcome: ShipmentOutcome, summary: PassSummary
) -> None:
    if result.kind is ShipmentResultKind.FOUND:
        UPDATE_SUCCESSES.labels(carrier=carrier, outcome=_SUCCESS_LABELS[outcome]).inc()
    elif result.kind is ShipmentResultKind.NOT_FOUND:
        UPDATE_SUCCESSES.labels(carrier=carrier, outcome="not_found").inc()
    elif result.kind is ShipmentResultKind.FAILED:
        UPDATE_FAILURES.labels(carrier=carrier, outcome="shipment_error").inc()
        summary.error_counts[result.message or "error"] += 1
    elif result.waiting:  # not a failure; the run still says why it waits
        summary.error_counts[result.message or "waiting for the provider's budget"] += 1
    else:
        UPDATE_FAILURES.labels(carrier=carrier, outcome="deferred").inc()
        summary.error_counts[result.message or "deferred"] += 1
