"""The background loops a worker runs, and their one way in and one way out: start them all,
wait for SIGTERM/SIGINT (or a loop that dies), stop them all within their deadlines."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Sequence
from typing import Protocol

from parcelwatch.logs import get_logger

__all__ = ["BackgroundLoop", "run_until_stopped"]

log = get_logger(__name__)

WATCH_EVERY = 1.0  # seconds between two looks at whether every loop still runs


class BackgroundLoop(Protocol):
    """A long-running loop (the sync `Updater`; the notification dispatcher) as a worker drives
    it: `start` spawns its task, `stop` ends it cleanly (no new work; work in flight finished
    or dropped unwritten within the loop's own deadline)."""

    name: str

    @property
    def running(self) -> bool: ...

    def start(self) -> None: ...

    async def stop(self) -> None: ...


async def run_until_stopped(
    loops: Sequence[BackgroundLoop], stop: asyncio.Event | None = None
) -> bool:
    """Start `loops`, run until SIGTERM or SIGINT (or `stop` is set, or a loop ends on its own),
    then stop every loop, all at once. Returns whether every loop was still running when asked
    to stop (False: one had died, which the exit status should say)."""
    stop = stop or asyncio.Event()
    event_loop = asyncio.get_running_loop()
    for shutdown_signal in (signal.SIGTERM, signal.SIGINT):
        event_loop.add_signal_handler(shutdown_signal, stop.set)
    try:
        for loop in loops:
            loop.start()
            log.info("background loop started", loop=loop.name)
        healthy = True
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), WATCH_EVERY)
            except TimeoutError:
                dead = [loop.name for loop in loops if not loop.running]
                if dead:
                    log.error("background loop ended on its own, stopping the worker", loops=dead)
                    healthy = False
                    break
        log.info("stopping", loops=[loop.name for loop in loops])
        await asyncio.gather(*(loop.stop() for loop in loops))
        return healthy
    finally:
        for shutdown_signal in (signal.SIGTERM, signal.SIGINT):
            event_loop.remove_signal_handler(shutdown_signal)
