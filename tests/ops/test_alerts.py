"""Alerts delivered to a real SMTP server (aiosmtpd) and real local HTTP receivers: content,
HMAC signature, cool-down, recovery notice, and a failing channel that never stops a run."""

from __future__ import annotations

import email
import hashlib
import hmac
import json
from datetime import timedelta
from email.message import Message
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from typer.testing import CliRunner

from parcelwatch.api.app import create_app
from parcelwatch.cli.main import app as cli
from parcelwatch.config import Settings, load_settings
from parcelwatch.domain import utcnow
from parcelwatch.models import AlertState
from parcelwatch.ops.alerts.dispatch import AlertRetryPolicy, check_and_alert, send_test_alert
from parcelwatch.ops.health import HealthOptions
from parcelwatch.sync.testing import FakeProvider
from tests.conftest import Database
from tests.ops.conftest import Mailbox, Receiver, RunFactory

FAST = AlertRetryPolicy(attempts=3, backoff=0.01)
SLACK_PATH = "/slack/T000/B000/slack-token-secret"
WEBHOOK_SECRET = "whsec-0123456789"
NO_CARRIER_CHECKS = HealthOptions(check_carriers=False)


def values(
    database: Database, mailbox: Mailbox, receiver: Receiver, **extra: Any
) -> dict[str, Any]:
    port = receiver.url.rsplit(":", 1)[1]
    return {
        "database_url": database.url.replace("postgresql+psycopg://", "postgresql://"),
        "auto_update_enabled": False,
        "alert_email_enabled": True,
        "alert_email_recipients": "ops@example.com, oncall@example.com",
        "alert_email_from": "parcelwatch@example.com",
        "alert_smtp_host": "127.0.0.1",
        "alert_smtp_port": mailbox.port,
        "alert_smtp_user": "alerts",
        "alert_smtp_pass": "s3cret-smtp",
        "alert_slack_enabled": True,
        "alert_slack_webhook_url": receiver.url + SLACK_PATH,
        "alert_slack_channel": "#parcel-ops",
        "alert_webhook_enabled": True,
        "alert_webhook_url": receiver.url + "/hook",
        "alert_webhook_secret": WEBHOOK_SECRET,
        "alert_apprise_urls": f"json://127.0.0.1:{port}/apprise",
        **extra,
    }


@pytest.fixture
def alert_settings(database: Database, mailbox: Mailbox, receiver: Receiver) -> Settings:
    return load_settings(**values(database, mailbox, receiver), _env_file=None)


def mail(mailbox: Mailbox, index: int = -1) -> Message:
    return email.message_from_bytes(mailbox.messages[index].content)


def body_of(message: Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


def verify_signature(request: Any) -> None:
    timestamp = request.headers["X-Parcelwatch-Timestamp"]
    expected = hmac.new(
        WEBHOOK_SECRET.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256
    ).hexdigest()
    assert request.headers["X-Parcelwatch-Signature"] == f"sha256={expected}"
    assert abs(int(timestamp) - utcnow().timestamp()) < 60


@pytest.mark.anyio
async def test_a_test_alert_reaches_every_channel_clearly_marked(
    alert_settings: Settings, mailbox: Mailbox, receiver: Receiver
) -> None:
    deliveries = await send_test_alert(alert_settings, retry=FAST)
    assert {d.channel: d.delivered for d in deliveries} == {
        "console": True,
        "email": True,
        "slack": True,
        "webhook": True,
        "apprise:json": True,
    }
    message = mail(mailbox)
    assert "TEST" in message["Subject"]
    assert mailbox.messages[0].rcpt_tos == ["ops@example.com", "oncall@example.com"]
    assert mailbox.messages[0].mail_from == "parcelwatch@example.com"
    assert mailbox.logins == ["alerts"]
    assert "This is a test alert" in body_of(message)
    slack = receiver.at(SLACK_PATH)[0].json()
    assert slack["channel"] == "#parcel-ops"
    assert "TEST" in slack["text"]
    hook = receiver.at("/hook")[0]
    verify_signature(hook)
    assert hook.json()["test"] is True
    assert hook.headers["X-Parcelwatch-Event"] == "test"
    apprise = receiver.at("/apprise")[0].json()
    assert "TEST" in apprise["title"]


@pytest.mark.anyio
async def test_a_problem_is_sent_once_per_cooldown_then_a_recovery_notice(
    database: Database,
    alert_settings: Settings,
    mailbox: Mailbox,
    receiver: Receiver,
    add_run: RunFactory,
) -> None:
    add_run(minutes_ago=8 * 60)  # the last success: critical beyond 6 h
    first = await check_and_alert(
        alert_settings, database.engine, options=NO_CARRIER_CHECKS, retry=FAST
    )
    assert first.status == "critical"
    assert [(n.key, n.severity) for n in first.notices] == [("sync_activity", "critical")]
    assert first.all_delivered
    assert "CRITICAL: sync_activity" in mail(mailbox)["Subject"]
    assert "no successful sync run for 8" in body_of(mail(mailbox))
    alert = receiver.at("/hook")[0]
    verify_signature(alert)
    assert alert.json()["notices"][0] | {"figures": None} == {
        "kind": "alert",
        "key": "sync_activity",
        "severity": "critical",
        "message": alert.json()["notices"][0]["message"],
        "figures": None,
    }

    again = await check_and_alert(
        alert_settings, database.engine, options=NO_CARRIER_CHECKS, retry=FAST
    )
    assert again.notices == []
    assert again.suppressed == ["sync_activity"]
    assert len(mailbox.messages) == 1
    assert len(receiver.at("/hook")) == 1

    with database.sessions.begin() as session:  # the cool-down has passed
        session.execute(update(AlertState).values(last_notified_at=utcnow() - timedelta(hours=2)))
    reminder = await check_and_alert(
        alert_settings, database.engine, options=NO_CARRIER_CHECKS, retry=FAST
    )
    assert [n.key for n in reminder.notices] == ["sync_activity"]
    assert len(mailbox.messages) == 2

    add_run(minutes_ago=1)  # syncing works again
    recovered = await check_and_alert(
        alert_settings, database.engine, options=NO_CARRIER_CHECKS, retry=FAST
    )
    assert [(n.kind, n.key) for n in recovered.notices] == [("recovery", "sync_activity")]
    assert "RECOVERED: sync_activity" in mail(mailbox)["Subject"]
    assert receiver.at("/hook")[-1].json()["kind"] == "recovery"
    assert receiver.at("/hook")[-1].headers["X-Parcelwatch-Event"] == "recovery"
    quiet = await check_and_alert(
        alert_settings, database.engine, options=NO_CARRIER_CHECKS, retry=FAST
    )
    assert quiet.notices == []
    assert quiet.status == "healthy"
    assert len(mailbox.messages) == 3


@pytest.mark.anyio
async def test_a_problem_whose_check_is_no_longer_run_is_announced_as_recovered(
    database: Database, alert_settings: Settings, mailbox: Mailbox, add_run: RunFactory
) -> None:
    add_run(minutes_ago=1)
    unconfigured = await check_and_alert(alert_settings, database.engine, providers={}, retry=FAST)
    assert [(n.key, n.severity) for n in unconfigured.notices] == [("carriers", "warning")]
    # a carrier is configured: the "carriers" check gives way to "carrier:ups"
    configured = await check_and_alert(
        alert_settings, database.engine, providers={"ups": FakeProvider(code="ups")}, retry=FAST
    )
    assert [(n.kind, n.key) for n in configured.notices] == [("recovery", "carriers")]
    assert "RECOVERED: carriers" in mail(mailbox)["Subject"]
    quiet = await check_and_alert(
        alert_settings, database.engine, providers={"ups": FakeProvider(code="ups")}, retry=FAST
    )
    assert quiet.notices == []
    assert len(mailbox.messages) == 2


@pytest.mark.anyio
async def test_a_change_of_severity_is_sent_inside_the_cooldown(
    database: Database, alert_settings: Settings, mailbox: Mailbox, add_run: RunFactory
) -> None:
    add_run(minutes_ago=3 * 60)  # warning: older than 2 x UPDATE_INTERVAL
    warned = await check_and_alert(
        alert_settings, database.engine, options=NO_CARRIER_CHECKS, retry=FAST
    )
    assert [(n.key, n.severity) for n in warned.notices] == [("sync_activity", "warning")]
    options = HealthOptions(alert_threshold_hours=2, check_carriers=False)
    worse = await check_and_alert(alert_settings, database.engine, options=options, retry=FAST)
    assert [(n.key, n.severity) for n in worse.notices] == [("sync_activity", "critical")]
    assert len(mailbox.messages) == 2


@pytest.mark.anyio
async def test_a_failing_channel_is_retried_reported_and_the_others_still_deliver(
    database: Database,
    mailbox: Mailbox,
    receiver: Receiver,
    add_run: RunFactory,
) -> None:
    settings = load_settings(
        **values(database, mailbox, receiver, alert_webhook_url=receiver.url + "/fail"),
        _env_file=None,
    )
    add_run(minutes_ago=8 * 60)
    run = await check_and_alert(settings, database.engine, options=NO_CARRIER_CHECKS, retry=FAST)
    outcome = {d.channel: d for d in run.deliveries}
    assert not outcome["webhook"].delivered
    assert outcome["webhook"].attempts == 3
    assert outcome["webhook"].error == "HTTP 500 from the receiver"
    assert len(receiver.at("/fail")) == 3
    assert outcome["email"].delivered
    assert outcome["slack"].delivered
    assert len(mailbox.messages) == 1
    # someone was told, so the cool-down holds
    with database.sessions() as session:
        assert session.get(AlertState, "sync_activity") is not None


@pytest.mark.anyio
async def test_when_every_channel_fails_the_alert_is_tried_again_next_run(
    database: Database, receiver: Receiver, add_run: RunFactory
) -> None:
    settings = load_settings(
        database_url=database.url.replace("postgresql+psycopg://", "postgresql://"),
        alert_webhook_enabled=True,
        alert_webhook_url=receiver.url + "/fail",
        _env_file=None,
    )
    add_run(minutes_ago=8 * 60)
    first = await check_and_alert(settings, database.engine, options=NO_CARRIER_CHECKS, retry=FAST)
    second = await check_and_alert(settings, database.engine, options=NO_CARRIER_CHECKS, retry=FAST)
    assert [n.key for n in first.notices] == [n.key for n in second.notices] == ["sync_activity"]


def test_secrets_never_appear_in_command_output(
    database: Database, monkeypatch: pytest.MonkeyPatch, mailbox: Mailbox
) -> None:
    closed = f"http://127.0.0.1:{mailbox.port + 1}"  # nothing listens there
    environment = values(
        database,
        mailbox,
        Receiver(url=closed),
        alert_smtp_pass="wrong-s3cret-password",
        alert_apprise_urls="",
    )
    for name, value in environment.items():
        monkeypatch.setenv(name.upper(), str(value))
    monkeypatch.setattr("parcelwatch.ops.alerts.dispatch.DEFAULT_RETRY", FAST)
    result = CliRunner().invoke(cli, ["alert", "--test-alert", "--json"])
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    failed = {d["channel"]: d["error"] for d in document["deliveries"] if not d["delivered"]}
    assert set(failed) == {"email", "slack", "webhook"}
    assert failed["email"] == "SMTP login refused (535)"
    everything = result.stdout + result.stderr
    for secret in ("wrong-s3cret-password", "slack-token-secret", WEBHOOK_SECRET):
        assert secret not in everything


def test_the_alert_command_exits_0_when_every_channel_delivered(
    database: Database,
    mailbox: Mailbox,
    receiver: Receiver,
    add_run: RunFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in values(database, mailbox, receiver).items():
        monkeypatch.setenv(
            name.upper(), str(value).lower() if isinstance(value, bool) else str(value)
        )
    add_run(minutes_ago=8 * 60)
    result = CliRunner().invoke(cli, ["alert", "--check-and-alert", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["status"] == "critical"
    assert {n["key"] for n in document["notices"]} >= {"sync_activity", "carriers"}
    assert all(d["delivered"] for d in document["deliveries"])
    assert "[parcelwatch] CRITICAL" in result.stderr  # the console channel
    assert len(mailbox.messages) == 1
    assert CliRunner().invoke(cli, ["alert"]).exit_code == 2  # neither flag


def test_the_server_evaluates_alerts_on_its_own_when_enabled(
    database: Database, mailbox: Mailbox, receiver: Receiver, add_run: RunFactory
) -> None:
    import time

    settings = load_settings(
        **values(database, mailbox, receiver, alerts_in_server=True), _env_file=None
    )
    add_run(minutes_ago=8 * 60)
    app = create_app(settings)
    app.state.alert_first_delay = 0.0
    app.state.health_providers = {"ups": FakeProvider(code="ups")}
    with TestClient(app):
        deadline = time.monotonic() + 10
        while not receiver.at("/hook") and time.monotonic() < deadline:
            time.sleep(0.05)
    assert receiver.at("/hook"), "the server sent no alert"
    assert receiver.at("/hook")[0].json()["notices"][0]["key"] == "sync_activity"


@pytest.mark.anyio
async def test_an_enabled_channel_without_its_address_is_reported_not_skipped(
    database: Database,
) -> None:
    settings = load_settings(
        database_url=database.url.replace("postgresql+psycopg://", "postgresql://"),
        alert_slack_enabled=True,
        _env_file=None,
    )
    deliveries = await send_test_alert(settings, retry=AlertRetryPolicy(attempts=1, backoff=0))
    assert [(d.channel, d.delivered, d.error) for d in deliveries] == [
        ("console", True, None),
        ("slack", False, "ALERT_SLACK_WEBHOOK_URL is not set"),
    ]


@pytest.mark.anyio
async def test_an_unreachable_database_is_still_announced(
    tmp_path: Any, receiver: Receiver
) -> None:
    from parcelwatch.db import create_db_engine

    url = f"sqlite:///{tmp_path}/missing/dir/parcelwatch.db"
    settings = load_settings(
        database_url=url,
        alert_webhook_enabled=True,
        alert_webhook_url=receiver.url + "/hook",
        _env_file=None,
    )
    engine = create_db_engine(settings.sqlalchemy_url)
    try:
        run = await check_and_alert(settings, engine, options=NO_CARRIER_CHECKS, retry=FAST)
    finally:
        engine.dispose()
    assert run.status == "critical"
    assert [(n.key, n.severity) for n in run.notices] == [("database", "critical")]
    assert receiver.at("/hook")[0].json()["notices"][0]["key"] == "database"
