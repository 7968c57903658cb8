"""Email (to a real SMTP server, aiosmtpd) and Apprise (`json://` to a real local HTTP
server): what the message says, grouping of what is due together, and only ever the
channel owner's own notifications."""

from __future__ import annotations

import email
import email.policy
from datetime import timedelta
from email.message import EmailMessage

import pytest

from parcelwatch.accounts.roles import Role
from parcelwatch.domain import utcnow
from parcelwatch.notifications.events import EventType
from tests.conftest import Database
from tests.notifications.conftest import (
    Receiver,
    World,
    dispatching,
    mail_settings,
    notify_settings,
    until,
)
from tests.ops.conftest import Mailbox

pytestmark = pytest.mark.anyio


def parsed(mailbox: Mailbox) -> list[EmailMessage]:
    return [
        email.message_from_bytes(envelope.content, policy=email.policy.default)  # type: ignore[misc]
        for envelope in mailbox.messages
    ]


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    return text.get_content(), html.get_content()


async def test_an_email_has_a_text_and_an_html_part_saying_what_happened(
    world: World, database: Database, mailbox: Mailbox
) -> None:
    owner = world.person("owner", Role.OWNER)
    tracker = world.tracker(owner, "Running shoes")
    channel = world.channel(owner, "email", "ana@example.org")
    (message_id,) = world.notify(tracker, [channel])
    async with dispatching(mail_settings(database, mailbox), database):
        await until(lambda: world.delivery(message_id).status == "delivered")
    (message,) = parsed(mailbox)
    assert message["Subject"] == "Running shoes is out for delivery"
    assert message["From"] == "parcels@parcelwatch.example"
    assert message["To"] == "ana@example.org"
    assert message["Message-ID"] == f"<{message_id}@parcelwatch>"
    assert message.get_content_type() == "multipart/alternative"
    text, html = parts(message)
    for part in (text, html):
        assert "Out for delivery" in part
        assert "Louisville, KY, 40201, US" in part
        assert "https://parcels.example/shipments/" in part
        assert "Expected:" in part or "Expected</th>" in part
    assert "<h2" in html
    assert mailbox.logins == ["alerts"]


async def test_notifications_due_together_on_one_email_channel_go_out_as_one_message(
    world: World, database: Database, mailbox: Mailbox
) -> None:
    owner = world.person("owner", Role.OWNER)
    shoes = world.tracker(owner, "Running shoes")
    books = world.tracker(owner, "Books")
    channel = world.channel(owner, "email", "ana@example.org")
    now = utcnow()
    ids = world.notify(shoes, [channel], due=now)
    ids += world.notify(books, [channel], due=now, event_type=EventType.DELIVERED)
    # Coming due inside NOTIFY_GROUP_WINDOW: swept into the same message.
    ids += world.notify(shoes, [channel], due=now + timedelta(seconds=60))
    settings = mail_settings(database, mailbox, notify_group_window=timedelta(minutes=2))
    async with dispatching(settings, database):
        await until(lambda: all(world.delivery(i).status == "delivered" for i in ids))
    (message,) = parsed(mailbox)
    assert message["Subject"] == "parcelwatch: 3 updates"
    assert message["X-Parcelwatch-Message-Ids"].split() == ids
    text, _ = parts(message)
    assert text.count("Running shoes is out for delivery") == 2
    assert "Books was delivered" in text


async def test_an_apprise_json_url_posts_the_title_and_body_to_the_local_server(
    world: World, database: Database, receiver: Receiver
) -> None:
    owner = world.person("owner", Role.OWNER)
    tracker = world.tracker(owner, "Running shoes")
    target = receiver.url.replace("http://", "json://") + "/apprise"
    channel = world.channel(owner, "apprise", target)
    (message_id,) = world.notify(tracker, [channel])
    async with dispatching(notify_settings(database), database):
        await until(lambda: world.delivery(message_id).status == "delivered")
    (arrival,) = receiver.arrivals
    assert arrival.path == "/apprise"
    body = arrival.json()
    assert body["title"] == "Running shoes is out for delivery"
    assert "Louisville" in body["message"]


async def test_a_failing_apprise_target_is_retried_with_apprises_reason(
    world: World, database: Database, receiver: Receiver
) -> None:
    owner = world.person("owner", Role.OWNER)
    tracker = world.tracker(owner)
    receiver.answer(500, path="/apprise")
    target = receiver.url.replace("http://", "json://") + "/apprise"
    channel = world.channel(owner, "apprise", target)
    (message_id,) = world.notify(tracker, [channel])
    async with dispatching(notify_settings(database), database):
        await until(lambda: world.delivery(message_id).status == "delivered")
    assert len(receiver.arrivals) == 2
    assert world.delivery(message_id).attempts == 2


async def test_each_person_hears_only_about_their_own_parcels(
    world: World, database: Database, mailbox: Mailbox
) -> None:
    owner = world.person("owner", Role.OWNER)
    other = world.person("bo")
    mine = world.tracker(owner, "My shoes")
    theirs = world.tracker(other, "Their lamp")
    my_mail = world.channel(owner, "email", "ana@example.org")
    their_mail = world.channel(other, "email", "bo@example.org")
    ids = world.notify(mine, [my_mail]) + world.notify(theirs, [their_mail])
    # A row no enqueue would write: someone else's notification queued to my channel.
    (misrouted,) = world.notify(theirs, [my_mail])
    async with dispatching(mail_settings(database, mailbox), database):
        await until(lambda: all(world.delivery(i).status == "delivered" for i in ids))
        await until(lambda: world.delivery(misrouted).status == "dead")
    received = {message["To"]: parts(message)[0] for message in parsed(mailbox)}
    assert set(received) == {"ana@example.org", "bo@example.org"}
    assert "My shoes" in received["ana@example.org"]
    assert "Their lamp" not in received["ana@example.org"]
    assert "My shoes" not in received["bo@example.org"]
    assert world.delivery(misrouted).last_error == "the notification is not the channel owner's"
