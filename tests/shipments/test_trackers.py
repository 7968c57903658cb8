"""Each person's own list: two people tracking one number share one shipment but keep their own
description, labels, notes and archive; a member never sees another's; the shipment goes with
its last tracker. On SQLite and PostgreSQL, through the REST API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from parcelwatch.accounts.roles import Role, Scope
from parcelwatch.api.app import create_app
from parcelwatch.config import Settings
from parcelwatch.models import Shipment, Tracker, TrackingEvent
from parcelwatch.shipments.trackers import MAX_NOTES
from tests.conftest import Database, account_token

UPS = "1Z5R89390357567127"
FEDEX = "771000000002"


@pytest.fixture
def people(settings: Settings) -> Iterator[dict[str, TestClient]]:
    """The owner and two members, each with a write token."""
    app = create_app(settings)
    tokens = {
        "owner": account_token(settings, scope=Scope.WRITE),
        "ann": account_token(settings, name="ann", role=Role.MEMBER, scope=Scope.WRITE),
        "bob": account_token(settings, name="bob", role=Role.MEMBER, scope=Scope.WRITE),
    }
    with TestClient(app) as base:
        clients = {name: TestClient(base.app, headers=auth) for name, auth in tokens.items()}
        yield clients


def _ids(client: TestClient, **params: str) -> list[int]:
    answer = client.get("/api/shipments", params=params)
    assert answer.status_code == 200, answer.text
    return [item["id"] for item in answer.json()["items"]]


def test_two_people_tracking_one_number_share_the_shipment_not_their_words(
    people: dict[str, TestClient], database: Database
) -> None:
    ann, bob = people["ann"], people["bob"]
    mine = ann.post("/api/shipments", json={"tracking_number": UPS, "description": "Shoes"})
    theirs = bob.post("/api/shipments", json={"tracking_number": UPS, "description": "Gift"})
    again = bob.post("/api/shipments", json={"tracking_number": UPS, "description": "Other"})
    assert (mine.status_code, theirs.status_code, again.status_code) == (201, 201, 200)
    assert mine.json()["id"] == theirs.json()["id"]  # one shipment, polled once
    assert mine.json()["description"] == "Shoes"
    assert theirs.json()["description"] == "Gift"
    assert again.json()["description"] == "Gift"  # adding again changes nothing
    with database.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Shipment)) == 1
        assert session.scalar(select(func.count()).select_from(Tracker)) == 2


def test_a_member_never_sees_anothers_shipment(people: dict[str, TestClient]) -> None:
    ann, bob, owner = people["ann"], people["bob"], people["owner"]
    shipment_id = ann.post("/api/shipments", json={"tracking_number": UPS}).json()["id"]
    assert _ids(bob) == []
    assert _ids(bob, q=UPS[:8]) == []
    for method, path, body in [
        ("GET", f"/api/shipments/{shipment_id}", None),
        ("GET", f"/api/shipments/{shipment_id}/events", None),
        ("PATCH", f"/api/shipments/{shipment_id}", {"description": "mine now"}),
        ("POST", f"/api/shipments/{shipment_id}/refresh", None),
        ("DELETE", f"/api/shipments/{shipment_id}", None),
    ]:
        answer = bob.request(method, path, json=body)
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["detail"] == f"Shipment {shipment_id} does not exist."
    assert ann.get(f"/api/shipments/{shipment_id}").json()["description"] is None
    assert shipment_id in _ids(owner)  # the owner sees every shipment


def test_removing_your_tracker_keeps_the_others_and_the_last_takes_the_shipment(
    people: dict[str, TestClient], database: Database
) -> None:
    ann, bob = people["ann"], people["bob"]
    shipment_id = ann.post("/api/shipments", json={"tracking_number": UPS}).json()["id"]
    bob.post("/api/shipments", json={"tracking_number": UPS})
    with database.sessions.begin() as session:
        session.add(
            TrackingEvent(
                shipment_id=shipment_id,
                occurred_at=session.get(Shipment, shipment_id).created_at,  # type: ignore[union-attr]
                status="in_transit",
                description="Departed",
                dedupe_key="k1",
            )
        )
    assert ann.delete(f"/api/shipments/{shipment_id}").status_code == 204
    assert ann.get(f"/api/shipments/{shipment_id}").status_code == 404
    assert bob.get(f"/api/shipments/{shipment_id}/events").json()[0]["description"] == "Departed"
    assert bob.delete(f"/api/shipments/{shipment_id}").status_code == 204
    with database.sessions() as session:
        assert session.get(Shipment, shipment_id) is None
        assert session.scalar(select(func.count()).select_from(TrackingEvent)) == 0


def test_labels_are_each_persons_own_and_filter_the_list(people: dict[str, TestClient]) -> None:
    ann, bob = people["ann"], people["bob"]
    shoes = ann.post("/api/shipments", json={"tracking_number": UPS}).json()["id"]
    ann.post("/api/shipments", json={"tracking_number": FEDEX})
    bob.post("/api/shipments", json={"tracking_number": UPS})
    labelled = ann.patch(f"/api/shipments/{shoes}", json={"labels": ["gifts", " Gifts ", "work"]})
    assert labelled.status_code == 200
    assert labelled.json()["labels"] == ["gifts", "work"]
    assert _ids(ann, label="GIFTS") == [shoes]
    assert bob.get(f"/api/shipments/{shoes}").json()["labels"] == []
    unknown = bob.get("/api/shipments", params={"label": "gifts"})
    assert unknown.status_code == 422
    assert "you have no label 'gifts'" in unknown.json()["detail"]
    bad = ann.patch(f"/api/shipments/{shoes}", json={"labels": ["ok", "<script>"], "notes": "x"})
    assert bad.status_code == 422
    assert "'<script>' is not a label" in bad.json()["detail"]
    after = ann.get(f"/api/shipments/{shoes}").json()
    assert (after["labels"], after["notes"]) == (["gifts", "work"], None)  # nothing changed


def test_notes_are_private_and_limited_in_size(people: dict[str, TestClient]) -> None:
    ann, bob, owner = people["ann"], people["bob"], people["owner"]
    shipment_id = ann.post("/api/shipments", json={"tracking_number": UPS}).json()["id"]
    bob.post("/api/shipments", json={"tracking_number": UPS})
    noted = ann.patch(f"/api/shipments/{shipment_id}", json={"notes": "Leave at the back door"})
    assert noted.json()["notes"] == "Leave at the back door"
    assert bob.get(f"/api/shipments/{shipment_id}").json()["notes"] is None
    assert owner.get(f"/api/shipments/{shipment_id}").json()["notes"] is None
    too_long = ann.patch(f"/api/shipments/{shipment_id}", json={"notes": "x" * (MAX_NOTES + 1)})
    assert too_long.status_code == 422
    assert f"at most {MAX_NOTES} characters" in too_long.json()["detail"]
    assert ann.get(f"/api/shipments/{shipment_id}").json()["notes"] == "Leave at the back door"


def test_archived_shipments_leave_the_list_and_come_back(people: dict[str, TestClient]) -> None:
    ann = people["ann"]
    shipment_id = ann.post("/api/shipments", json={"tracking_number": UPS}).json()["id"]
    archived = ann.patch(f"/api/shipments/{shipment_id}", json={"archived": True})
    assert archived.json()["archived"] is True
    assert _ids(ann) == []
    assert _ids(ann, archived="true") == [shipment_id]
    assert _ids(ann, include_archived="true") == [shipment_id]
    assert _ids(ann, q=UPS, include_archived="true") == [shipment_id]  # searchable
    ann.patch(f"/api/shipments/{shipment_id}", json={"archived": False})
    assert _ids(ann) == [shipment_id]


def test_a_member_cannot_move_a_shared_shipment_to_another_carrier(
    people: dict[str, TestClient],
) -> None:
    ann, bob = people["ann"], people["bob"]
    shipment_id = ann.post("/api/shipments", json={"tracking_number": FEDEX}).json()["id"]
    bob.post("/api/shipments", json={"tracking_number": FEDEX})
    moved = ann.patch(f"/api/shipments/{shipment_id}", json={"carrier": "usps"})
    assert moved.status_code == 409
    assert "Other people track this shipment too" in moved.json()["detail"]
    assert bob.get(f"/api/shipments/{shipment_id}").json()["carrier"] == "fedex"


def test_bulk_answers_each_item_in_the_askers_own_words(people: dict[str, TestClient]) -> None:
    ann, bob = people["ann"], people["bob"]
    ann.post("/api/shipments", json={"tracking_number": UPS, "description": "Ann's shoes"})
    answer = bob.post("/api/shipments/bulk", json={"items": [{"tracking_number": UPS}]}).json()
    assert answer["created"] == 1  # new in Bob's list: nobody learns Ann tracks it
    assert answer["items"][0]["shipment"]["description"] is None
