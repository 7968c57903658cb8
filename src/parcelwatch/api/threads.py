"""Sync routes in one hop to a worker thread: `OneHopRoute` runs a plain `def` endpoint on a
worker thread and checks its answer back on the event loop.

Left to FastAPI, a sync endpoint costs two hops: one to run it, and a second to validate its
answer against the response model (FastAPI validates a sync endpoint's answer in the thread
pool too). Each hop is a queue hand-off to a worker thread, anyio's cancel scope and capacity
bookkeeping, and a wait for the event loop to pick the result up again; under load
(bench/api_load.py) the hand-offs took 13% of the server's CPU with two hops and 8% with one,
and the second queued every answer behind other requests once more. The endpoints here return
models they built themselves, which the check accepts in microseconds, so it is done on the
loop.

A route that wants this opts in (`APIRouter(route_class=OneHopRoute)`); one whose answer
still needs real validation work (a large list of plain dicts, say) should not.

The request's transaction (its `SessionDep`) is committed in that same thread as soon as the
endpoint returns, not after the answer has waited for the event loop: a write holds SQLite's
one writer lock (every process's writers queue for it) only while it works, and a
PostgreSQL transaction needs no second hop to commit. A failed commit is the request's
error, as before (`get_session` rolls back and closes).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session

__all__ = ["OneHopRoute", "in_worker_thread"]

P = ParamSpec("P")
R = TypeVar("R")


def in_worker_thread(endpoint: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    """`endpoint` as a coroutine function that runs it on a worker thread. FastAPI reads the
    wrapper's signature through `__wrapped__`, so parameters, dependencies and the response
    model are the endpoint's own."""

    @functools.wraps(endpoint)
    def then_commit(*args: P.args, **kwargs: P.kwargs) -> R:
        answer = endpoint(*args, **kwargs)
        for value in kwargs.values():
            if isinstance(value, Session) and value.in_transaction():
                value.commit()
        return answer

    @functools.wraps(endpoint)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return await run_in_threadpool(then_commit, *args, **kwargs)

    return run


class OneHopRoute(APIRoute):
    """An `APIRoute` whose sync endpoint costs one hop to a worker thread, not two."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = in_worker_thread(endpoint)
        super().__init__(path, endpoint, **kwargs)
