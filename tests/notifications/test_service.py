"""The notification settings' services: channels with their rules and secrets, a person's
time zone and quiet hours, tests and replays queued for the dispatcher, the delivery log."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from sqlalchemy import select

from parcelwatch.accounts.roles import Role
from parcelwatch.domain import utcnow
from parcelwatch.errors import Conflict, Forbidden, InvalidInput, NotFound
from parcelwatch.models import Notification, NotificationChannel, NotificationDelivery
from parcelwatch.notifications import delivery_log, preferences, service
from parcelwatch.notifications.events import DEFAULT_EVENT_TYPES, EventType
from tests.conftest import Database
from tests.notifications.conftest import MakePerson, PlayDispatcher

HOOK = "https://93.184.216.34/hooks/parcels"  # a global address: no name to resolve


def test_a_new_channel_wants_the_default_event_types(
    database: Database, person: MakePerson
) -> None:
    ann = person("ann", Role.OWNER)
    with database.sessions.begin() as session:
        made = service.create_channel(session, user_id=ann, kind="email", target="ann@example.org")
        assert set(made.channel.event_types) == {event.value for event in DEFAULT_EVENT_TYPES}
        assert made.channel.name == "ann@example.org"
        assert made.secret is None
        assert made.channel.secret is None


def test_a_webhook_gets_a_standard_webhooks_secret_shown_once(
    database: Database, person: MakePerson
) -> None:
    ann = person("ann", Role.OWNER)
    with database.sessions.begin() as session:
        made = service.create_channel(session, user_id=ann, kind="webhook", target=HOOK)
    assert made.secret is not None
    assert made.secret.startswith("whsec_")
    assert len(base64.b64decode(made.secret.removeprefix("whsec_"))) == 24


def test_rotating_a_secret_keeps_the_old_one_signing_for_a_day(
    database: Database, person: MakePerson
) -> None:
    ann = person("ann", Role.OWNER)
    now = utcnow()
    with database.sessions.begin() as session:
        first = service.create_channel(session, user_id=ann, kind="webhook", target=HOOK).secret
        channel_id = session.scalars(select(NotificationChannel.id)).one()
        rotated = service.rotate_secret(session, user_id=ann, channel_id=channel_id, now=now)
        assert rotated.secret != first
        assert rotated.channel.secret == rotated.secret
        assert rotated.channel.previous_secret == first
        assert rotated.channel.previous_secret_expires_at == now + timedelta(hours=24)


def test_an_unknown_event_type_is_refused_by_name(database: Database, person: MakePerson) -> None:
    ann = person("ann", Role.OWNER)
    with database.sessions.begin() as session, pytest.raises(InvalidInput, match="event_types"):
        service.create_channel(
            session,
            user_id=ann,
            kind="email",
            target="ann@example.org",
            event_types=["shipment.delivered", "shipment.teleported"],
        )


@pytest.mark.parametrize(
    ("kind", "target", "field"),
    [
        ("email", "not-an-address", "target"),
        ("email", "ann@localhost", "target"),
        ("webhook", "ftp://93.184.216.34/x", "target"),
        ("webhook", "http://127.0.0.1:8123/api/webhook/x", "private"),
        ("webhook", "http://192.168.1.20/hook", "private"),
        ("webhook", "http://[::ffff:10.0.0.1]/hook", "private"),
        ("webhook", "http://169.254.169.254/latest", "private"),
        ("apprise", "bogus://x", "Apprise"),
        ("apprise", "json://10.1.2.3/notify", "private"),
        ("carrier-pigeon", "coo", "kind"),
    ],
)
def test_a_bad_or_private_target_is_refused(
    database: Database, person: MakePerson, kind: str, target: str, field: str
) -> None:
    ann = person("ann", Role.OWNER)
    with database.sessions.begin() as session, pytest.raises(InvalidInput, match=field):
        service.create_channel(session, user_id=ann, kind=kind, target=target)


def test_private_targets_are_allowed_when_the_instance_allows_them(
    database: Database, person: MakePerson
) -> None:
    ann = person("ann", Role.OWNER)
    with database.sessions.begin() as session:
        made = service.create_channel(
            session,
            user_id=ann,
            kind="webhook",
            target="http://192.168.1.20:8123/api/webhook/parcels",
            allow_private=True,
        )
    assert made.channel.target == "http://192.168.1.20:8123/api/webhook/parcels"


def test_targets_are_shown_without_their_credentials(
    database: Database, person: MakePerson
) -> None:
    ann = person("ann", Role.OWNER)
    with database.sessions.begin() as session:
        hook = service.create_channel(
            session,
            user_id=ann,
            kind="webhook",
            target="https://user:hunter2@93.184.216.34/hook?token=s3cret&x=1",
        ).channel
        push = service.create_channel(
            session, user_id=ann, kind="apprise", target="tgram://123456789:abcdefg_hijk/42"
        ).channel
        assert service.masked_target(hook) == "https://…@93.184.216.34/hook?token=…&x=…"
        assert service.masked_target(push) == "tgram://…"
        slack = service.create_channel(
            session,
            user_id=ann,
            kind="webhook",
            target="https://93.184.216.34/services/T0001/B0002/XXXXSECRETXXXX",
        ).channel
        assert service.masked_target(slack) == "https://93.184.216.34/services/…"


def test_only_admins_make_instance_wide_webhooks(database: Database, person: MakePerson) -> None:
    person("owner", Role.OWNER)
    sam = person("sam")
    with database.sessions.begin() as session:
        with pytest.raises(Forbidden):
            service.create_channel(
                session, user_id=sam, kind="webhook", target=HOOK, instance_wide=True
            )
        made = service.create_channel(
            session, user_id=sam, kind="webhook", target=HOOK, instance_wide=True, admin=True
        )
        assert made.channel.instance_wide


def test_another_persons_channel_is_not_found(database: Database, person: MakePerson) -> None:
    ann = person("ann", Role.OWNER)
    bob = person("bob")
    with database.sessions.begin() as session:
        made = service.create_channel(session, user_id=ann, kind="email", target="a@example.org")
        channel_id = made.channel.id
        assert service.list_channels(session, bob) == []
        for attempt in (
            lambda: service.get_channel(session, bob, channel_id),
            lambda: service.update_channel(session, user_id=bob, channel_id=channel_id, name="x"),
            lambda: service.delete_channel(session, user_id=bob, channel_id=channel_id),
            lambda: service.rotate_secret(session, user_id=bob, channel_id=channel_id),
            lambda: delivery_log.send_test(session, user_id=bob, channel_id=channel_id),
            lambda: delivery_log.list_deliveries(session, user_id=bob, channel_id=channel_id),
        ):
            with pytest.raises(NotFound):
                attempt()


def test_switching_a_disabled_channel_on_clears_its_failures(
    database: Database, person: MakePerson
) -> None:
    ann = person("ann", Role.OWNER)
    with database.sessions.begin() as session:
        channel = service.create_channel(session, user_id=ann, kind="email", target="a@b.org")
        row = channel.channel
        row.enabled, row.consecutive_failures = False, 20
        row.disabled_at, row.disabled_reason = utcnow(), "20 failures in a row"
        service.update_channel(session, user_id=ann, channel_id=row.id, enabled=True)
        assert (row.enabled, row.consecutive_failures, row.disabled_at) == (True, 0, None)


def test_time_zone_and_quiet_hours_are_checked_and_kept(
    database: Database, person: MakePerson
) -> None:
    ann = person("ann", Role.OWNER)
    with database.sessions.begin() as session:
        assert preferences.get_preferences(session, ann) == preferences.Preferences(
            "UTC", None, None
        )
        with pytest.raises(InvalidInput, match="timezone"):
            preferences.set_preferences(
                session,
                ann,
                timezone="Mars/Olympus",
                quiet_start_minute=None,
                quiet_end_minute=None,
            )
        with pytest.raises(InvalidInput, match="both"):
            preferences.set_preferences(
                session, ann, timezone="UTC", quiet_start_minute=1320, quiet_end_minute=None
            )
        preferences.set_preferences(
            session,
            ann,
            timezone="Europe/Berlin",
            quiet_start_minute=preferences.parse_clock("22:00", "quiet_start"),
            quiet_end_minute=preferences.parse_clock("7:30", "quiet_end"),
        )
    with database.sessions() as session:
        assert preferences.get_preferences(session, ann) == preferences.Preferences(
            "Europe/Berlin", 1320, 450
        )
    with pytest.raises(InvalidInput, match="quiet_end"):
        preferences.parse_clock("24:00", "quiet_end")


def test_the_admin_key_has_no_settings_of_its_own(database: Database) -> None:
    with database.sessions.begin() as session:
        assert service.list_channels(session, None) == []
        with pytest.raises(Conflict):
            service.create_channel(session, user_id=None, kind="email", target="a@b.org")
        with pytest.raises(Conflict):
            preferences.get_preferences(session, None)


def test_a_test_is_queued_for_its_channel_due_now_and_urgent(
    database: Database, person: MakePerson
) -> None:
    ann = person("ann", Role.OWNER)
    now = utcnow()
    with database.sessions.begin() as session:
        channel = service.create_channel(session, user_id=ann, kind="webhook", target=HOOK).channel
        delivery = delivery_log.send_test(session, user_id=ann, channel_id=channel.id, now=now)
        notification = session.get(Notification, delivery.notification_id)
        assert notification is not None
        assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("pending", 0, now)
        assert delivery.message_id.startswith("msg_")
        assert len(delivery.message_id) == 28
        assert notification.urgent
        assert notification.event_type == EventType.TEST
        assert notification.payload == {
            "type": "notification.test",
            "timestamp": now.isoformat().replace("+00:00", "Z"),
            "version": 1,
            "data": {
                "channel": {"id": channel.id, "name": channel.name, "kind": "webhook"},
                "message": delivery_log.TEST_MESSAGE,
            },
        }
        again = delivery_log.send_test(session, user_id=ann, channel_id=channel.id, now=now)
        assert again.message_id != delivery.message_id  # each test is a message of its own


def test_a_switched_off_channel_is_not_tested(database: Database, person: MakePerson) -> None:
    ann = person("ann", Role.OWNER)
    with database.sessions.begin() as session:
        channel = service.create_channel(session, user_id=ann, kind="email", target="a@b.org")
        service.update_channel(session, user_id=ann, channel_id=channel.channel.id, enabled=False)
        with pytest.raises(Conflict, match="switched off"):
            delivery_log.send_test(session, user_id=ann, channel_id=channel.channel.id)
        assert delivery_log.send_tests(session, user_id=ann) == []


def test_replay_requeues_a_dead_delivery_keeping_its_message_id(
    database: Database, person: MakePerson, play_dispatcher: PlayDispatcher
) -> None:
    ann = person("ann", Role.OWNER)
    with database.sessions.begin() as session:
        channel = service.create_channel(session, user_id=ann, kind="webhook", target=HOOK).channel
        delivery = delivery_log.send_test(session, user_id=ann, channel_id=channel.id)
        delivery_id, message_id = delivery.id, delivery.message_id
    play_dispatcher(delivery_id, outcome="dead", status_code=500, error="HTTP 500")
    now = utcnow()
    with database.sessions.begin() as session:
        replayed = delivery_log.replay(session, user_id=ann, delivery_id=delivery_id, now=now)
        assert (replayed.status, replayed.next_attempt_at, replayed.message_id) == (
            "pending",
            now,
            message_id,
        )
        assert (replayed.lease_owner, replayed.lease_expires_at) == (None, None)


def test_the_delivery_log_pages_newest_first_with_attempts(
    database: Database, person: MakePerson, play_dispatcher: PlayDispatcher
) -> None:
    ann = person("ann", Role.OWNER)
    bob = person("bob")
    with database.sessions.begin() as session:
        mail = service.create_channel(session, user_id=ann, kind="email", target="a@b.org").channel
        hook = service.create_channel(session, user_id=ann, kind="webhook", target=HOOK).channel
        ids = [
            delivery_log.send_test(session, user_id=ann, channel_id=channel.id).id
            for channel in (mail, hook, mail)
        ]
        hook_id = hook.id
    play_dispatcher(ids[1], outcome="failed", status_code=503, error="HTTP 503")
    play_dispatcher(ids[1], outcome="delivered")
    with database.sessions() as session:
        first = delivery_log.list_deliveries(session, user_id=ann, limit=2)
        assert [item.delivery.id for item in first.items] == [ids[2], ids[1]]
        assert [a.outcome for a in first.items[1].attempts] == ["delivered", "failed"]
        rest = delivery_log.list_deliveries(session, user_id=ann, before=first.next_before)
        assert [item.delivery.id for item in rest.items] == [ids[0]]
        assert rest.next_before is None
        hooks = delivery_log.list_deliveries(session, user_id=ann, channel_id=hook_id)
        assert [item.delivery.id for item in hooks.items] == [ids[1]]
        done = delivery_log.list_deliveries(session, user_id=ann, status="delivered")
        assert [item.delivery.id for item in done.items] == [ids[1]]
        assert delivery_log.list_deliveries(session, user_id=bob).items == []
        assert (
            session.scalar(
                select(NotificationDelivery.status).where(NotificationDelivery.id == ids[0])
            )
            == "pending"
        )
