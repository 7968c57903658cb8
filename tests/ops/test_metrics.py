"""`/metrics`: the engine's counters after a real sync against the emulator, gauges read from
the database at scrape time, HTTP requests by route template, and multi-process mode."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from parcelwatch.api.app import create_app
from parcelwatch.config import Settings
from parcelwatch.domain import ShipmentStatus, utcnow
from tests.conftest import Database
from tests.ops.conftest import RunFactory, ShipmentFactory
from tests.sync.conftest import Emulator, engine_for, running_emulator

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.mark.anyio
async def test_api_call_metrics_label_the_provider_and_update_metrics_the_carrier(
    database: Database, emulator: Emulator, add_shipment: ShipmentFactory
) -> None:
    settings: Settings = emulator.settings_for(database)
    add_shipment("canada_post", tracking_number="7023210039414604")  # ShipEngine tracks it
    app = create_app(settings)
    with TestClient(app) as client:
        before = scrape(client)
        async with engine_for(settings, database) as engine:
            await engine.run_pass()
        after = scrape(client)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("parcelwatch_update_attempts_total", carrier="canada_post") == 1
    assert grew("parcelwatch_carrier_api_calls_total", provider="shipengine", outcome="ok") == 1
    assert not any(
        name == "parcelwatch_carrier_api_calls_total" and ("carrier", "canada_post") in labels
        for name, labels in after
    )


@pytest.mark.anyio
async def test_a_sync_against_the_emulator_shows_in_the_scraped_metrics(
    database: Database, emulator: Emulator, add_shipment: ShipmentFactory
) -> None:
    settings: Settings = emulator.settings_for(database)
    shipments = [add_shipment("ups") for _ in range(3)]
    app = create_app(settings)
    with TestClient(app) as client:
        before = scrape(client)
        assert value(before, "parcelwatch_shipments_due") == 3
        assert value(before, "parcelwatch_shipments", status="pending", carrier="ups") == 3
        async with engine_for(settings, database) as engine:
            summary = await engine.run_pass()
        after = scrape(client)

    assert summary.checked == 3
    delta = {
        name: value(after, name, **labels) - value(before, name, **labels)
        for name, labels in [
            ("parcelwatch_update_attempts_total", {"carrier": "ups"}),
            ("parcelwatch_carrier_api_calls_total", {"provider": "ups", "outcome": "ok"}),
            ("parcelwatch_update_duration_seconds_count", {"carrier": "ups"}),
        ]
    }
    assert delta["parcelwatch_update_attempts_total"] == 3
    assert delta["parcelwatch_carrier_api_calls_total"] >= 3  # plus the OAuth token call
    assert delta["parcelwatch_update_duration_seconds_count"] >= 1
    successes = sum(
        v - before.get(k, 0.0)
        for k, v in after.items()
        if k[0] == "parcelwatch_update_successes_total" and ("carrier", "ups") in k[1]
    )
    assert successes == 3
    assert value(after, "parcelwatch_shipments_due") == 0
    assert value(after, "parcelwatch_shipments_oldest_overdue_seconds") == 0
    assert value(after, "parcelwatch_shipments", status="pending", carrier="ups") == 0
    by_status = sum(
        v
        for k, v in after.items()
        if k[0] == "parcelwatch_shipments" and ("carrier", "ups") in k[1]
    )
    assert by_status == len(shipments)
    last_success = value(after, "parcelwatch_sync_last_success_timestamp_seconds")
    assert abs(last_success - utcnow().timestamp()) < 60
    assert value(after, "parcelwatch_last_successful_sync_timestamp_seconds") >= last_success - 1
    assert value(after, "parcelwatch_sync_shipments_last_hour", result="checked") == 3
    assert value(after, "parcelwatch_sync_shipments_last_hour", result="failed") == 0


@pytest.fixture
def carriers_api(settings: Settings) -> Iterator[TestClient]:
    """The app with UPS and FedEx configured (scraping calls no carrier)."""
    configured = settings.model_copy(
        update={
            "ups_client_id": "id",
            "ups_client_secret": SecretStr("secret"),
            "ups_base_url": "http://127.0.0.1:9",
            "fedex_api_key": "key",
            "fedex_secret_key": SecretStr("secret"),
            "fedex_base_url": "http://127.0.0.1:9",
        }
    )
    with TestClient(create_app(configured)) as client:
        yield client


def test_backlog_counts_due_shipments_and_ages_the_oldest(
    carriers_api: TestClient, add_shipment: ShipmentFactory, add_run: RunFactory
) -> None:
    now = utcnow()
    add_shipment("ups", next_check_at=now - timedelta(hours=2))
    add_shipment("fedex", next_check_at=now - timedelta(minutes=5))
    add_shipment("fedex", next_check_at=now + timedelta(hours=1))  # not due yet
    add_shipment("ups", next_check_at=None, status=ShipmentStatus.DELIVERED)
    add_run(minutes_ago=30, checked=8, failed=2)
    samples = scrape(carriers_api)
    assert value(samples, "parcelwatch_shipments_due") == 2
    assert 7190 < value(samples, "parcelwatch_shipments_oldest_overdue_seconds") < 7300
    assert value(samples, "parcelwatch_shipments", status="pending", carrier="fedex") == 2
    assert value(samples, "parcelwatch_shipments", status="delivered", carrier="ups") == 1
    assert value(samples, "parcelwatch_sync_shipments_last_hour", result="failed") == 2


def test_a_shipment_no_provider_tracks_is_waiting_not_overdue(
    carriers_api: TestClient, add_shipment: ShipmentFactory
) -> None:
    # DHL is not configured: no pass can claim it, so it must not age the backlog for ever.
    add_shipment("dhl", tracking_number="1234567890", next_check_at=utcnow() - timedelta(days=3))
    add_shipment("ups", next_check_at=utcnow() - timedelta(minutes=10))
    samples = scrape(carriers_api)
    assert value(samples, "parcelwatch_shipments_due") == 1
    assert 590 < value(samples, "parcelwatch_shipments_oldest_overdue_seconds") < 700
    assert value(samples, "parcelwatch_shipments_waiting_for_carrier") == 1


def test_shipments_past_the_cutoff_are_not_due(
    carriers_api: TestClient, add_shipment: ShipmentFactory
) -> None:
    long_ago = utcnow() - timedelta(days=31)  # AUTO_UPDATE_CUTOFF_DAYS is 30
    add_shipment("ups", created_at=long_ago, next_check_at=utcnow() - timedelta(days=1))
    samples = scrape(carriers_api)
    assert value(samples, "parcelwatch_shipments_due") == 0
    assert value(samples, "parcelwatch_shipments_oldest_overdue_seconds") == 0


def test_http_requests_are_labelled_by_route_template_not_raw_path(
    api: TestClient, add_shipment: ShipmentFactory
) -> None:
    shipment = add_shipment("ups")
    route = "/api/shipments/{shipment_id}"
    before = scrape(api)
    assert api.get(f"/api/shipments/{shipment.id}").status_code == 200
    assert api.get("/api/shipments/999999").status_code == 404
    assert api.get("/no/such/page/12345").status_code == 404
    after = scrape(api)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("parcelwatch_http_requests_total", method="GET", route=route, status="200") == 1
    assert grew("parcelwatch_http_requests_total", method="GET", route=route, status="404") == 1
    assert (
        grew("parcelwatch_http_requests_total", method="GET", route="unmatched", status="404") == 1
    )
    assert grew("parcelwatch_http_request_duration_seconds_count", method="GET", route=route) == 2
    assert not any(str(shipment.id) in dict(labels).get("route", "") for _, labels in after)


def test_a_scrape_asks_for_the_process_series_or_the_database_gauges_alone(
    carriers_api: TestClient, add_shipment: ShipmentFactory
) -> None:
    """Several API servers: each scraped for its own series, one for the database gauges."""
    add_shipment("ups", next_check_at=utcnow() - timedelta(minutes=5))
    process = carriers_api.get("/metrics", params={"scope": "process"}).text
    gauges = carriers_api.get("/metrics", params={"scope": "database"}).text
    everything = carriers_api.get("/metrics").text
    assert "parcelwatch_build_info" in process
    assert "parcelwatch_shipments_due" not in process
    assert "parcelwatch_shipments_due 1.0" in gauges
    assert "parcelwatch_build_info" not in gauges
    assert "parcelwatch_http_requests_total" not in gauges
    assert "parcelwatch_shipments_due 1.0" in everything
    assert "parcelwatch_build_info" in everything
    assert carriers_api.get("/metrics", params={"scope": "nonsense"}).status_code == 422


def test_build_info_is_exported(api: TestClient) -> None:
    samples = scrape(api)
    assert value(samples, "parcelwatch_build_info", version="0.1.0") == 1


def test_pausing_the_updater_shows_in_metrics_and_keeps_it_ready(settings: Settings) -> None:
    from parcelwatch.sync.testing import StaticProviders

    app = create_app(
        settings.model_copy(update={"auto_update_enabled": True, "admin_api_key": SecretStr("k")})
    )
    app.state.sync_providers = StaticProviders({})
    admin = {"Authorization": "Bearer k"}
    with TestClient(app) as client:
        assert value(scrape(client), "parcelwatch_updater_paused") == 0
        paused = client.post("/api/admin/tracking-updater/pause", headers=admin)
        assert paused.status_code == 200
        assert value(scrape(client), "parcelwatch_updater_paused") == 1
        assert client.get("/readyz").status_code == 200
        client.post("/api/admin/tracking-updater/resume", headers=admin)
        assert value(scrape(client), "parcelwatch_updater_paused") == 0


def test_multiprocess_mode_merges_worker_files_and_keeps_database_gauges(
    api: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "prometheus"  # not tmp_path: the SQLite test database lives there
    directory.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    worker = (
        "from parcelwatch.ops.metrics import UPDATE_ATTEMPTS; "
        "UPDATE_ATTEMPTS.labels(carrier='dhl').inc(5)"
    )
    for _ in range(2):  # two "workers", each writing its own file
        subprocess.run([sys.executable, "-c", worker], check=True, env=os.environ.copy())
    samples = scrape(api)
    assert value(samples, "parcelwatch_update_attempts_total", carrier="dhl") == 10
    assert value(samples, "parcelwatch_build_info", version="0.1.0") == 1
    assert ("parcelwatch_shipments_due", frozenset()) in samples


@pytest.mark.anyio
async def test_a_carrier_outage_and_a_rate_limit_show_as_retries_429s_and_an_open_circuit(
    database: Database, add_shipment: ShipmentFactory
) -> None:
    # UPS answers 5xx to everything; DHL allows one call a minute and the engine is told it may
    # make ten a second: the first DHL call goes through, the next ones meet 429s.
    config = {
        "head_start": timedelta(days=2),
        "faults": {"carriers": {"ups": {"server_error": 1.0}}},
        "rate_limits": {"dhl": 1 / 60},
    }
    with running_emulator(**config) as emulator:
        settings = emulator.settings_for(
            database, ups_max_concurrency=1, dhl_max_concurrency=1, dhl_rate_limit=10.0
        )
        for _ in range(4):
            add_shipment("ups")
            add_shipment("dhl")
        app = create_app(settings)
        with TestClient(app) as client:
            before = scrape(client)
            async with engine_for(settings, database) as engine:
                summary = await engine.run_pass()
            after = scrape(client)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert (summary.deferred, summary.synced) == (7, 1)
    assert grew("parcelwatch_carrier_api_calls_total", provider="ups", outcome="unavailable") >= 3
    assert grew("parcelwatch_carrier_api_retries_total", provider="ups") >= 3
    assert value(after, "parcelwatch_carrier_circuit_open", provider="ups") == 1
    assert grew("parcelwatch_carrier_api_calls_total", provider="dhl", outcome="rate_limited") >= 1
    assert grew("parcelwatch_update_failures_total", carrier="ups", outcome="deferred") == 4
    assert grew("parcelwatch_update_failures_total", carrier="dhl", outcome="deferred") == 3
    assert grew("parcelwatch_update_failures_total", carrier="ups", outcome="shipment_error") == 0
