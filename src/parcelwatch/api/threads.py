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
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute

__all__ = ["OneHopRoute", "in_worker_thread"]

P = ParamSpec("P")
R = TypeVar("R")


def in_worker_thread(endpoint: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    """`endpoint` as a coroutine function that runs it on a worker thread. FastAPI reads the
    wrapper's signature through `__wrapped__`, so parameters, dependencies and the response
    model are the endpoint's own."""

    @functools.wraps(endpoint)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return await run_in_threadpool(endpoint, *args, **kwargs)

    return run


class OneHopRoute(APIRoute):
    """An `APIRoute` whose sync endpoint costs one hop to a worker thread, not two."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = in_worker_thread(endpoint)
        super().__init__(path, endpoint, **kwargs)
