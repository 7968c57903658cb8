"""In-server alerting (ALERTS_IN_SERVER=true): the `--check-and-alert` evaluation on a timer
inside `parcelwatch serve`. Run it in one server process only, or use the cron/CronJob."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from parcelwatch.logs import get_logger
from parcelwatch.ops.alerts.dispatch import check_and_alert

__all__ = ["ALERT_INTERVAL_SECONDS", "alerts_lifespan"]

log = get_logger(__name__)

ALERT_INTERVAL_SECONDS = 300.0
FIRST_DELAY_SECONDS = 60.0  # let the updater's first pass land before judging


async def _loop(app: FastAPI, first_delay: float, interval: float) -> None:
    await asyncio.sleep(first_delay)
    while True:
        try:
            run = await check_and_alert(
                app.state.settings,
                app.state.engine,
                providers=getattr(app.state, "health_providers", None),
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
        await asyncio.sleep(interval)


@asynccontextmanager
async def alerts_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Lifespan hook; does nothing unless ALERTS_IN_SERVER is true. Tests may set
    `app.state.alert_interval` and `app.state.alert_first_delay`."""
    if not app.state.settings.alerts_in_server:
        yield
        return
    task = asyncio.create_task(
        _loop(
            app,
            getattr(app.state, "alert_first_delay", FIRST_DELAY_SECONDS),
            getattr(app.state, "alert_interval", ALERT_INTERVAL_SECONDS),
        ),
        name="parcelwatch-alerts",
    )
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
