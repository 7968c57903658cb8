"""Sync routes of the shipments API cost one hop to a worker thread: the route's own."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from parcelwatch.api.threads import OneHopRoute, in_worker_thread
from tests.conftest import Database


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every function run on a worker thread from now on."""
    names: list[str] = []
    real = anyio.to_thread.run_sync

    async def counted(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        inner = function.func if isinstance(function, functools.partial) else function
        names.append(getattr(inner, "__name__", repr(inner)))
        return await real(function, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    return names


def test_reading_and_changing_a_shipment_each_take_one_worker_thread_hop(
    api: TestClient, hops: list[str], database: Database
) -> None:
    created = api.post("/api/shipments", json={"tracking_number": "1Z5R89390357567127"})
    assert created.status_code == 201
    shipment_id = created.json()["id"]
    api.get("/api/shipments")  # the credential is looked up (a hop of its own) once, then kept
    hops.clear()

    assert api.get(f"/api/shipments/{shipment_id}").status_code == 200
    assert api.get("/api/shipments", params={"limit": 5}).status_code == 200
    edited = api.patch(f"/api/shipments/{shipment_id}", json={"description": "boots"})
    assert edited.json()["description"] == "boots"
    assert api.get(f"/api/shipments/{shipment_id}/events").status_code == 200

    # The transaction is committed in the route's own thread, on both engines: no hop of its
    # own for PostgreSQL's commit. A read by id and a plain list page on SQLite take no hop
    # at all (the event loop reads them over a connection of its own); on PostgreSQL, one.
    short = ["_read_in_thread"] if database.dialect == "postgresql" else []
    assert hops == [*short, *short, "update_shipment", "list_events"]


@pytest.mark.parametrize(
    "unbounded",
    [{"q": "boots"}, {"carrier": "ups"}, {"active": "true"}],
    ids=["search", "carrier", "active"],
)
def test_a_list_page_that_may_scan_many_rows_is_read_on_a_worker_thread(
    api: TestClient, hops: list[str], unbounded: dict[str, str]
) -> None:
    """A page along an index (by id, by status) is short enough for the event loop; one that
    filters row by row could hold up every other request of the process, so it never is."""
    created = api.post("/api/shipments", json={"tracking_number": "1Z5R89390357567127"})
    api.patch(f"/api/shipments/{created.json()['id']}", json={"description": "boots"})
    hops.clear()
    page = api.get("/api/shipments", params={**unbounded, "limit": 5})
    assert page.status_code == 200
    assert [item["tracking_number"] for item in page.json()["items"]] == ["1Z5R89390357567127"]
    assert hops == ["_read_in_thread"]


def test_a_write_commits_in_the_routes_thread_before_the_answer_goes_back(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's writer lock (every process's writers queue for it) is held while the route
    works, not also while its answer waits for the event loop."""
    committed_in: list[str] = []
    real_commit = Session.commit

    def commit(session: Session) -> None:
        committed_in.append(threading.current_thread().name)
        real_commit(session)

    monkeypatch.setattr(Session, "commit", commit)
    created = api.post("/api/shipments", json={"tracking_number": "1Z5R89390357567127"})
    assert created.status_code == 201
    assert api.get(f"/api/shipments/{created.json()['id']}").json()["tracking_number"]
    assert committed_in, "nothing committed"
    assert all(name.startswith("AnyIO worker thread") for name in committed_in), committed_in


def test_a_missing_shipment_is_still_a_404_from_at_most_one_hop(
    api: TestClient, hops: list[str], database: Database
) -> None:
    api.get("/api/shipments")
    hops.clear()
    response = api.get("/api/shipments/999999")
    assert response.status_code == 404
    assert response.json() == {"detail": "Shipment 999999 does not exist."}
    assert hops == (["_read_in_thread"] if database.dialect == "postgresql" else [])


def test_a_read_by_id_on_the_event_loop_sees_every_commit_before_it(api: TestClient) -> None:
    """The loop's own connection starts a transaction for each read: never an old snapshot."""
    created = api.post("/api/shipments", json={"tracking_number": "1Z5R89390357567127"})
    path = f"/api/shipments/{created.json()['id']}"
    for n in range(5):
        assert api.patch(path, json={"description": f"edit {n}"}).status_code == 200
        assert api.get(path).json()["description"] == f"edit {n}"
    assert api.delete(path).status_code == 204
    assert api.get(path).status_code == 404


def test_a_wrapped_endpoint_keeps_its_name_signature_and_answer() -> None:
    def endpoint(number: int, *, word: str = "x") -> str:
        """Says it."""
        return f"{word}{number}"

    wrapped = in_worker_thread(endpoint)
    assert wrapped.__name__ == "endpoint"
    assert wrapped.__doc__ == "Says it."
    assert wrapped.__wrapped__ is endpoint  # type: ignore[attr-defined]
    assert anyio.run(functools.partial(wrapped, 7, word="y")) == "y7"


def test_a_coroutine_endpoint_is_left_as_it_is() -> None:
    async def endpoint() -> str:
        return "on the loop"

    assert OneHopRoute("/here", endpoint).endpoint is endpoint
