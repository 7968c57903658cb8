"""The Notifications pages and forms: channels added (a webhook's secret shown once), bad
input shown back, a test queued into the log, replay, quiet hours, a shipment muted."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from parcelwatch.config import Settings
from parcelwatch.models import NotificationDelivery
from tests.conftest import Browser, Database
from tests.notifications.conftest import record_attempt
from tests.web.conftest import AddShipment

HOOK = "https://93.184.216.34/hook?token=abc123"
UPS = "1Z5R89390357567127"


@pytest.fixture
def web_settings(web_settings: Settings) -> Settings:
    """No dispatcher in the app: nothing may call HOOK; the tests play the dispatcher."""
    return web_settings.model_copy(update={"notify_enabled": False})


def _channel_id(page_text: str) -> int:
    found = re.search(r'href="/notifications/channels/(\d+)"', page_text)
    assert found, "no channel link on the page"
    return int(found[1])


def test_an_email_channel_is_added_with_the_ticked_event_types(web: Browser) -> None:
    answer = web.submit(
        "/notifications/channels",
        data={
            "kind": "email",
            "target": "me@example.org",
            "name": "Inbox",
            "event_types": ["shipment.delivered", "shipment.late"],  # type: ignore[dict-item]
        },
    )
    assert answer.status_code == 200
    assert str(answer.url).endswith("/notifications?notice=channel_added")
    assert "Inbox" in answer.text
    assert "delivered, late" in answer.text


def test_a_webhook_secret_is_shown_once_on_the_page(web: Browser) -> None:
    made = web.submit("/notifications/channels", data={"kind": "webhook", "target": HOOK})
    secret = re.search(r'id="new-secret-value">(whsec_[^<]+)<', made.text)
    assert secret, made.text[:2000]
    assert made.headers["cache-control"] == "no-store"
    again = web.get("/notifications")
    assert secret[1] not in again.text
    assert "abc123" not in again.text  # the URL's token is masked
    assert "token=…" in again.text


def test_a_bad_target_is_shown_back_with_why(web: Browser) -> None:
    answer = web.submit("/notifications/channels", data={"kind": "email", "target": "nope"})
    assert answer.status_code == 422
    assert 'id="channel-error"' in answer.text
    assert "is not an email address" in answer.text
    assert 'value="nope"' in answer.text


def test_a_test_appears_in_the_log_and_is_replayed(web: Browser, database: Database) -> None:
    web.submit("/notifications/channels", data={"kind": "email", "target": "me@example.org"})
    channel_id = _channel_id(web.get("/notifications").text)
    queued = web.submit(f"/notifications/channels/{channel_id}/test")
    assert str(queued.url).endswith(f"/notifications/channels/{channel_id}?notice=test_queued#log")
    assert "notification.test" in queued.text
    assert "pending" in queued.text
    with database.sessions() as session:
        delivery_id = session.scalars(select(NotificationDelivery.id)).one()
    record_attempt(database, delivery_id, outcome="dead", status_code=None, error="SMTP refused")
    page = web.get(f"/notifications/channels/{channel_id}")
    assert "SMTP refused" in page.text
    assert "dead" in page.text
    replayed = web.submit(f"/notifications/deliveries/{delivery_id}/replay")
    assert "queued again" in replayed.text
    with database.sessions() as session:
        assert session.get(NotificationDelivery, delivery_id).status == "pending"  # type: ignore[union-attr]


def test_a_channel_is_edited_switched_off_and_removed(web: Browser) -> None:
    web.submit("/notifications/channels", data={"kind": "email", "target": "me@example.org"})
    channel_id = _channel_id(web.get("/notifications").text)
    saved = web.submit(
        f"/notifications/channels/{channel_id}",
        data={"name": "Work inbox", "event_types": "shipment.exception"},
    )
    assert "Channel saved." in saved.text
    assert "Work inbox" in saved.text
    off = web.submit(f"/notifications/channels/{channel_id}/test")
    assert off.status_code == 409  # switched off: the form had no "enabled"
    gone = web.submit(f"/notifications/channels/{channel_id}/delete")
    assert "Channel removed." in gone.text
    assert web.get(f"/notifications/channels/{channel_id}").status_code == 404


def test_quiet_hours_are_saved_and_a_bad_time_zone_refused(web: Browser) -> None:
    saved = web.submit(
        "/notifications/preferences",
        data={"timezone": "Europe/Berlin", "quiet_start": "22:00", "quiet_end": "07:00"},
    )
    assert "Time zone and quiet hours saved." in saved.text
    assert 'value="Europe/Berlin"' in saved.text
    assert 'value="22:00"' in saved.text
    bad = web.submit("/notifications/preferences", data={"timezone": "Moon/Base"})
    assert bad.status_code == 422
    assert "not an IANA time zone" in bad.text


def test_a_shipment_is_muted_from_its_page(web: Browser, add_shipment: AddShipment) -> None:
    shipment = add_shipment(UPS)
    page = web.submit(f"/shipments/{shipment.id}/notify", data={"notify": "muted"})
    assert "notifications of this shipment are saved" in page.text
    assert '<option value="muted" selected>' in page.text
    bad = web.submit(f"/shipments/{shipment.id}/notify", data={"notify": "loud"})
    assert bad.status_code == 422
