"""Telling a carrier-wide failure pattern from shipments' own failures.

When most of a provider's answers in a pass fail the same way (malformed bodies, no answer
for the number, a carrier module error), the provider is failing, not its shipments: those
failures are deferred like an outage's and never counted against the shipments. Failures
that could belong to such a pattern are held back, unwritten, until the pass has seen enough
of the provider's answers to judge, or has no call to it left in flight; isolated ones (a
few bad numbers among good answers) are then written as the shipments' own, as before.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from parcelwatch.sync.writer import ShipmentResult, ShipmentResultKind

if TYPE_CHECKING:
    from parcelwatch.sync.batches import CalledBatch

__all__ = ["MEMORY", "MIN_ANSWERS", "MIN_SAME", "WINDOW", "FailurePattern", "HeldFailures"]

WINDOW = 20  # a provider's most recent answers that are judged
MEMORY = 900.0  # seconds an answer is remembered (across passes of one engine)
MIN_ANSWERS = 10  # answers needed for a verdict while calls to the provider are in flight
MIN_SAME = 2  # one failure alone is never a pattern


@dataclass(slots=True)
class FailurePattern:
    """One provider's recent answers, kept by the engine across its passes (so the small
    passes of the updater see a storm too): `None` for an answer the carrier gave properly
    (found, not found, a number it refuses), else the failure's kind."""

    clock: Callable[[], float] = time.monotonic
    recent: deque[tuple[float, str | None]] = field(default_factory=lambda: deque(maxlen=WINDOW))

    def record(self, results: Sequence[ShipmentResult]) -> None:
        now = self.clock()
        for result in results:
            if result.kind is ShipmentResultKind.DEFERRED:
                continue  # a known carrier-wide failure: the breaker has it already
            failed = result.kind is ShipmentResultKind.FAILED
            self.recent.append((now, result.pattern if failed else None))

    def answers(self) -> list[str | None]:
        oldest = self.clock() - MEMORY
        while self.recent and self.recent[0][0] < oldest:
            self.recent.popleft()
        return [kind for _, kind in self.recent]

    def same(self, kind: str) -> int:
        return sum(1 for seen in self.answers() if seen == kind)

    def carrier_wide(self, kind: str) -> bool:
        """Most of the recent answers failed this way (and more than one did)."""
        same = self.same(kind)
        return same >= MIN_SAME and same * 2 > len(self.answers())

    def describe(self, kind: str) -> str:
        return f"{self.same(kind)} of its last {len(self.answers())} answers failed ({kind})"


@dataclass(slots=True)
class HeldFailures:
    """One pass's batches of one provider that wait for a verdict, and its calls in flight."""

    pattern: FailurePattern = field(default_factory=FailurePattern)
    in_flight: int = 0
    batches: list[CalledBatch] = field(default_factory=list)

    def can_judge(self) -> bool:
        return self.in_flight == 0 or len(self.pattern.answers()) >= MIN_ANSWERS
