"""No secret of a channel reaches a log line, an attempt's error or a delivery's last error:
a webhook's signing secrets, an Apprise URL's token and password, the SMTP password; even
with debug logging, where Apprise and the HTTP libraries say the most."""

from __future__ import annotations

import pytest

from parcelwatch.accounts.roles import Role
from parcelwatch.logs import configure_logging, flush_logs
from parcelwatch.models import DeliveryAttempt, NotificationDelivery
from tests.conftest import Database, free_port
from tests.notifications.conftest import (
    NO_RETRY_SOON,
    Receiver,
    World,
    dispatching,
    mail_settings,
    new_secret,
    until,
)
from tests.ops.conftest import Mailbox

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("restored_logging")]


async def test_channel_secrets_never_reach_the_logs_or_the_delivery_log(
    world: World,
    database: Database,
    receiver: Receiver,
    mailbox: Mailbox,
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("debug", "json")
    webhook_secret, previous_secret = new_secret(), new_secret()
    apprise_token = "tok3nAPPRISE9876543210"
    apprise_password = "pw-apprise-5550123"
    hook_token = "hooktoken0123456789abc"
    owner = world.person("owner", Role.OWNER)
    tracker = world.tracker(owner)
    refused_port = free_port()  # nothing listens: a connection error, whose text has the URL
    channels = [
        world.channel(
            owner,
            "webhook",
            f"http://127.0.0.1:{refused_port}/hooks/{hook_token}?key={hook_token}",
            secret=webhook_secret,
            previous_secret=previous_secret,
        ),
        world.channel(owner, "webhook", f"{receiver.url}/fail", secret=webhook_secret),
        world.channel(
            owner,
            "apprise",
            receiver.url.replace("http://", f"json://bot:{apprise_password}@")
            + f"/apprise/{apprise_token}",
        ),
        world.channel(owner, "email", "ana@example.org"),
    ]
    receiver.answer(*[500] * 10)
    world.notify(tracker, channels)
    settings = mail_settings(database, mailbox, alert_smtp_pass="planted-smtp-pw-42")
    async with dispatching(settings, database, NO_RETRY_SOON):
        await until(lambda: all(d.attempts >= 1 for d in world.deliveries()))
    flush_logs()
    with database.sessions() as session:
        recorded = [a.error or "" for a in session.query(DeliveryAttempt)]
        recorded += [d.last_error or "" for d in session.query(NotificationDelivery)]
    logged = capsys.readouterr().err
    assert "refused" in " ".join(recorded).lower() or "while sending" in " ".join(recorded)
    assert "apprise" in logged.lower()  # Apprise did talk, at debug level
    planted = [
        webhook_secret,
        webhook_secret.removeprefix("whsec_"),
        previous_secret.removeprefix("whsec_"),
        apprise_token,
        apprise_password,
        hook_token,
        "planted-smtp-pw-42",
    ]
    for secret in planted:
        assert secret not in logged
        assert all(secret not in text for text in recorded)
