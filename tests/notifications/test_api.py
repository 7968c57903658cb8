"""The notifications API: channels with their secrets shown once, bad input named, scopes, a
test and a replay queued for the dispatcher, the delivery log, preferences, and a tracker's
notify mode through the shipments API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from parcelwatch.accounts.roles import Role, Scope
from parcelwatch.api.app import create_app
from parcelwatch.config import Settings, load_settings
from tests.conftest import Database, account_token
from tests.notifications.conftest import PlayDispatcher

HOOK = "https://93.184.216.34/hooks/parcels?key=s3cret"
UPS = "1Z5R89390357567127"
ADMIN_KEY = "notify-admin-key"


@pytest.fixture
def lan_settings(database: Database) -> Settings:
    """NOTIFY_ALLOW_PRIVATE_NETWORKS on, as for a Home Assistant on the LAN."""
    return load_settings(
        database_url=database.url.replace("postgresql+psycopg://", "postgresql://"),
        auto_update_enabled=False,
        notify_allow_private_networks=True,
        notify_enabled=False,
        admin_api_key=ADMIN_KEY,
        _env_file=None,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as served:
        yield served


def test_a_webhook_secret_is_shown_once_and_its_url_masked(
    api: TestClient,
) -> None:
    made = api.post(
        "/api/notifications/channels",
        json={"kind": "webhook", "target": HOOK, "name": "Home Assistant"},
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["secret"].startswith("whsec_")
    assert body["target"] == "https://93.184.216.34/hooks/…?key=…"
    assert body["event_types"] == [
        "shipment.out_for_delivery",
        "shipment.delivered",
        "shipment.available_for_pickup",
        "shipment.exception",
        "shipment.stuck",
    ]
    listed = api.get("/api/notifications/channels")
    one = api.get(f"/api/notifications/channels/{body['id']}")
    for answer in (listed, one):
        assert answer.status_code == 200
        assert body["secret"] not in answer.text
        assert "s3cret" not in answer.text
    assert one.json()["secret"] is None
    rotated = api.post(f"/api/notifications/channels/{body['id']}/rotate-secret").json()
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != body["secret"]
    assert rotated["previous_secret_expires_at"] is not None


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"kind": "email", "target": "a@b.org", "event_types": ["shipment.lost"]}, "event_types"),
        ({"kind": "email", "target": "not an address"}, "target"),
        ({"kind": "webhook", "target": "http://127.0.0.1:8123/hook"}, "NOTIFY_ALLOW_PRIVATE"),
        ({"kind": "webhook", "target": "file:///etc/passwd"}, "target"),
        ({"kind": "apprise", "target": "nonsense://x"}, "target"),
        ({"kind": "sms", "target": "+15550100"}, "kind"),
    ],
)
def test_bad_channel_input_is_a_422_naming_the_field(
    api: TestClient, body: dict[str, object], named: str
) -> None:
    answer = api.post("/api/notifications/channels", json=body)
    assert answer.status_code == 422
    assert named in answer.json()["detail"]


def test_private_targets_are_accepted_when_the_instance_allows_them(
    lan_settings: Settings,
) -> None:
    owner = account_token(lan_settings)
    with TestClient(create_app(lan_settings), headers=owner) as api:
        answer = api.post(
            "/api/notifications/channels",
            json={"kind": "webhook", "target": "http://127.0.0.1:8123/api/webhook/parcels"},
        )
    assert answer.status_code == 201


def test_scopes_reading_changing_and_instance_wide(settings: Settings, client: TestClient) -> None:
    account_token(settings)  # the owner
    reader = account_token(settings, name="rita", role=Role.MEMBER, scope=Scope.READ)
    member = account_token(settings, name="sam", role=Role.MEMBER, scope=Scope.WRITE)
    admin = account_token(settings, name="ada", role=Role.ADMIN, scope=Scope.ADMIN)
    email = {"kind": "email", "target": "rita@example.org"}
    wide = {"kind": "webhook", "target": HOOK, "instance_wide": True}

    assert client.get("/api/notifications/channels", headers=reader).status_code == 200
    assert client.post("/api/notifications/channels", json=email, headers=reader).status_code == 403
    refused = client.post("/api/notifications/channels", json=wide, headers=member)
    assert refused.status_code == 403
    assert "instance_wide" in refused.json()["detail"]
    assert client.post("/api/notifications/channels", json=wide, headers=admin).status_code == 201
    assert client.get("/api/notifications/channels").status_code == 401


def test_the_admin_key_has_no_channels_nor_preferences(lan_settings: Settings) -> None:
    key = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with TestClient(create_app(lan_settings), headers=key) as api:
        assert api.get("/api/notifications/channels").json() == []
        assert api.get("/api/notifications/deliveries").json()["items"] == []
        assert api.get("/api/notifications/preferences").status_code == 409
        made = api.post("/api/notifications/channels", json={"kind": "email", "target": "a@b.io"})
        assert made.status_code == 409


def test_a_test_is_queued_seen_in_the_log_and_replayed_with_its_message_id(
    api: TestClient, play_dispatcher: PlayDispatcher
) -> None:
    channel = api.post(
        "/api/notifications/channels", json={"kind": "webhook", "target": HOOK}
    ).json()
    queued = api.post(f"/api/notifications/channels/{channel['id']}/test")
    assert queued.status_code == 202
    delivery = queued.json()
    assert (delivery["status"], delivery["attempts"], delivery["event_type"]) == (
        "pending",
        0,
        "notification.test",
    )
    play_dispatcher(delivery["id"], outcome="dead", status_code=410, error="HTTP 410 Gone")

    log = api.get(f"/api/notifications/deliveries?channel_id={channel['id']}").json()
    assert [item["id"] for item in log["items"]] == [delivery["id"]]
    logged = log["items"][0]
    assert (logged["status"], logged["attempts"], logged["last_status_code"]) == ("dead", 1, 410)
    assert logged["attempt_log"][0]["error"] == "HTTP 410 Gone"
    assert api.get("/api/notifications/deliveries?status=pending").json()["items"] == []

    replayed = api.post(f"/api/notifications/deliveries/{delivery['id']}/replay")
    assert replayed.status_code == 202
    assert replayed.json()["status"] == "pending"
    assert replayed.json()["message_id"] == delivery["message_id"]
    again = api.get(f"/api/notifications/deliveries/{delivery['id']}").json()
    assert again["status"] == "pending"


def test_a_switched_off_channel_cannot_be_tested(api: TestClient) -> None:
    channel = api.post(
        "/api/notifications/channels", json={"kind": "email", "target": "a@b.org"}
    ).json()
    switched = api.patch(f"/api/notifications/channels/{channel['id']}", json={"enabled": False})
    assert switched.json()["enabled"] is False
    assert api.post(f"/api/notifications/channels/{channel['id']}/test").status_code == 409


def test_channels_are_edited_and_removed(api: TestClient) -> None:
    channel = api.post(
        "/api/notifications/channels", json={"kind": "email", "target": "a@b.org"}
    ).json()
    changed = api.patch(
        f"/api/notifications/channels/{channel['id']}",
        json={"name": "Me", "event_types": ["shipment.delivered", "shipment.late"]},
    ).json()
    assert (changed["name"], changed["event_types"]) == (
        "Me",
        ["shipment.delivered", "shipment.late"],
    )
    bad = api.patch(f"/api/notifications/channels/{channel['id']}", json={"target": "nope"})
    assert bad.status_code == 422
    assert api.delete(f"/api/notifications/channels/{channel['id']}").status_code == 204
    assert api.get(f"/api/notifications/channels/{channel['id']}").status_code == 404


def test_preferences_keep_a_time_zone_and_quiet_hours(api: TestClient) -> None:
    assert api.get("/api/notifications/preferences").json() == {
        "timezone": "UTC",
        "quiet_start": None,
        "quiet_end": None,
    }
    saved = api.put(
        "/api/notifications/preferences",
        json={"timezone": "America/New_York", "quiet_start": "22:00", "quiet_end": "07:00"},
    )
    assert saved.json() == {
        "timezone": "America/New_York",
        "quiet_start": "22:00",
        "quiet_end": "07:00",
    }
    for body, named in [
        ({"timezone": "Atlantis/Capital"}, "timezone"),
        ({"timezone": "UTC", "quiet_start": "25:00", "quiet_end": "07:00"}, "quiet_start"),
        ({"timezone": "UTC", "quiet_start": "22:00"}, "both"),
    ]:
        answer = api.put("/api/notifications/preferences", json=body)
        assert answer.status_code == 422
        assert named in answer.json()["detail"]
    assert api.get("/api/notifications/preferences").json()["timezone"] == "America/New_York"


def test_a_tracker_is_muted_or_limited_to_delivered_through_the_shipments_api(
    api: TestClient,
) -> None:
    shipment = api.post("/api/shipments", json={"tracking_number": UPS}).json()
    assert shipment["notify"] == "all"
    muted = api.patch(f"/api/shipments/{shipment['id']}", json={"notify": "muted"})
    assert muted.json()["notify"] == "muted"
    assert api.get(f"/api/shipments/{shipment['id']}").json()["notify"] == "muted"
    listed = api.get("/api/shipments").json()["items"]
    assert [item["notify"] for item in listed] == ["muted"]
    only = api.patch(f"/api/shipments/{shipment['id']}", json={"notify": "delivered_only"})
    assert only.json()["notify"] == "delivered_only"
    bad = api.patch(f"/api/shipments/{shipment['id']}", json={"notify": "loud"})
    assert bad.status_code == 422
    assert "notify" in bad.json()["detail"]
