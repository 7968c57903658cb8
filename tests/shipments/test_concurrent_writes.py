"""Concurrent writers against the real server (uvicorn, updater running): every write waits
its turn, none answers 500, and each number ends up in exactly one row, on SQLite and
PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import func, select

from parcelwatch.api.app import create_app
from parcelwatch.config import load_settings
from parcelwatch.models import Shipment
from tests.conftest import Database, serving

WRITERS = 50
SAME_NUMBER_WRITERS = 200  # on PostgreSQL these once queued on one row lock and timed out


@pytest.fixture
def server(database: Database) -> Iterator[str]:
    """The app on a free local port with its lifespan (the updater runs, no carrier set)."""
    settings = load_settings(
        database_url=database.url,
        auto_update_enabled=True,
        update_interval="1s",
        _env_file=None,
    )
    with serving(create_app(settings)) as url:
        yield url


def _in_parallel(url: str, requests: list[tuple[str, str, dict[str, object] | None]]) -> list[int]:
    """Send every request at once (one thread and connection each); their status codes."""
    start = threading.Barrier(len(requests))

    def send(request: tuple[str, str, dict[str, object] | None]) -> int:
        method, path, body = request
        with httpx.Client(base_url=url, timeout=60) as client:
            start.wait()
            return client.request(method, path, json=body).status_code

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(send, requests))


def _rows(database: Database) -> int:
    with database.sessions() as session:
        return session.scalar(select(func.count()).select_from(Shipment)) or 0


def test_fifty_parallel_creates_of_different_numbers_all_succeed(
    server: str, database: Database
) -> None:
    body = [
        ("POST", "/api/shipments", {"tracking_number": f"CONC{i:06d}", "carrier": "dhl"})
        for i in range(WRITERS)
    ]
    codes = _in_parallel(server, body)
    assert codes == [201] * WRITERS
    assert _rows(database) == WRITERS


def test_two_hundred_parallel_creates_of_one_number_make_one_row(
    server: str, database: Database
) -> None:
    one = ("POST", "/api/shipments", {"tracking_number": "CONC000001", "carrier": "dhl"})
    codes = _in_parallel(server, [one] * SAME_NUMBER_WRITERS)
    assert sorted(codes) == [200] * (SAME_NUMBER_WRITERS - 1) + [201]
    assert _rows(database) == 1


def test_parallel_bulk_patch_and_delete_never_answer_500(server: str, database: Database) -> None:
    with httpx.Client(base_url=server, timeout=60) as client:
        ids = [
            client.post(
                "/api/shipments", json={"tracking_number": f"MIX{i:06d}", "carrier": "dhl"}
            ).json()["id"]
            for i in range(10)
        ]
    requests: list[tuple[str, str, dict[str, object] | None]] = []
    for i, shipment_id in enumerate(ids):
        requests.append(("PATCH", f"/api/shipments/{shipment_id}", {"description": f"box {i}"}))
        requests.append(("DELETE", f"/api/shipments/{shipment_id}", None))
        requests.append(
            (
                "POST",
                "/api/shipments/bulk",
                {"items": [{"tracking_number": f"BULK{i:06d}", "carrier": "dhl"}]},
            )
        )
    codes = _in_parallel(server, requests)
    assert 500 not in codes
    # A PATCH that lost the race to its DELETE is a 404; everything else succeeded.
    assert set(codes) <= {200, 204, 404}
    with database.sessions() as session:
        numbers = session.scalars(select(Shipment.tracking_number)).all()
    assert sorted(numbers) == [f"BULK{i:06d}" for i in range(10)]
