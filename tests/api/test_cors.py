"""CORS: closed unless CORS_ORIGINS lists origins; a listed site's page may read and write
through the API from a browser, any other site's may not."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from parcelwatch.api.app import create_app
from parcelwatch.config import ConfigError, load_settings
from tests.conftest import Database, account_token

HOME = "http://192.168.1.5:8123"  # e.g. Home Assistant on the LAN
OTHER = "https://evil.example"
NUMBER = "1Z5R89390357567127"


def _client(database: Database, **overrides: object) -> TestClient:
    settings = load_settings(
        database_url=database.url.replace("postgresql+psycopg://", "postgresql://"),
        auto_update_enabled=False,
        _env_file=None,
        **overrides,
    )
    return TestClient(
        create_app(settings), base_url="http://127.0.0.1:8080", headers=account_token(settings)
    )


@pytest.fixture
def opened(database: Database) -> Iterator[TestClient]:
    with _client(database, cors_origins=f"{HOME}, https://ha.example.com/") as client:
        yield client


def _preflight(client: TestClient, origin: str, method: str = "POST") -> object:
    return client.options(
        "/api/shipments",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def test_without_cors_origins_no_answer_lets_another_site_read_it(database: Database) -> None:
    with _client(database) as client:
        preflight = _preflight(client, HOME)
        listed = client.get("/api/shipments", headers={"Origin": HOME})
    assert "access-control-allow-origin" not in preflight.headers  # type: ignore[attr-defined]
    assert "access-control-allow-origin" not in listed.headers
    assert listed.status_code == 200


def test_a_listed_origin_passes_the_preflight_and_reads_and_writes(opened: TestClient) -> None:
    preflight = _preflight(opened, HOME)
    assert preflight.status_code == 200  # type: ignore[attr-defined]
    assert preflight.headers["access-control-allow-origin"] == HOME  # type: ignore[attr-defined]
    assert "POST" in preflight.headers["access-control-allow-methods"]  # type: ignore[attr-defined]
    created = opened.post(
        "/api/shipments",
        json={"tracking_number": NUMBER},
        headers={"Origin": HOME, "Sec-Fetch-Site": "cross-site"},
    )
    assert created.status_code == 201, created.text
    assert created.headers["access-control-allow-origin"] == HOME
    listed = opened.get("/api/shipments", headers={"Origin": "https://ha.example.com"})
    assert listed.headers["access-control-allow-origin"] == "https://ha.example.com"


def test_an_unlisted_origin_is_refused_and_changes_nothing(opened: TestClient) -> None:
    preflight = _preflight(opened, OTHER)
    assert preflight.status_code == 400  # type: ignore[attr-defined]
    assert "access-control-allow-origin" not in preflight.headers  # type: ignore[attr-defined]
    write = opened.post(
        "/api/shipments",
        json={"tracking_number": NUMBER},
        headers={"Origin": OTHER, "Sec-Fetch-Site": "cross-site"},
    )
    assert write.status_code == 403
    assert opened.get("/api/shipments").json()["items"] == []
    read = opened.get("/api/shipments", headers={"Origin": OTHER})
    assert "access-control-allow-origin" not in read.headers


@pytest.mark.parametrize("value", ["ha.example.com", "https://ha.example.com/path", "ftp://x"])
def test_a_cors_origin_that_is_not_an_origin_stops_start_up(value: str) -> None:
    with pytest.raises(ConfigError, match="CORS_ORIGINS"):
        load_settings(cors_origins=value, _env_file=None)
