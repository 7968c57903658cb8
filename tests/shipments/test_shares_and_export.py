"""Share links (a public read-only page of one shipment) and the export of a person's list, on
SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from parcelwatch.accounts.roles import Role, Scope
from parcelwatch.api.app import create_app
from parcelwatch.config import Settings
from parcelwatch.domain import utcnow
from parcelwatch.models import ShareLink
from tests.conftest import Database, Invoke, account_token

UPS = "1Z5R89390357567127"
FEDEX = "771000000002"


@pytest.fixture
def people(settings: Settings) -> Iterator[dict[str, TestClient]]:
    tokens = {
        "owner": account_token(settings, scope=Scope.WRITE),
        "ann": account_token(settings, name="ann", role=Role.MEMBER, scope=Scope.WRITE),
        "bob": account_token(settings, name="bob", role=Role.MEMBER, scope=Scope.WRITE),
    }
    with TestClient(create_app(settings)) as base:
        clients = {name: TestClient(base.app, headers=auth) for name, auth in tokens.items()}
        clients["public"] = TestClient(base.app)
        yield clients


def _ann_shipment(ann: TestClient) -> int:
    shipment_id: int = ann.post(
        "/api/shipments", json={"tracking_number": UPS, "description": "Secret gift"}
    ).json()["id"]
    ann.patch(f"/api/shipments/{shipment_id}", json={"labels": ["xmas"], "notes": "hide it"})
    return shipment_id


def test_a_share_link_shows_the_parcel_and_nothing_of_the_person(
    people: dict[str, TestClient],
) -> None:
    ann, public = people["ann"], people["public"]
    shipment_id = _ann_shipment(ann)
    made = ann.post(f"/api/shipments/{shipment_id}/shares", json={"expires": "7d"})
    assert made.status_code == 201
    url = made.json()["url"]
    assert url.startswith("http://testserver/t/")
    assert made.json()["expires_at"] is not None
    page = public.get(url.removeprefix("http://testserver"))
    assert page.status_code == 200
    assert UPS in page.text
    for private in ("Secret gift", "xmas", "hide it", ">ann<", "Sign out", "/api/"):
        assert private not in page.text, private
    assert '<meta name="robots" content="noindex, nofollow">' in page.text
    assert page.headers["x-robots-tag"] == "noindex, nofollow"
    assert page.headers["referrer-policy"] == "no-referrer"
    listed = ann.get(f"/api/shipments/{shipment_id}/shares").json()
    assert [(link["id"], link["url"]) for link in listed] == [(made.json()["id"], None)]


def test_a_revoked_expired_or_orphaned_link_is_a_404_page(
    people: dict[str, TestClient], database: Database
) -> None:
    ann, public = people["ann"], people["public"]
    shipment_id = _ann_shipment(ann)
    paths = []
    for _ in range(3):
        url = ann.post(f"/api/shipments/{shipment_id}/shares", json={}).json()["url"]
        paths.append(url.removeprefix("http://testserver"))
    links = ann.get(f"/api/shipments/{shipment_id}/shares").json()
    assert ann.delete(f"/api/shipments/{shipment_id}/shares/{links[0]['id']}").status_code == 204
    with database.sessions.begin() as session:
        session.execute(
            update(ShareLink)
            .where(ShareLink.id == links[1]["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    for path in paths[:2]:
        gone = public.get(path, headers={"Accept": "text/html"})
        assert gone.status_code == 404
        assert "This share link does not work" in gone.text
    assert public.get(paths[2]).status_code == 200
    ann.delete(f"/api/shipments/{shipment_id}")  # the last tracker: the shipment goes
    assert public.get(paths[2]).status_code == 404
    assert public.get("/t/not-a-token").status_code == 404


def test_only_the_shipments_own_trackers_make_links(people: dict[str, TestClient]) -> None:
    ann, bob, owner = people["ann"], people["bob"], people["owner"]
    shipment_id = _ann_shipment(ann)
    assert bob.post(f"/api/shipments/{shipment_id}/shares", json={}).status_code == 404
    assert bob.get(f"/api/shipments/{shipment_id}/shares").status_code == 404
    not_tracked = owner.post(f"/api/shipments/{shipment_id}/shares", json={})
    assert not_tracked.status_code == 409
    assert "your own list" in not_tracked.json()["detail"]
    bad = ann.post(f"/api/shipments/{shipment_id}/shares", json={"expires": "soon"})
    assert bad.status_code == 422
    assert bad.json()["detail"].startswith("expires:")
    assert ann.get(f"/api/shipments/{shipment_id}/shares").json() == []


def test_the_export_holds_your_list_with_your_words_and_only_yours(
    people: dict[str, TestClient],
) -> None:
    ann, bob = people["ann"], people["bob"]
    shipment_id = _ann_shipment(ann)
    archived = ann.post("/api/shipments", json={"tracking_number": FEDEX}).json()["id"]
    ann.patch(f"/api/shipments/{archived}", json={"archived": True, "description": "=HYPERLINK()"})
    bob.post("/api/shipments", json={"tracking_number": UPS, "description": "Bob's"})
    as_json = ann.get("/api/trackers/export", params={"format": "json"})
    assert as_json.headers["content-disposition"] == 'attachment; filename="parcelwatch-ann.json"'
    trackers = json.loads(as_json.text)["trackers"]
    assert [
        (t["shipment_id"], t["description"], t["labels"], t["notes"], t["archived"])
        for t in trackers
    ] == [
        (shipment_id, "Secret gift", ["xmas"], "hide it", False),
        (archived, "=HYPERLINK()", [], None, True),
    ]
    as_csv = ann.get("/api/trackers/export")
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [row["tracking_number"] for row in rows] == [UPS, FEDEX]
    assert rows[1]["description"] == "'=HYPERLINK()"  # never a formula in a spreadsheet
    assert rows[0]["labels"] == "xmas"
    assert "Bob's" not in as_csv.text
    assert ann.get("/api/trackers/export", params={"format": "xml"}).status_code == 422


def test_the_cli_exports_a_persons_list(people: dict[str, TestClient], run: Invoke) -> None:
    _ann_shipment(people["ann"])
    result = run("shipments", "export", "--user", "ann", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["trackers"][0]["description"] == "Secret gift"
    owners = run("shipments", "export")
    assert owners.exit_code == 0
    assert owners.stdout.splitlines()[0].startswith("tracking_number,carrier")
    assert run("shipments", "export", "--format", "xml").exit_code == 2


def test_the_cli_lists_by_one_of_the_owners_labels(
    people: dict[str, TestClient], run: Invoke
) -> None:
    owner = people["owner"]
    tagged = owner.post("/api/shipments", json={"tracking_number": UPS}).json()["id"]
    owner.post("/api/shipments", json={"tracking_number": FEDEX})
    owner.patch(f"/api/shipments/{tagged}", json={"labels": ["gifts"]})
    listed = run("shipments", "list", "--label", "gifts", "--json")
    assert listed.exit_code == 0, listed.output
    assert [item["id"] for item in json.loads(listed.stdout)["items"]] == [tagged]
    unknown = run("shipments", "list", "--label", "nope")
    assert unknown.exit_code == 1
    assert "you have no label 'nope'" in unknown.output
