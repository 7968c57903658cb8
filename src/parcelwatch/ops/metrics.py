"""Every Prometheus metric parcelwatch exports, in one place (`parcelwatch_` prefix, bounded
labels: carrier, provider, outcome, method, route, status; never a tracking number).

`carrier` is the parcel's carrier (`usps`, `canada_post`, ...): the update metrics and the
shipment gauges. `provider` is the API that was asked (`usps`, `ups`, `fedex`, `dhl`,
`shipengine`): the API-call, retry, circuit-breaker and unknown-status metrics. A
`canada_post` parcel tracked through ShipEngine counts under `carrier="canada_post"` in
`parcelwatch_update_*` and under `provider="shipengine"` in `parcelwatch_carrier_api_*`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from parcelwatch import __version__
from parcelwatch.domain import utcnow
from parcelwatch.models import NotificationChannel, NotificationDelivery, Shipment, SyncRun
from parcelwatch.sync.outcomes import SUCCESSFUL_PASS_OUTCOMES

if TYPE_CHECKING:  # the provider modules count calls here; the settings import them
    from parcelwatch.lifecycle import Lifecycle
    from parcelwatch.ops.budgets import ProviderBudget

__all__ = [
    "BUILD_INFO",
    "BudgetCollector",
    "BuildInfoCollector",
    "DatabaseCollector",
    "CARRIER_API_CALLS",
    "CARRIER_API_RETRIES",
    "CARRIER_RATE",
    "CIRCUIT_STATE",
    "HTTP_REQUESTS",
    "HTTP_REQUEST_DURATION",
    "LAST_SUCCESSFUL_SYNC",
    "LEASES_TAKEN_OVER",
    "LOGIN_FAILURES",
    "NOTIFICATIONS_DEAD_LETTERED",
    "NOTIFICATIONS_DELIVERED",
    "NOTIFICATIONS_ENQUEUED",
    "NOTIFICATIONS_FAILED",
    "NOTIFICATION_CHANNELS_DISABLED",
    "NOTIFICATION_LATENCY",
    "OutboxCollector",
    "RUNS_ABANDONED",
    "UNKNOWN_STATUS_CODES",
    "UPDATER_PAUSED",
    "UPDATE_ATTEMPTS",
    "UPDATE_DURATION",
    "UPDATE_FAILURES",
    "UPDATE_SUCCESSES",
]

BUILD_INFO = Info("parcelwatch_build", "parcelwatch version")
BUILD_INFO.info({"version": __version__})

UPDATE_ATTEMPTS = Counter(
    "parcelwatch_update_attempts_total", "Shipment updates attempted", ["carrier"]
)
UPDATE_SUCCESSES = Counter(
    "parcelwatch_update_successes_total",
    "Shipment updates that reached the carrier and were written",
    ["carrier", "outcome"],  # outcome: updated | unchanged | not_found
)
UPDATE_FAILURES = Counter(
    "parcelwatch_update_failures_total",
    "Shipment updates that failed",
    ["carrier", "outcome"],  # outcome: shipment_error | carrier_error | deferred
)
UPDATE_DURATION = Histogram(
    "parcelwatch_update_duration_seconds",
    "Time to update one batch, carrier call and write",
    ["carrier"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
CARRIER_API_CALLS = Counter(
    "parcelwatch_carrier_api_calls_total",
    "HTTP calls to provider APIs (token requests included)",
    ["provider", "outcome"],  # outcome: ok | not_found | auth | rate_limited | unavailable | ...
)
CARRIER_API_RETRIES = Counter(
    "parcelwatch_carrier_api_retries_total", "Provider calls retried", ["provider"]
)
UNKNOWN_STATUS_CODES = Counter(
    "parcelwatch_unknown_status_codes_total",
    "Provider status codes no table maps (kept raw, shown as unknown)",
    ["provider"],
)
CARRIER_RATE = Gauge(
    "parcelwatch_carrier_rate_per_second",
    "Requests a second allowed to a provider: configured, and used (lower after 429s)",
    ["provider", "rate"],  # rate: configured | used
    multiprocess_mode="livemin",
)
CIRCUIT_STATE = Gauge(
    "parcelwatch_carrier_circuit_open",
    "1 while the provider's circuit breaker is open (calls suspended)",
    ["provider"],
    multiprocess_mode="livemax",
)
LAST_SUCCESSFUL_SYNC = Gauge(
    "parcelwatch_last_successful_sync_timestamp_seconds",
    "Unix time of the last sync run that finished without fatal error",
    multiprocess_mode="max",
)
UPDATER_PAUSED = Gauge(
    "parcelwatch_updater_paused",
    "1 while this process's updater (or worker) is paused",
    multiprocess_mode="livemax",
)
LEASES_TAKEN_OVER = Counter(
    "parcelwatch_sync_leases_taken_over_total",
    "Leases of crashed engines (heartbeat gone) made due again before they ran out",
)
RUNS_ABANDONED = Counter(
    "parcelwatch_sync_runs_abandoned_total",
    "Sync runs left running by a crashed engine, closed as abandoned",
)
LOGIN_FAILURES = Counter(
    "parcelwatch_login_failures_total",
    "Dashboard sign-ins refused for a wrong name or password (throttled ones not counted)",
)
NOTIFICATIONS_ENQUEUED = Counter(
    "parcelwatch_notifications_enqueued_total",
    "Notification deliveries written to the outbox (one per notification and channel)",
    ["kind"],  # the channel kind: email | apprise | webhook
)
NOTIFICATIONS_DELIVERED = Counter(
    "parcelwatch_notifications_delivered_total",
    "Notification deliveries that reached their channel",
    ["kind"],
)
NOTIFICATIONS_FAILED = Counter(
    "parcelwatch_notifications_failed_total",
    "Notification delivery attempts that failed (each is retried or dead-lettered)",
    ["kind"],
)
NOTIFICATIONS_DEAD_LETTERED = Counter(
    "parcelwatch_notifications_dead_lettered_total",
    "Notification deliveries given up: retries spent, or their channel switched off",
    ["kind"],
)
NOTIFICATION_CHANNELS_DISABLED = Counter(
    "parcelwatch_notification_channels_disabled_total",
    "Channels switched off after NOTIFY_DISABLE_AFTER failures in a row",
    ["kind"],
)
NOTIFICATION_LATENCY = Histogram(
    "parcelwatch_notification_delivery_latency_seconds",
    "From a notification's commit to the outbox to its delivery",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180, 600, 1800, 3600, 21600, 86400),
)
HTTP_REQUESTS = Counter(
    "parcelwatch_http_requests_total", "HTTP requests served", ["method", "route", "status"]
)
HTTP_REQUEST_DURATION = Histogram(
    "parcelwatch_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
)


# -- computed at scrape time from the database (any process's work shows) -----------------


class DatabaseCollector(Collector):
    """Shipment and sync-run gauges read at scrape time with a few indexed queries: one
    GROUP BY over `ix_shipments_status_carrier`, one range over `ix_shipments_due`, and
    newest-first reads of `ix_sync_runs_started_at`. Never the whole table in memory."""

    def __init__(self, db: Engine, lifecycle: Lifecycle) -> None:
        self.db = db
        self.lifecycle = lifecycle

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []  # no collect() at registration time

    def collect(self) -> Iterable[GaugeMetricFamily]:
        now = utcnow()
        with self.db.connect() as connection:
            by_status = connection.execute(
                select(Shipment.status, Shipment.carrier, func.count()).group_by(
                    Shipment.status, Shipment.carrier
                )
            ).all()
            due, oldest = 0, None
            if self.lifecycle.tracked_carriers:  # else nothing can be due
                due, oldest = connection.execute(
                    select(func.count(), func.min(Shipment.next_check_at)).where(
                        self.lifecycle.due(now)
                    )
                ).one()
            waiting = connection.scalar(
                select(func.count()).where(self.lifecycle.waiting_for_carrier(now))
            )
            last_success = connection.execute(
                select(SyncRun.started_at, SyncRun.finished_at)
                .where(SyncRun.outcome.in_(SUCCESSFUL_PASS_OUTCOMES))
                .order_by(SyncRun.started_at.desc())
                .limit(1)
            ).first()
            checked, failed = connection.execute(
                select(
                    func.coalesce(func.sum(SyncRun.checked), 0),
                    func.coalesce(func.sum(SyncRun.failed), 0),
                ).where(SyncRun.started_at >= now - timedelta(hours=1))
            ).one()
        shipments = GaugeMetricFamily(
            "parcelwatch_shipments", "Shipments by status and carrier", labels=["status", "carrier"]
        )
        for status, carrier, count in by_status:
            shipments.add_metric([str(getattr(status, "value", status)), carrier], count)
        yield shipments
        yield GaugeMetricFamily(
            "parcelwatch_shipments_due", "Shipments due for a check now (backlog)", value=due
        )
        age = (now - oldest).total_seconds() if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "parcelwatch_shipments_oldest_overdue_seconds",
            "How long the longest-waiting due shipment has been overdue (0 when none)",
            value=max(age, 0.0),
        )
        yield GaugeMetricFamily(
            "parcelwatch_shipments_waiting_for_carrier",
            "Shipments that would be due, but no configured provider tracks their carrier",
            value=waiting or 0,
        )
        if last_success is not None:
            finished = last_success[1] or last_success[0]
            yield GaugeMetricFamily(
                "parcelwatch_sync_last_success_timestamp_seconds",
                "Unix time the newest successful sync run (any process) finished",
                value=finished.timestamp(),
            )
        recent = GaugeMetricFamily(
            "parcelwatch_sync_shipments_last_hour",
            "Shipments checked and failed by sync runs started in the last hour",
            labels=["result"],
        )
        recent.add_metric(["checked"], int(checked))
        recent.add_metric(["failed"], int(failed))
        yield recent


class OutboxCollector(Collector):
    """The notification outbox read at scrape time (any process's dispatcher shows): pending
    deliveries by channel kind, and how long the longest-waiting due one has waited past its
    due time. One GROUP BY and one `min` over `ix_deliveries_due`."""

    def __init__(self, db: Engine) -> None:
        self.db = db

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterable[GaugeMetricFamily]:
        now = utcnow()
        pending = NotificationDelivery.status == "pending"
        channel = NotificationChannel
        with self.db.connect() as connection:
            by_kind = connection.execute(
                select(channel.kind, func.count())
                .select_from(NotificationDelivery)
                .join(channel, channel.id == NotificationDelivery.channel_id)
                .where(pending)
                .group_by(channel.kind)
            ).all()
            oldest = connection.scalar(
                select(func.min(NotificationDelivery.next_attempt_at)).where(pending)
            )
        depth = GaugeMetricFamily(
            "parcelwatch_notifications_pending",
            "Notification deliveries in the outbox not yet delivered or dead (due or waiting)",
            labels=["kind"],
        )
        counts = {str(kind): int(count) for kind, count in by_kind}
        for kind in sorted({"email", "apprise", "webhook"} | set(counts)):
            depth.add_metric([kind], counts.get(kind, 0))
        yield depth
        age = (now - oldest).total_seconds() if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "parcelwatch_notifications_oldest_pending_seconds",
            "How long the longest-waiting due notification delivery has waited past its due "
            "time (0 when none is due)",
            value=max(age, 0.0),
        )


class BudgetCollector(Collector):
    """`parcelwatch_carrier_budget_*` per provider and window, read at scrape time from the
    store every engine spends from (`ops.budgets.provider_budgets`): the limit of every
    window; spent, remaining and the reset time of the counted ones (hour, day)."""

    def __init__(self, read: Callable[[], list[ProviderBudget]]) -> None:
        self.read = read

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterable[GaugeMetricFamily]:
        labels = ["provider", "window"]
        limit = GaugeMetricFamily(
            "parcelwatch_carrier_budget_limit", "Calls a quota window allows", labels=labels
        )
        spent = GaugeMetricFamily(
            "parcelwatch_carrier_budget_spent",
            "Calls spent (or reserved) in the current hour or day window, by every engine",
            labels=labels,
        )
        remaining = GaugeMetricFamily(
            "parcelwatch_carrier_budget_remaining",
            "Calls left in the current hour or day window",
            labels=labels,
        )
        resets = GaugeMetricFamily(
            "parcelwatch_carrier_budget_resets_at_timestamp_seconds",
            "Unix time the current hour or day window resets",
            labels=labels,
        )
        blocked = GaugeMetricFamily(
            "parcelwatch_carrier_blocked_until_timestamp_seconds",
            "Unix time until which a provider is not called (it asked to wait); 0 if it is not",
            labels=["provider"],
        )
        for budget in self.read():
            until = budget.blocked_until.timestamp() if budget.blocked_until else 0.0
            blocked.add_metric([budget.provider], until)
            for window in budget.windows:
                key = [budget.provider, window.name]
                limit.add_metric(key, window.limit)
                if window.spent is not None and window.resets_at is not None:
                    spent.add_metric(key, window.spent)
                    remaining.add_metric(key, window.remaining or 0)
                    resets.add_metric(key, window.resets_at.timestamp())
        yield from (limit, spent, remaining, resets, blocked)


class BuildInfoCollector(Collector):
    """`parcelwatch_build_info` for multi-process mode, where `Info` metrics are not shared."""

    def collect(self) -> Iterable[InfoMetricFamily]:
        yield InfoMetricFamily("parcelwatch_build", "parcelwatch version", {"version": __version__})
