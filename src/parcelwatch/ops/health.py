"""The health report behind `GET /api/health` and `parcelwatch health`.

Checks and their levels:
- `database`: a `SELECT 1`; critical when it fails (the other database checks are skipped).
- `carrier:<code>`: each configured provider's cheapest authenticated call (cached 60 s);
  critical on auth failure, outage or timeout, warning when rate limited. With no provider
  configured, one `carriers` warning.
- `sync_activity`: the newest successful run (outcome `ok` or `partial`). Warning after
  2 x UPDATE_INTERVAL (at most the threshold), critical after `--alert-threshold` hours
  (default 6). A new install with no run yet is a warning, not critical, until the first
  run is older than the threshold and none has succeeded.
- `stale_shipments`: active shipments of a tracked carrier not checked, by the updater or by
  hand, within HEALTH_STALE_HOURS (never checked: since registration); `parcelwatch.lifecycle`
  defines both words. Warning for any, critical when they are half or more of the active
  shipments. Shipments whose carrier no provider tracks are counted in the figures
  (`waiting_for_carrier`), not as stale: the `carriers` check names what to configure.
- `error_rate`: failed / checked shipments over the runs of the last hour. Warning from 10%
  or any failed run, critical from 50% or when every run failed. No run: ok.
- `carrier_budgets` (`ops.budgets`): warning while the carrier told a provider to stop (429
  asking to wait) or, in the process that runs the engine, it uses a lower rate than
  configured after 429s; a spent hour or day window is named, but ok. Its figures are every
  provider's budget.
- `notifications`: the outbox. Warning when a due delivery has waited past its due time for
  longer than NOTIFY_PENDING_WARN_AFTER (no dispatcher is running, or it cannot keep up).
  Deliveries waiting for a retry, the group window or quiet hours are not due, so they do
  not count; failing channels show in the delivery log and the failed/dead-letter metrics.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, or_, select, text
from sqlalchemy.orm import Session

from parcelwatch.carriers.base import Provider
from parcelwatch.carriers.registry import Routing
from parcelwatch.config import Settings
from parcelwatch.domain import utcnow
from parcelwatch.lifecycle import Lifecycle
from parcelwatch.models import NotificationDelivery, Shipment, SyncRun
from parcelwatch.ops.budgets import budget_check, provider_budgets
from parcelwatch.ops.checks import Check, HealthReport, Level
from parcelwatch.ops.health_carriers import CARRIER_CACHE, CarrierCheckCache, carrier_checks
from parcelwatch.sync.outcomes import FAILED_PASS_OUTCOMES, SUCCESSFUL_PASS_OUTCOMES, PassOutcome
from parcelwatch.sync.recovery import gone_engine_ids

__all__ = [
    "DEFAULT_ALERT_THRESHOLD_HOURS",
    "MAX_ALERT_THRESHOLD_HOURS",
    "HealthOptions",
    "database_checks",
    "health_report",
    "run_health",
]

DEFAULT_ALERT_THRESHOLD_HOURS = 6.0
MAX_ALERT_THRESHOLD_HOURS = 24.0 * 365 * 10  # ten years; beyond, a date cannot hold it
ERROR_RATE_WARNING = 0.10
ERROR_RATE_CRITICAL = 0.50
STALE_LIST_LIMIT = 200


@dataclass(frozen=True, slots=True)
class HealthOptions:
    alert_threshold_hours: float = DEFAULT_ALERT_THRESHOLD_HOURS
    check_stale: bool = False  # also list the stale shipments
    check_carriers: bool = True


async def run_health(
    settings: Settings,
    db: Engine,
    options: HealthOptions | None = None,
    *,
    providers: Mapping[str, Provider] | None = None,
    cache: CarrierCheckCache | None = CARRIER_CACHE,
) -> HealthReport:
    """Run every check: the database ones in a thread, the carrier ones concurrently."""
    options = options or HealthOptions()
    now = utcnow()
    database = asyncio.to_thread(database_checks, settings, db, options, now)
    if options.check_carriers:
        (checks, stale), carriers = await asyncio.gather(
            database, carrier_checks(settings, providers, cache=cache)
        )
    else:
        (checks, stale), carriers = await database, []
    return HealthReport(
        checked_at=now, checks=[checks[0], *carriers, *checks[1:]], stale_shipments=stale
    )


def health_report(
    session: Session, settings: Settings, options: HealthOptions | None = None
) -> HealthReport:
    """The database checks only (no carrier calls), for synchronous callers such as pages."""
    now = utcnow()
    db = session.get_bind().engine
    checks, stale = database_checks(settings, db, options or HealthOptions(), now)
    return HealthReport(checked_at=now, checks=checks, stale_shipments=stale)


def database_checks(
    settings: Settings, db: Engine, options: HealthOptions, now: datetime
) -> tuple[list[Check], list[dict[str, Any]] | None]:
    try:
        with db.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        message = f"database unreachable: {type(error).__name__}"
        return [Check("database", Level.CRITICAL, message, {"dialect": db.dialect.name})], None
    lifecycle = Lifecycle.from_settings(settings, tracked=Routing(settings).tracked())
    with Session(db) as session:
        checks = [
            Check("database", Level.OK, "database reachable", {"dialect": db.dialect.name}),
            _sync_activity(session, settings, options, now),
            _stale(session, lifecycle, now),
            _error_rate(session, now),
            budget_check(provider_budgets(session, settings, now=now)),
            _notifications(session, settings, now),
        ]
        stale = _stale_list(session, lifecycle, now) if options.check_stale else None
    return checks, stale


def _hours(delta: timedelta) -> float:
    return round(delta.total_seconds() / 3600, 2)


def _sync_activity(
    session: Session, settings: Settings, options: HealthOptions, now: datetime
) -> Check:
    threshold = timedelta(hours=options.alert_threshold_hours)
    warn_after = min(2 * settings.update_interval, threshold)
    figures: dict[str, Any] = {
        "threshold_hours": options.alert_threshold_hours,
        "warning_after_hours": _hours(warn_after),
    }
    success = session.execute(
        select(SyncRun.started_at, SyncRun.finished_at)
        .where(SyncRun.outcome.in_(SUCCESSFUL_PASS_OUTCOMES))
        .order_by(SyncRun.started_at.desc())
        .limit(1)
    ).first()
    latest = session.execute(
        select(SyncRun.outcome, SyncRun.engine_id).order_by(SyncRun.started_at.desc()).limit(1)
    ).first()
    latest_outcome = latest.outcome if latest else None
    if (
        latest is not None
        and latest_outcome == PassOutcome.RUNNING
        and latest.engine_id in gone_engine_ids(session, now=now)
    ):
        latest_outcome = PassOutcome.ABANDONED
    figures["latest_outcome"] = latest_outcome
    if success is None:
        first_started = session.scalar(select(func.min(SyncRun.started_at)))
        if first_started is None:
            return Check("sync_activity", Level.WARNING, "no sync run yet", figures)
        figures["first_run_at"] = first_started.isoformat()
        if now - first_started > threshold:
            message = (
                f"no successful sync run since the first run {_hours(now - first_started)} h "
                f"ago (threshold {options.alert_threshold_hours:g} h)"
            )
            return Check("sync_activity", Level.CRITICAL, message, figures)
        return Check("sync_activity", Level.WARNING, "no successful sync run yet", figures)
    finished: datetime = success.finished_at or success.started_at
    age = now - finished
    figures.update(last_success_at=finished.isoformat(), age_hours=_hours(age))
    if age > threshold:
        level, message = Level.CRITICAL, f"no successful sync run for {_hours(age)} h"
    elif age > warn_after:
        level, message = Level.WARNING, f"last successful sync run {_hours(age)} h ago"
    else:
        level, message = Level.OK, f"last successful sync run {round(age.total_seconds())} s ago"
    return Check("sync_activity", level, message, figures)


def _stale(session: Session, lifecycle: Lifecycle, now: datetime) -> Check:
    hours = round(lifecycle.stale_after.total_seconds() / 3600)
    count = select(func.count()).select_from(Shipment)
    active = session.scalar(count.where(lifecycle.active(now))) or 0
    waiting = session.scalar(count.where(lifecycle.waiting_for_carrier(now))) or 0
    rows = session.execute(
        select(Shipment.carrier, func.count())
        .where(lifecycle.stale(now))
        .group_by(Shipment.carrier)
    ).all()
    by_carrier: dict[str, int] = {str(carrier): int(count) for carrier, count in rows}
    stale = sum(by_carrier.values())
    figures = {"stale": stale, "active": active, "stale_hours": hours, "by_carrier": by_carrier}
    if waiting:
        figures["waiting_for_carrier"] = waiting
    if stale == 0:
        message = f"every active shipment checked within {hours} h"
        if waiting:
            message += f" ({waiting} wait for their carrier to be configured)"
        return Check("stale_shipments", Level.OK, message, figures)
    level = Level.CRITICAL if stale * 2 >= active else Level.WARNING
    message = f"{stale} of {active} active shipments not checked within {hours} h"
    return Check("stale_shipments", level, message, figures)


def _stale_list(session: Session, lifecycle: Lifecycle, now: datetime) -> list[dict[str, Any]]:
    shipments = session.scalars(
        select(Shipment)
        .where(lifecycle.stale(now))
        .order_by(Shipment.created_at, Shipment.id)
        .limit(STALE_LIST_LIMIT)
    ).all()
    listed = []
    for shipment in shipments:
        times = [t for t in (shipment.last_auto_refresh, shipment.last_manual_refresh) if t]
        listed.append(
            {
                "id": shipment.id,
                "carrier": shipment.carrier,
                "tracking_number": shipment.tracking_number,
                "status": shipment.status.value,
                "last_checked_at": max(times).isoformat() if times else None,
                "created_at": shipment.created_at.isoformat(),
                "auto_refresh_fail_count": shipment.auto_refresh_fail_count,
                "last_error": shipment.last_auto_refresh_error,
            }
        )
    return listed


def _error_rate(session: Session, now: datetime) -> Check:
    runs = session.execute(
        select(SyncRun.outcome, SyncRun.checked, SyncRun.failed).where(
            SyncRun.started_at >= now - timedelta(hours=1),
            or_(SyncRun.finished_at.is_not(None), SyncRun.outcome != PassOutcome.RUNNING),
        )
    ).all()
    outcomes = Counter(run.outcome for run in runs)
    checked = sum(run.checked for run in runs)
    failed = sum(run.failed for run in runs)
    failed_runs = sum(outcomes[outcome] for outcome in FAILED_PASS_OUTCOMES)
    rate = failed / checked if checked else 0.0
    figures = {
        "runs": len(runs),
        "failed_runs": failed_runs,
        "checked": checked,
        "failed": failed,
        "error_rate": round(rate, 4),
    }
    if not runs:
        return Check("error_rate", Level.OK, "no sync run in the last hour", figures)
    message = (
        f"{failed} of {checked} shipment checks failed ({rate:.0%}), "
        f"{failed_runs} of {len(runs)} runs failed in the last hour"
    )
    if rate >= ERROR_RATE_CRITICAL or failed_runs == len(runs):
        return Check("error_rate", Level.CRITICAL, message, figures)
    if rate >= ERROR_RATE_WARNING or failed_runs:
        return Check("error_rate", Level.WARNING, message, figures)
    return Check("error_rate", Level.OK, message, figures)


def _notifications(session: Session, settings: Settings, now: datetime) -> Check:
    pending = NotificationDelivery.status == "pending"
    count, oldest = session.execute(
        select(func.count(), func.min(NotificationDelivery.next_attempt_at)).where(pending)
    ).one()
    due = session.scalar(
        select(func.count()).where(pending, NotificationDelivery.next_attempt_at <= now)
    )
    waited = max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0
    warn_after = settings.notify_pending_warn_after
    figures = {
        "pending": int(count),
        "due": int(due or 0),
        "oldest_due_seconds": round(waited, 1),
        "warn_after_seconds": warn_after.total_seconds(),
    }
    if waited > warn_after.total_seconds():
        hint = (
            "NOTIFY_ENABLED is false: is a worker running?"
            if not settings.notify_enabled
            else "is the dispatcher running and keeping up?"
        )
        message = (
            f"{figures['due']} notification deliveries are due; the oldest has waited "
            f"{round(waited / 60, 1)} min ({hint})"
        )
        return Check("notifications", Level.WARNING, message, figures)
    return Check(
        "notifications", Level.OK, f"{figures['pending']} notification deliveries pending", figures
    )
