"""In-server alerting (ALERTS_IN_SERVER=true): the `--check-and-alert` evaluation on a timer
inside `parcelwatch serve`. Run it in one server process only, or use the cron/CronJob."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from parcelwatch.api.deps import database_of, health_providers_of, settings_of
from parcelwatch.logs import get_logger
from parcelwatch.ops.alerts.dispatch import check_and_alert

__all__ = ["ALERT_INTERVAL_SECONDS", "alerts_lifespan"]

log = get_logger(__name__)

ALERT_INTERVAL_SECONDS = 300.0
FIRST_DELAY_SECONDS = 60.0  # let the updater's first pass land before judging


STOP_GRACE_SECONDS = 15.0  # how long shutdown waits for an evaluation in flight


async def _loop(app: FastAPI, first_delay: float, interval: float, stop: asyncio.Event) -> None:
    if await _stopped_within(stop, first_delay):
        return
    while True:
        try:
            run = await check_and_alert(
                settings_of(app), database_of(app), providers=health_providers_of(app)
            )
            if run.notices:
                log.info(
                    "alerts evaluated",
                    status=run.status,
                    sent=len(run.notices),
                    failed_channels=[d.channel for d in run.deliveries if not d.delivered],
                )
        except Exception:
            log.exception("alert evaluation failed")
        if await _stopped_within(stop, interval):
            return


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


@asynccontextmanager
async def alerts_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Lifespan hook; does nothing unless ALERTS_IN_SERVER is true. Tests may set
    `app.state.alert_interval` and `app.state.alert_first_delay`.

    On shutdown an evaluation in flight is allowed to finish (up to STOP_GRACE_SECONDS)
    rather than cancelled: cancelling would leave its database work running in a worker
    thread after the app disposed the engine, and its alert state half recorded."""
    if not settings_of(app).alerts_in_server:
        yield
        return
    stop = asyncio.Event()
    task = asyncio.create_task(
        _loop(
            app,
            getattr(app.state, "alert_first_delay", FIRST_DELAY_SECONDS),
            getattr(app.state, "alert_interval", ALERT_INTERVAL_SECONDS),
            stop,
        ),
        name="parcelwatch-alerts",
    )
    try:
        yield
    finally:
        stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), STOP_GRACE_SECONDS)
        except TimeoutError:
            log.warning("alert evaluation still running at shutdown; cancelled")
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
