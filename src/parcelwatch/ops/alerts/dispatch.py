"""Deciding what to send (cool-down and recovery, from `alert_states`) and sending it through
every channel with retries; a failing channel is reported, never fatal."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from parcelwatch.carriers.base import Provider
from parcelwatch.config import Settings
from parcelwatch.domain import utcnow
from parcelwatch.logs import get_logger
from parcelwatch.models import AlertState
from parcelwatch.ops.alerts.channels import Channel, ChannelError, enabled_channels, secrets_of
from parcelwatch.ops.alerts.notices import AlertBatch, Notice
from parcelwatch.ops.checks import HealthReport, Level
from parcelwatch.ops.health import HealthOptions, run_health

__all__ = [
    "AlertRun",
    "Delivery",
    "AlertRetryPolicy",
    "check_and_alert",
    "decide",
    "deliver",
    "send_test_alert",
]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class AlertRetryPolicy:
    """How often one alert channel is tried: `attempts` in all, waiting `backoff` seconds
    before the second and twice as long before each next one."""

    attempts: int = 3
    backoff: float = 1.0  # seconds before the 2nd attempt, doubled each time


DEFAULT_RETRY = AlertRetryPolicy()


@dataclass(frozen=True, slots=True)
class Delivery:
    channel: str
    delivered: bool
    attempts: int
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "delivered": self.delivered,
            "attempts": self.attempts,
            "error": self.error,
        }


@dataclass(slots=True)
class AlertRun:
    """What one `--check-and-alert` did."""

    status: str
    notices: list[Notice] = field(default_factory=list)
    suppressed: list[str] = field(default_factory=list)  # keys inside their cool-down
    deliveries: list[Delivery] = field(default_factory=list)

    @property
    def all_delivered(self) -> bool:
        return all(delivery.delivered for delivery in self.deliveries)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "notices": [notice.as_dict() for notice in self.notices],
            "suppressed": self.suppressed,
            "deliveries": [delivery.as_dict() for delivery in self.deliveries],
        }


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


async def deliver(
    channels: Sequence[Channel],
    batch: AlertBatch,
    *,
    retry: AlertRetryPolicy | None = None,
    secrets: Sequence[str] = (),
) -> list[Delivery]:
    """Send `batch` through every channel concurrently, each retried with backoff."""
    policy = retry or DEFAULT_RETRY
    return list(await asyncio.gather(*(_one(c, batch, policy, secrets) for c in channels)))


async def _one(
    channel: Channel, batch: AlertBatch, retry: AlertRetryPolicy, secrets: Sequence[str]
) -> Delivery:
    error = "not attempted"
    for attempt in range(1, retry.attempts + 1):
        try:
            await channel.send(batch)
        except ChannelError as failure:
            error = _redact(str(failure), secrets)
        except Exception as failure:  # a channel bug must not stop the others
            error = f"unexpected {type(failure).__name__}"
        else:
            return Delivery(channel.name, True, attempt)
        log.warning("alert channel failed", channel=channel.name, attempt=attempt, error=error)
        if attempt < retry.attempts:
            await asyncio.sleep(retry.backoff * 2 ** (attempt - 1))
    return Delivery(channel.name, False, retry.attempts, error)


@dataclass(slots=True)
class Decision:
    notices: list[Notice]
    suppressed: list[str]


def decide(session: Session, report: HealthReport, settings: Settings, now: datetime) -> Decision:
    """Which problems to announce and which recoveries to tell, reading `alert_states`:
    a new problem or a change of severity is sent at once, a continuing one again only
    after ALERT_COOLDOWN; a check back to ok after an announced problem, or no longer in
    the report at all, is a recovery."""
    states = {state.key: state for state in session.scalars(select(AlertState))}
    notices: list[Notice] = []
    suppressed: list[str] = []
    for check in report.checks:
        state = states.get(check.name)
        if check.status is Level.OK:
            if state is not None and state.active:
                notices.append(
                    Notice("recovery", check.name, "ok", check.message, dict(check.figures))
                )
            continue
        fresh = state is None or not state.active or state.severity != check.status.value
        last = state.last_notified_at if state is not None else None
        if fresh or last is None or now - last >= settings.alert_cooldown:
            notices.append(
                Notice("alert", check.name, check.status.value, check.message, dict(check.figures))
            )
        else:
            suppressed.append(check.name)
    # A check that is no longer run (a carrier removed, or replaced by its own check once
    # configured) has cleared too: otherwise its problem would stay active for ever.
    present = {check.name for check in report.checks}
    for key, state in sorted(states.items()):
        if state.active and key not in present:
            notices.append(Notice("recovery", key, "ok", "this check is no longer run", {}))
    return Decision(notices, suppressed)


def _every_problem(report: HealthReport) -> list[Notice]:
    return [
        Notice("alert", check.name, check.status.value, check.message, dict(check.figures))
        for check in report.problems()
    ]


def record(session: Session, notices: Sequence[Notice], now: datetime) -> None:
    """Remember what was sent (flush only; the caller's transaction commits)."""
    for notice in notices:
        state = session.get(AlertState, notice.key)
        if notice.kind == "recovery":
            if state is not None:
                state.active, state.resolved_at, state.message = False, now, notice.message
            continue
        if state is None or not state.active:
            if state is None:
                state = AlertState(key=notice.key)
                session.add(state)
            state.first_seen_at, state.resolved_at = now, None
        state.active, state.severity, state.message = True, notice.severity, notice.message
        state.last_notified_at = now
    session.flush()


async def check_and_alert(
    settings: Settings,
    db: Engine,
    *,
    options: HealthOptions | None = None,
    providers: Mapping[str, Provider] | None = None,
    client: httpx.AsyncClient | None = None,
    retry: AlertRetryPolicy | None = None,
) -> AlertRun:
    """Run the health checks and notify every enabled channel of what changed or is due."""
    report = await run_health(settings, db, options, providers=providers)
    now = utcnow()

    def read() -> Decision:
        with Session(db) as session:
            return decide(session, report, settings, now)

    try:
        decision = await asyncio.to_thread(read)
        remember = True
    except Exception:
        # No database, no cool-down state: the outage itself must still be announced.
        log.warning("alert state unavailable; sending every problem without cool-down")
        decision = Decision(_every_problem(report), [])
        remember = False
    run = AlertRun(status=report.status, notices=decision.notices, suppressed=decision.suppressed)
    if not decision.notices:
        return run
    batch = AlertBatch(tuple(decision.notices), created_at=now, overall=report.status)
    async with _client(client) as http:
        channels = enabled_channels(settings, http)
        run.deliveries = await deliver(channels, batch, retry=retry, secrets=secrets_of(settings))
    # Remember the notices when someone was told: any channel beyond the console, or the
    # console when it is the only one. Otherwise the next run tries again.
    told = [d for d in run.deliveries if d.delivered and d.channel != "console"]
    if remember and (told or len(run.deliveries) == 1):

        def write() -> None:
            writing = db.execution_options(sqlite_begin="IMMEDIATE")
            with Session(writing) as session, session.begin():
                record(session, decision.notices, now)

        await asyncio.to_thread(write)
    return run


async def send_test_alert(
    settings: Settings,
    *,
    client: httpx.AsyncClient | None = None,
    retry: AlertRetryPolicy | None = None,
) -> list[Delivery]:
    """A clearly marked test through every enabled channel; no state is touched."""
    notice = Notice(
        "test", "test", "test", "This is a test alert from parcelwatch. No action is needed."
    )
    batch = AlertBatch((notice,), created_at=utcnow(), overall="test")
    async with _client(client) as http:
        channels = enabled_channels(settings, http)
        return await deliver(channels, batch, retry=retry, secrets=secrets_of(settings))


class _client:
    """The given client, or a new one closed on exit."""

    def __init__(self, client: httpx.AsyncClient | None) -> None:
        self.given = client
        self.own: httpx.AsyncClient | None = None

    async def __aenter__(self) -> httpx.AsyncClient:
        if self.given is not None:
            return self.given
        self.own = httpx.AsyncClient(follow_redirects=False)
        return self.own

    async def __aexit__(self, *exc: object) -> None:
        if self.own is not None:
            await self.own.aclose()
