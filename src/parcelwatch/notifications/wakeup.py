"""The in-process nudge: whoever commits new deliveries (the sync writer's enqueue, a test
send, a replay) calls `wake_dispatchers()` after the commit, and every dispatcher running in
this process claims at once instead of at its next poll. Safe from any thread."""

from __future__ import annotations

import weakref
from typing import Protocol

__all__ = ["Wakeable", "register", "unregister", "wake_dispatchers"]


class Wakeable(Protocol):
    def nudge(self) -> None: ...


_running: weakref.WeakSet[Wakeable] = weakref.WeakSet()


def register(dispatcher: Wakeable) -> None:
    _running.add(dispatcher)


def unregister(dispatcher: Wakeable) -> None:
    _running.discard(dispatcher)


def wake_dispatchers() -> None:
    """Nudge every dispatcher of this process (none running: nothing happens)."""
    for dispatcher in list(_running):
        dispatcher.nudge()
