"""Every Prometheus metric parcelwatch exports, in one place (`parcelwatch_` prefix, bounded
labels: carrier, outcome, method, route, status; never a tracking number)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

from parcelwatch import __version__

__all__ = [
    "BUILD_INFO",
    "CARRIER_API_CALLS",
    "CARRIER_API_RETRIES",
    "CIRCUIT_STATE",
    "HTTP_REQUESTS",
    "HTTP_REQUEST_DURATION",
    "LAST_SUCCESSFUL_SYNC",
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
    "HTTP calls to carrier APIs",
    ["carrier", "outcome"],  # outcome: ok | not_found | auth | rate_limited | unavailable | ...
)
CARRIER_API_RETRIES = Counter(
    "parcelwatch_carrier_api_retries_total", "Carrier calls retried", ["carrier"]
)
UNKNOWN_STATUS_CODES = Counter(
    "parcelwatch_unknown_status_codes_total",
    "Carrier status codes no table maps (kept raw, shown as unknown)",
    ["carrier"],
)
CIRCUIT_STATE = Gauge(
    "parcelwatch_carrier_circuit_open",
    "1 while the carrier's circuit breaker is open (calls suspended)",
    ["carrier"],
)
LAST_SUCCESSFUL_SYNC = Gauge(
    "parcelwatch_last_successful_sync_timestamp_seconds",
    "Unix time of the last sync run that finished without fatal error",
)
UPDATER_PAUSED = Gauge("parcelwatch_updater_paused", "1 while the in-process updater is paused")
HTTP_REQUESTS = Counter(
    "parcelwatch_http_requests_total", "HTTP requests served", ["method", "route", "status"]
)
HTTP_REQUEST_DURATION = Histogram(
    "parcelwatch_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
)
