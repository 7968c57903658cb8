"""Host names and cross-site requests: DNS rebinding and other sites' pages get nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from parcelwatch.api.app import create_app
from parcelwatch.config import ConfigError, Settings, load_settings
from parcelwatch.shipments.service import register_shipment
from tests.conftest import (
    Browser,
    Database,
    account_token,
    browser_session,
    serve_process,
    serving,
)

NUMBER = "1Z5R89390357567127"


def _settings(database: Database, **overrides: object) -> Settings:
    return load_settings(
        database_url=database.url.replace("postgresql+psycopg://", "postgresql://"),
        auto_update_enabled=False,
        _env_file=None,
        **overrides,
    )


@pytest.fixture
def default_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALLOWED_HOSTS", raising=False)


@pytest.fixture
def client(database: Database, default_hosts: None) -> Iterator[TestClient]:
    settings = _settings(database)
    with TestClient(
        create_app(settings), base_url="http://127.0.0.1:8080", headers=account_token(settings)
    ) as test_client:
        yield test_client


@pytest.fixture
def browser(database: Database, default_hosts: None) -> Iterator[Browser]:
    """The dashboard, signed in as the owner, opened at http://127.0.0.1:8080."""
    settings = _settings(database)
    with Browser(
        create_app(settings), browser_session(settings), base_url="http://127.0.0.1:8080"
    ) as test_browser:
        yield test_browser


def _shipment_id(database: Database) -> int:
    with database.sessions.begin() as session:
        shipment, _ = register_shipment(session, tracking_number=NUMBER)
        return shipment.id


@pytest.mark.usefixtures("default_hosts")
def test_the_default_hosts_are_the_loopback_names_plus_the_public_url_host() -> None:
    assert load_settings(_env_file=None).trusted_hosts == ["localhost", "127.0.0.1", "::1"]
    settings = load_settings(public_url="https://track.example.com/", _env_file=None)
    assert settings.trusted_hosts == ["localhost", "127.0.0.1", "::1", "track.example.com"]
    listed = load_settings(allowed_hosts="Parcels.Example.com, [::1],*.lan", _env_file=None)
    assert listed.trusted_hosts == ["parcels.example.com", "::1", "*.lan"]


@pytest.mark.parametrize("value", ["http://example.com", "example.com:8080", "a b"])
def test_an_allowed_host_with_a_scheme_port_or_space_stops_start_up(value: str) -> None:
    with pytest.raises(ConfigError, match="ALLOWED_HOSTS"):
        load_settings(allowed_hosts=value, _env_file=None)


@pytest.mark.parametrize("host", ["127.0.0.1:8080", "localhost", "localhost:8080", "[::1]:8080"])
def test_loopback_names_are_answered_by_default(client: TestClient, host: str) -> None:
    response = client.get("/api/shipments", headers={"Host": host})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "path", ["/api/shipments", "/", "/shipments", "/docs", "/openapi.json", "/api/health"]
)
def test_a_rebound_host_name_is_refused_with_400_everywhere(client: TestClient, path: str) -> None:
    response = client.get(path, headers={"Host": "attacker.example:8080"})
    assert response.status_code == 400
    assert "ALLOWED_HOSTS" in response.json()["detail"]


def test_a_rebound_host_name_cannot_post_a_form_or_create(
    client: TestClient, database: Database
) -> None:
    evil = {"Host": "attacker.example", "Origin": "http://attacker.example"}
    assert client.post("/add", data={"tracking_number": NUMBER}, headers=evil).status_code == 400
    created = client.post("/api/shipments", json={"tracking_number": NUMBER}, headers=evil)
    assert created.status_code == 400
    assert client.get("/api/shipments").json()["items"] == []


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_probes_and_scrapes_by_address_are_answered_whatever_the_host(
    client: TestClient, path: str
) -> None:
    assert client.get(path, headers={"Host": "10.1.2.3:8080"}).status_code != 400


def test_allowed_hosts_and_public_url_name_the_server(
    database: Database, default_hosts: None
) -> None:
    settings = _settings(
        database, allowed_hosts="parcels.lan,*.example.net", public_url="https://track.example.com"
    )
    with TestClient(create_app(settings), headers=account_token(settings)) as api:
        for host in ("parcels.lan", "a.example.net", "track.example.com", "PARCELS.LAN:80"):
            assert api.get("/api/shipments", headers={"Host": host}).status_code == 200, host
        for host in ("localhost", "example.net", "parcels.lan.attacker.example"):
            assert api.get("/api/shipments", headers={"Host": host}).status_code == 400, host


def test_a_star_allows_any_host(database: Database) -> None:
    settings = _settings(database, allowed_hosts="*")
    with TestClient(create_app(settings), headers=account_token(settings)) as api:
        assert api.get("/api/shipments", headers={"Host": "anything.example"}).status_code == 200


def test_the_served_app_refuses_a_foreign_host_over_real_http(
    database: Database, default_hosts: None
) -> None:
    settings = _settings(database)
    auth = account_token(settings)
    with serving(create_app(settings)) as url:
        assert httpx.get(f"{url}/api/shipments", headers=auth).status_code == 200
        foreign = httpx.get(f"{url}/api/shipments", headers={**auth, "Host": "rebind.example"})
        assert foreign.status_code == 400


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://attacker.example", "Content-Type": "application/x-www-form-urlencoded"},
        {"Origin": "null", "Content-Type": "text/plain"},
        {"Sec-Fetch-Site": "cross-site", "Content-Type": "multipart/form-data; boundary=x"},
        {"Sec-Fetch-Site": "same-site"},
        # Same host, other scheme or port: another origin (a dev server on localhost:3000).
        {"Origin": "http://127.0.0.1:3000"},
        {"Origin": "https://127.0.0.1:8080"},
    ],
)
def test_a_cross_site_simple_post_to_refresh_is_refused(
    client: TestClient, database: Database, headers: dict[str, str]
) -> None:
    shipment_id = _shipment_id(database)
    response = client.post(f"/api/shipments/{shipment_id}/refresh", content=b"", headers=headers)
    assert response.status_code == 403, response.text
    assert "Cross-site" in response.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/shipments"), ("PATCH", "/api/shipments/1"), ("DELETE", "/api/shipments/1")],
)
def test_cross_site_writes_to_the_api_change_nothing(
    client: TestClient, database: Database, method: str, path: str
) -> None:
    shipment_id = _shipment_id(database)
    assert shipment_id == 1
    response = client.request(
        method,
        path,
        content=f'{{"tracking_number": "{NUMBER}", "description": "x"}}',
        headers={"Origin": "http://attacker.example", "Content-Type": "text/plain"},
    )
    assert response.status_code == 403
    shipment = client.get("/api/shipments/1").json()
    assert shipment["description"] is None


def test_the_cli_and_scripts_without_origin_still_refresh(
    client: TestClient, database: Database
) -> None:
    shipment_id = _shipment_id(database)
    response = client.post(f"/api/shipments/{shipment_id}/refresh")
    assert response.status_code != 403, response.text


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-origin"},
        {"Origin": "http://127.0.0.1:8080"},
        {"Sec-Fetch-Site": "none"},
    ],
)
def test_the_dashboards_own_requests_pass(
    client: TestClient, database: Database, headers: dict[str, str]
) -> None:
    response = client.post("/api/shipments", json={"tracking_number": NUMBER}, headers=headers)
    assert response.status_code == 201, response.text


def test_the_public_url_origin_counts_as_own_behind_a_tls_proxy(database: Database) -> None:
    settings = _settings(database, public_url="https://track.example.com")
    with TestClient(create_app(settings), headers=account_token(settings)) as api:
        own = {"Origin": "https://track.example.com", "Host": "track.example.com"}
        assert (
            api.post("/api/shipments", json={"tracking_number": NUMBER}, headers=own).status_code
            == 201
        )
    with Browser(create_app(settings), browser_session(settings)) as browser:
        form = browser.submit(
            "/add", data={"tracking_number": NUMBER}, headers=own, follow_redirects=False
        )
        assert form.status_code == 303


@pytest.mark.parametrize(
    "origin", ["https://127.0.0.1:8080", "http://127.0.0.1:3000", "http://127.0.0.1"]
)
def test_a_dashboard_form_from_another_scheme_or_port_is_refused(
    browser: Browser, origin: str
) -> None:
    response = browser.submit(
        "/add", data={"tracking_number": NUMBER}, headers={"Origin": origin}, follow_redirects=False
    )
    assert response.status_code == 403
    assert "Origin header did not match" in response.json()["detail"]
    assert browser.get("/api/shipments").json()["items"] == []


def test_a_dashboard_form_from_its_own_origin_is_accepted(browser: Browser) -> None:
    response = browser.submit(
        "/add",
        data={"tracking_number": NUMBER},
        headers={"Origin": "http://127.0.0.1:8080"},
        follow_redirects=False,
    )
    assert response.status_code == 303


@pytest.mark.usefixtures("default_hosts")
def test_serve_on_every_interface_with_only_loopback_names_warns_how_to_open_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PUBLIC_URL", raising=False)
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'open.db'}",
        "AUTO_UPDATE_ENABLED": "false",
        "PARCELWATCH_DEMO": "false",
        "LOG_FORMAT": "json",
    }
    with serve_process(env, "--host", "0.0.0.0") as server:
        assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
    output = server.output
    assert "until ALLOWED_HOSTS (or PUBLIC_URL) lists it" in output
    serving = next(json.loads(line) for line in output.splitlines() if '"event": "serving"' in line)
    assert serving["frozen_objects"] > 10_000  # the loaded program is out of the GC's way
