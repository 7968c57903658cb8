"""Alert channels: SMTP email, Slack incoming webhook, signed generic webhook, Apprise URLs
and the console. Each `send` raises `ChannelError` with a message free of secrets.

Webhook signature (when ALERT_WEBHOOK_SECRET is set): headers
`X-Parcelwatch-Timestamp: <unix seconds>` and
`X-Parcelwatch-Signature: sha256=<hex HMAC-SHA256 of "{timestamp}.{raw body}">`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import smtplib
import ssl
import sys
import time
import warnings
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from parcelwatch.config import Settings
from parcelwatch.ops.alerts.notices import AlertBatch

__all__ = [
    "AppriseChannel",
    "Channel",
    "ChannelError",
    "ConsoleChannel",
    "EmailChannel",
    "SlackChannel",
    "UnconfiguredChannel",
    "WebhookChannel",
    "RecipientsRefused",
    "enabled_channels",
    "send_smtp",
    "sign",
]

TIMEOUT_SECONDS = 15.0
SIGNATURE_HEADER = "X-Parcelwatch-Signature"
TIMESTAMP_HEADER = "X-Parcelwatch-Timestamp"
EVENT_HEADER = "X-Parcelwatch-Event"


class ChannelError(Exception):
    """A channel could not deliver; the message never contains a secret."""


class RecipientsRefused(ChannelError):
    """The SMTP server accepted the message for none or only some of its recipients."""


class Channel(Protocol):
    name: str

    async def send(self, batch: AlertBatch) -> None: ...


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` over `{timestamp}.{body}`, as receivers should recompute it."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def _http_failure(response: httpx.Response) -> ChannelError:
    return ChannelError(f"HTTP {response.status_code} from the receiver")


def _transport_failure(error: Exception) -> ChannelError:
    # httpx messages can carry the URL (a Slack webhook URL is a secret): name the kind only.
    return ChannelError(f"{type(error).__name__} while sending")


class ConsoleChannel:
    """Always on: the batch on standard error (never standard output: `--json` owns it)."""

    name = "console"

    async def send(self, batch: AlertBatch) -> None:
        sys.stderr.write(batch.text() + "\n\n")
        sys.stderr.flush()


class EmailChannel:
    """SMTP: implicit TLS on port 465, else STARTTLS when the server offers it; login when
    ALERT_SMTP_USER is set, never over plain text except to a loopback server."""

    name = "email"

    def __init__(self, settings: Settings) -> None:
        self.host = settings.alert_smtp_host
        self.port = settings.alert_smtp_port
        self.user = settings.alert_smtp_user
        self.password = (
            settings.alert_smtp_pass.get_secret_value() if settings.alert_smtp_pass else ""
        )
        self.sender = settings.alert_email_from
        self.recipients = list(settings.alert_email_recipients)

    async def send(self, batch: AlertBatch) -> None:
        if not self.recipients:
            raise ChannelError("ALERT_EMAIL_RECIPIENTS is empty")
        message = EmailMessage()
        message["Subject"] = batch.title
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain="parcelwatch")
        message["X-Parcelwatch-Event"] = batch.kind
        message.set_content(batch.text())
        try:
            await asyncio.to_thread(self._deliver, message)
        except ChannelError:
            raise
        except smtplib.SMTPAuthenticationError as error:
            raise ChannelError(f"SMTP login refused ({error.smtp_code})") from None
        except smtplib.SMTPException as error:
            raise ChannelError(f"SMTP error: {type(error).__name__}") from None
        except OSError as error:
            raise ChannelError(
                f"cannot reach {self.host}:{self.port}: {type(error).__name__}"
            ) from None

    def _deliver(self, message: EmailMessage) -> None:
        send_smtp(
            message,
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            sender=self.sender,
            recipients=self.recipients,
        )


def send_smtp(
    message: EmailMessage,
    *,
    host: str,
    port: int,
    user: str | None,
    password: str,
    sender: str,
    recipients: list[str],
    timeout: float = TIMEOUT_SECONDS,
) -> None:
    """Send one message (blocking; run it in a thread): implicit TLS on port 465, else
    STARTTLS when the server offers it; login when `user` is set, never over plain text
    except to a loopback server. Raises `ChannelError` or smtplib's and the socket's own."""
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if port == 465:
        smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    with smtp:
        smtp.ehlo()
        encrypted = port == 465
        if not encrypted and smtp.has_extn("starttls"):
            smtp.starttls(context=context)
            smtp.ehlo()
            encrypted = True
        if user:
            if not encrypted and not _is_loopback(host):
                raise ChannelError(
                    "the SMTP server offers no STARTTLS: refusing to send the password "
                    "in plain text"
                )
            smtp.login(user, password)
        refused = smtp.send_message(message, sender, recipients)
        if refused:
            raise RecipientsRefused(f"{len(refused)} recipient(s) refused")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SlackChannel:
    """Slack incoming webhook: `text` in mrkdwn, with ALERT_SLACK_CHANNEL as override."""

    name = "slack"

    def __init__(self, settings: Settings, client: httpx.AsyncClient) -> None:
        assert settings.alert_slack_webhook_url is not None
        self.url = settings.alert_slack_webhook_url.get_secret_value()
        self.channel = settings.alert_slack_channel
        self.client = client

    async def send(self, batch: AlertBatch) -> None:
        lines = "\n".join(f"• {notice.line()}" for notice in batch.notices)
        payload: dict[str, object] = {
            "text": f"*{batch.title}*\n{lines}\nOverall: {batch.overall} (host {batch.host})"
        }
        if self.channel:
            payload["channel"] = self.channel
        try:
            response = await self.client.post(self.url, json=payload, timeout=TIMEOUT_SECONDS)
        except httpx.HTTPError as error:
            raise _transport_failure(error) from None
        if response.status_code >= 300:
            raise _http_failure(response)


class WebhookChannel:
    """POSTs the batch as JSON; signed with HMAC-SHA256 when a secret is set."""

    name = "webhook"

    def __init__(self, settings: Settings, client: httpx.AsyncClient) -> None:
        assert settings.alert_webhook_url is not None
        self.url = settings.alert_webhook_url
        secret = settings.alert_webhook_secret
        self.secret = secret.get_secret_value() if secret else None
        self.client = client

    async def send(self, batch: AlertBatch) -> None:
        body = json.dumps(batch.as_dict(), separators=(",", ":"), sort_keys=True).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "parcelwatch-alerts",
            EVENT_HEADER: batch.kind,
            TIMESTAMP_HEADER: timestamp,
        }
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, timestamp, body)
        try:
            response = await self.client.post(
                self.url, content=body, headers=headers, timeout=TIMEOUT_SECONDS
            )
        except httpx.HTTPError as error:
            raise _transport_failure(error) from None
        if response.status_code >= 300:
            raise _http_failure(response)


class AppriseChannel:
    """One Apprise URL (`mailto://`, `tgram://`, `json://`, ...); named by its scheme only,
    because the rest of an Apprise URL usually holds a token."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.name = f"apprise:{urlsplit(url).scheme or 'unknown'}"

    async def send(self, batch: AlertBatch) -> None:
        delivered = await asyncio.to_thread(self._notify, batch)
        if not delivered:
            raise ChannelError("Apprise reported the notification as not delivered")

    def _notify(self, batch: AlertBatch) -> bool:
        # Apprise imports the deprecated `imghdr` lazily on Python 3.11/3.12: not our warning.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import apprise  # imported lazily: only deployments that use it pay for it

            sender = apprise.Apprise()
            if not sender.add(self.url):
                raise ChannelError("Apprise does not understand this URL")
            notify_type = {
                "critical": apprise.NotifyType.FAILURE,
                "warning": apprise.NotifyType.WARNING,
                "ok": apprise.NotifyType.SUCCESS,
            }.get(batch.severity, apprise.NotifyType.INFO)
            return bool(
                sender.notify(title=batch.title, body=batch.text(), notify_type=notify_type)
            )


class UnconfiguredChannel:
    """An enabled channel missing its address: reported as failed on every send."""

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        self.problem = problem

    async def send(self, batch: AlertBatch) -> None:
        raise ChannelError(self.problem)


def enabled_channels(settings: Settings, client: httpx.AsyncClient) -> list[Channel]:
    """The console, then every channel the settings enable."""
    channels: list[Channel] = [ConsoleChannel()]
    if settings.alert_email_enabled:
        channels.append(EmailChannel(settings))
    if settings.alert_slack_enabled:
        channels.append(
            SlackChannel(settings, client)
            if settings.alert_slack_webhook_url is not None
            else UnconfiguredChannel("slack", "ALERT_SLACK_WEBHOOK_URL is not set")
        )
    if settings.alert_webhook_enabled:
        channels.append(
            WebhookChannel(settings, client)
            if settings.alert_webhook_url
            else UnconfiguredChannel("webhook", "ALERT_WEBHOOK_URL is not set")
        )
    channels += [AppriseChannel(url) for url in settings.alert_apprise_urls]
    return channels


def secrets_of(settings: Settings) -> list[str]:
    """Every secret an alert error could echo, for redaction."""
    values = [
        settings.alert_smtp_pass.get_secret_value() if settings.alert_smtp_pass else "",
        settings.alert_webhook_secret.get_secret_value() if settings.alert_webhook_secret else "",
        settings.alert_slack_webhook_url.get_secret_value()
        if settings.alert_slack_webhook_url
        else "",
        *settings.alert_apprise_urls,
    ]
    return [value for value in values if value]
