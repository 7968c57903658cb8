"""Isolation, walked over the whole API: every operation of the OpenAPI document, sent by a
second member with a write token against the first member's shipment, notification channel
and delivery, answers no 2xx that shows or changes them; the same for the dashboard's pages
and forms."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from parcelwatch.accounts.roles import Role, Scope
from parcelwatch.api.app import create_app
from parcelwatch.config import Settings
from tests.conftest import Browser, Database, account_token, browser_session

UPS = "1Z5R89390357567127"
BODIES: dict[str, dict[str, Any]] = {
    "PATCH": {"description": "taken", "labels": ["mine"], "notes": "mine", "archived": True},
    "POST": {},
}
# Bodies the notification routes accept, so that only ownership can refuse them.
NOTIFY_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PATCH", "/api/notifications/channels/{channel_id}"): {"name": "taken", "enabled": False},
    ("PUT", "/api/notifications/preferences"): {"timezone": "Europe/Berlin"},
    ("POST", "/api/notifications/channels"): {"kind": "email", "target": "bob@example.org"},
}
ANN_ADDRESS = "ann-private-path@example.org"  # email: a test to it never leaves this machine
OWNED = ("{shipment_id}", "{channel_id}", "{delivery_id}")


def _operations(schema: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, methods in schema["paths"].items()
        for method in methods
        if method != "options"
    ]


@pytest.fixture
def ann_and_bob(settings: Settings) -> tuple[dict[str, str], dict[str, str]]:
    account_token(settings)  # the owner comes first
    ann = account_token(settings, name="ann", role=Role.MEMBER, scope=Scope.WRITE)
    bob = account_token(settings, name="bob", role=Role.MEMBER, scope=Scope.WRITE)
    return ann, bob


def test_no_operation_shows_or_changes_another_members_shipment(
    settings: Settings, ann_and_bob: tuple[dict[str, str], dict[str, str]]
) -> None:
    ann, bob = ann_and_bob
    with TestClient(create_app(settings)) as client:
        created = client.post(
            "/api/shipments",
            json={"tracking_number": UPS, "description": "Shoes for Ann"},
            headers=ann,
        ).json()
        client.patch(
            f"/api/shipments/{created['id']}",
            json={"labels": ["secret-label"], "notes": "secret note"},
            headers=ann,
        )
        share = client.post(f"/api/shipments/{created['id']}/shares", json={}, headers=ann).json()
        channel = client.post(
            "/api/notifications/channels",
            json={"kind": "email", "target": ANN_ADDRESS, "name": "Kitchen tablet of Ann"},
            headers=ann,
        ).json()
        delivery = client.post(
            f"/api/notifications/channels/{channel['id']}/test", headers=ann
        ).json()
        walked = 0
        for method, path in _operations(client.get("/openapi.json").json()):
            if path.startswith("/api/admin") or path == "/api/webhooks/shipengine":
                continue  # members get 403 there, and the push is signed: tested elsewhere
            url = path.replace("{shipment_id}", str(created["id"]))
            url = url.replace("{share_id}", str(share["id"]))
            url = url.replace("{channel_id}", str(channel["id"]))
            url = url.replace("{delivery_id}", str(delivery["id"]))
            body = BODIES.get(method) if "{shipment_id}" in path else None
            body = NOTIFY_BODIES.get((method, path), body)
            if path == "/api/detect":
                body = {"text": UPS}
            answer = client.request(method, url, json=body, headers=bob)
            walked += 1
            if any(owned in path for owned in OWNED):
                assert answer.status_code == 404, (method, path, answer.status_code)
            for secret in (
                "Shoes for Ann",
                "secret-label",
                "secret note",
                share["url"],
                "Kitchen tablet of Ann",
                "ann-private-path",
                delivery["message_id"],
            ):
                assert secret not in answer.text, (method, path)
            if method == "GET" and path == "/api/shipments":
                assert answer.json()["items"] == []
        mine = client.get(f"/api/shipments/{created['id']}", headers=ann).json()
        still_shared = client.get(share["url"].removeprefix("http://testserver"))
        ann_channel = client.get(f"/api/notifications/channels/{channel['id']}", headers=ann)
        ann_log = client.get("/api/notifications/deliveries", headers=ann).json()["items"]
    assert walked >= 25
    assert ann_channel.json()["name"] == "Kitchen tablet of Ann"
    assert ann_channel.json()["enabled"] is True  # Bob could not switch it off
    assert [item["id"] for item in ann_log] == [delivery["id"]]  # nor add to her log
    assert still_shared.status_code == 200  # Bob could not revoke Ann's link
    assert (mine["description"], mine["labels"], mine["notes"], mine["archived"]) == (
        "Shoes for Ann",
        ["secret-label"],
        "secret note",
        False,
    )


def test_no_dashboard_page_or_form_shows_or_changes_another_members_shipment(
    settings: Settings, database: Database
) -> None:
    account_token(settings)  # the owner comes first
    ann = browser_session(settings, name="ann", role=Role.MEMBER)
    bob = browser_session(settings, name="bob", role=Role.MEMBER)
    app = create_app(settings)
    with Browser(app, ann) as ann_browser, Browser(app, bob) as bob_browser:
        added = ann_browser.submit(
            "/add", data={"tracking_number": UPS, "description": "Shoes for Ann"}
        )
        assert added.status_code == 200
        shipment_id = int(re.search(r"/shipments/(\d+)", str(added.url)).group(1))  # type: ignore[union-attr]
        ann_browser.submit(
            "/notifications/channels",
            data={"kind": "email", "target": ANN_ADDRESS, "name": "Kitchen tablet of Ann"},
        )
        channel_id = int(
            re.search(r"/notifications/channels/(\d+)", ann_browser.get("/notifications").text)[1]  # type: ignore[index]
        )
        tested = ann_browser.submit(f"/notifications/channels/{channel_id}/test")
        delivery_id = int(re.search(r"/notifications/deliveries/(\d+)/replay", tested.text)[1])  # type: ignore[index]
        mine = bob_browser.get("/notifications")
        assert "Kitchen tablet of Ann" not in mine.text
        assert "ann-private-path" not in mine.text
        assert bob_browser.get(f"/notifications/channels/{channel_id}").status_code == 404
        for path, data in [
            (f"/notifications/channels/{channel_id}", {"name": "taken"}),
            (f"/notifications/channels/{channel_id}/test", {}),
            (f"/notifications/channels/{channel_id}/rotate-secret", {}),
            (f"/notifications/channels/{channel_id}/delete", {}),
            (f"/notifications/deliveries/{delivery_id}/replay", {}),
            (f"/shipments/{shipment_id}/notify", {"notify": "muted"}),
        ]:
            assert bob_browser.submit(path, data=data).status_code == 404, path
        assert (
            "Kitchen tablet of Ann" in ann_browser.get(f"/notifications/channels/{channel_id}").text
        )
        for path in ("/", "/shipments", "/shipments?view=all", f"/shipments?q={UPS}"):
            page = bob_browser.get(path)
            assert page.status_code == 200
            assert f'href="/shipments/{shipment_id}"' not in page.text, path
            assert "Shoes for Ann" not in page.text, path
        for path in (f"/shipments/{shipment_id}", f"/shipments/{shipment_id}/delete"):
            assert bob_browser.get(path).status_code == 404, path
        for path, data in [
            (f"/shipments/{shipment_id}/description", {"description": "taken"}),
            (f"/shipments/{shipment_id}/auto-refresh", {"enabled": "false"}),
            (f"/shipments/{shipment_id}/delete", {}),
        ]:
            assert bob_browser.submit(path, data=data).status_code == 404, path
        done = bob_browser.get(f"/add/done?created={shipment_id}&existing={shipment_id}")
        assert f'href="/shipments/{shipment_id}"' not in done.text
        page = ann_browser.get(f"/shipments/{shipment_id}")
    assert "Shoes for Ann" in page.text
    assert "Automatic updates are off" not in page.text
