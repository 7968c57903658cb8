"""`GET /api/shipments` and `GET /api/shipments/{id}` read plain rows and write their JSON in
one pass (`shipments.views`): every answer is, byte for byte, what the `ShipmentOut` models
built from the ORM give, for every kind of viewer and row. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr, TypeAdapter
from sqlalchemy import update

from parcelwatch.accounts.roles import Role, Scope
from parcelwatch.api.app import create_app
from parcelwatch.config import Settings
from parcelwatch.domain import ShipmentStatus, utcnow
from parcelwatch.models import Shipment, User
from parcelwatch.shipments import service
from parcelwatch.shipments.schemas import ShipmentOut, ShipmentPage
from parcelwatch.shipments.trackers import EVERYONE, Viewer, as_seen_by, find_seen
from tests.conftest import Database, account_token

NUMBERS = ["1Z5R89390357567127", "771000000002", "9400111899223197428490", "1234567890"]
ADMIN_KEY = "an-admin-key-of-at-least-32-characters!"


@pytest.fixture
def people(settings: Settings, database: Database) -> Iterator[dict[str, TestClient]]:
    """The owner and two members with trackers of their own (labels, notes, archive,
    notifications), shipments at several statuses, one of a carrier the catalog does not
    know, one tracked by nobody; and the ADMIN_API_KEY."""
    settings = settings.model_copy(update={"admin_api_key": SecretStr(ADMIN_KEY)})
    tokens = {
        "owner": account_token(settings, scope=Scope.WRITE),
        "ann": account_token(settings, name="ann", role=Role.MEMBER, scope=Scope.WRITE),
        "bob": account_token(settings, name="bob", role=Role.MEMBER, scope=Scope.WRITE),
        "admin-key": {"Authorization": f"Bearer {ADMIN_KEY}"},
    }
    with TestClient(create_app(settings)) as base:
        clients = {name: TestClient(base.app, headers=auth) for name, auth in tokens.items()}
        ann, bob, owner = clients["ann"], clients["bob"], clients["owner"]
        carriers = ["ups", "fedex", "usps"]
        ids = []
        for i, (number, carrier) in enumerate(zip(NUMBERS, carriers, strict=False)):
            body = {"tracking_number": number, "carrier": carrier, "description": f"A{i}"}
            created = ann.post("/api/shipments", json=body)
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
        bob.post(
            "/api/shipments",
            json={"tracking_number": NUMBERS[0], "carrier": "ups", "description": "Gift"},
        )
        owner.post("/api/shipments", json={"tracking_number": NUMBERS[3], "carrier": "dhl"})
        patches = [
            {
                "labels": ["work", "amazon", "Zoo", "B-day"],
                "notes": "gate code 1234",
                "notify": "muted",
            },
            {"archived": True, "labels": ["Zeta"]},
            {"notify": "delivered_only", "description": None},
        ]
        for shipment_id, body in zip(ids, patches, strict=True):
            assert ann.patch(f"/api/shipments/{shipment_id}", json=body).status_code == 200
        now = utcnow()
        with database.sessions.begin() as session:
            session.execute(
                update(Shipment)
                .where(Shipment.id == ids[0])
                .values(
                    status=ShipmentStatus.DELIVERED,
                    delivered_at=now,
                    signed_by="J. DOE",
                    estimated_delivery=now - timedelta(days=1),
                    last_auto_refresh=now,
                    auto_refresh_count=3,
                    status_detail="Left at front door",
                )
            )
            session.execute(
                update(Shipment)
                .where(Shipment.id == ids[1])
                .values(carrier="a_carrier_nobody_knows", last_auto_refresh_error="timeout")
            )
            session.add(
                Shipment(
                    carrier="usps",
                    tracking_number="9400100000000000000000",
                    description="nobody's",
                    status=ShipmentStatus.IN_TRANSIT,
                )
            )
        yield clients


def _viewer(database: Database, who: str) -> Viewer:
    if who == "admin-key":
        return EVERYONE
    with database.sessions() as session:
        user = session.query(User).filter_by(name=who).one()
        return Viewer.of(user.id, user.role)


def _page_from_models(database: Database, viewer: Viewer, **filters: object) -> bytes:
    with database.sessions() as session:
        page = service.list_shipments(session, viewer=viewer, **filters)  # type: ignore[arg-type]
        items = [ShipmentOut.of(seen) for seen in as_seen_by(session, viewer, page.items)]
        answer = ShipmentPage(items=items, next_cursor=page.next_cursor)
        return TypeAdapter(ShipmentPage).dump_json(answer, by_alias=True)


FILTERS: list[tuple[dict[str, str], dict[str, object]]] = [
    ({}, {}),
    ({"include_archived": "true"}, {"archived": None}),
    ({"archived": "true"}, {"archived": True}),
    (
        {"status": "delivered", "include_archived": "true"},
        {"status": "delivered", "archived": None},
    ),
    ({"active": "true"}, {"active": True}),
    ({"carrier": "ups"}, {"carrier": "ups"}),
    ({"q": "gate"}, {"search": "gate"}),
    ({"limit": "2", "include_archived": "true"}, {"limit": 2, "archived": None}),
]


@pytest.mark.parametrize("who", ["owner", "ann", "bob", "admin-key"])
def test_list_pages_are_the_bytes_the_models_give(
    people: dict[str, TestClient], database: Database, who: str
) -> None:
    client, viewer = people[who], _viewer(database, who)
    for params, filters in FILTERS:
        answer = client.get("/api/shipments", params=params)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/json"
        assert answer.content == _page_from_models(database, viewer, **filters), params
        cursor = answer.json()["next_cursor"]
        while cursor:  # and every following page
            answer = client.get("/api/shipments", params={**params, "cursor": cursor})
            expected = _page_from_models(database, viewer, **filters, cursor=cursor)
            assert answer.content == expected
            cursor = answer.json()["next_cursor"]
    if who != "admin-key":
        labelled = client.get("/api/shipments", params={"label": "amazon"})
        if who == "ann":
            assert labelled.content == _page_from_models(database, viewer, label="amazon")
            assert [item["labels"] for item in labelled.json()["items"]] == [
                ["amazon", "B-day", "work", "Zoo"]
            ]
        else:
            assert labelled.status_code == 422


@pytest.mark.parametrize("who", ["owner", "ann", "bob", "admin-key"])
def test_a_shipment_by_id_is_the_bytes_the_model_gives(
    people: dict[str, TestClient], database: Database, who: str
) -> None:
    client, viewer = people[who], _viewer(database, who)
    seen = 0
    for shipment_id in range(1, 8):
        answer = client.get(f"/api/shipments/{shipment_id}")
        with database.sessions() as session:
            found = find_seen(session, viewer, shipment_id)
            if found is None:
                assert answer.status_code == 404, answer.text
                continue
            expected = TypeAdapter(ShipmentOut).dump_json(ShipmentOut.of(found), by_alias=True)
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json"
        assert answer.content == expected
        seen += 1
    assert seen == {"owner": 5, "ann": 3, "bob": 1, "admin-key": 5}[who]
