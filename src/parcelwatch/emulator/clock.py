"""The emulator's clock: emulated time runs `speed` times faster than real time and can jump."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

__all__ = ["EmulatorClock"]


class EmulatorClock:
    """`now()` = start + real seconds elapsed x speed + manual advances (aware UTC).

    `speed=0` freezes the clock so only `advance()` moves it: what tests use to make every
    answer a function of the configuration alone. `monotonic()` is real time, for token
    lifetimes and rate limits, which clients measure on their own real clocks.
    """

    def __init__(
        self,
        *,
        speed: float = 1.0,
        start: datetime | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.speed = speed
        self._monotonic = monotonic
        self._real_start = monotonic()
        self._start = start or datetime.now(UTC)
        self._advanced = timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        elapsed = (self._monotonic() - self._real_start) * self.speed
        with self._lock:
            return self._start + timedelta(seconds=elapsed) + self._advanced

    def advance(self, by: timedelta) -> datetime:
        """Jump forward (never backward) and return the new emulated time."""
        if by < timedelta(0):
            raise ValueError("the emulator clock only moves forward")
        with self._lock:
            self._advanced += by
        return self.now()

    def monotonic(self) -> float:
        return self._monotonic()
