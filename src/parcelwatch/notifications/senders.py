"""The three channel kinds a notification goes out through: Standard Webhooks endpoints
(signed with the `standardwebhooks` package), email over the operator's SMTP server (a plain
text and an HTML part) and Apprise URLs (title and body). Each send returns a `SendResult`;
none raises for a failed delivery, and no error text carries a secret or a body.

What a failure means for the channel (`counts_against_channel`): a receiver that answers, but
refuses (a 4xx other than 408 and 429, a redirect, which is never followed), a target on a
private network, a refused recipient, an Apprise URL that fails, counts toward disabling the
channel. A receiver that is busy or away (429, 408, 5xx, a timeout, a broken connection) and
a problem of the operator's SMTP server are retried without counting.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import smtplib
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from functools import partial
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import aiohttp
from standardwebhooks.webhooks import Webhook

from parcelwatch import __version__
from parcelwatch.carriers.http import parse_retry_after
from parcelwatch.config import Settings
from parcelwatch.domain import utcnow
from parcelwatch.logs import redact, register_secrets
from parcelwatch.models import NotificationChannel
from parcelwatch.notifications import netguard
from parcelwatch.notifications.render import render
from parcelwatch.ops.alerts.channels import ChannelError, RecipientsRefused, send_smtp

__all__ = [
    "WEBHOOK_TIMEOUT",
    "ChannelTarget",
    "Outgoing",
    "SendResult",
    "Senders",
    "channel_secrets",
    "send_now",
    "signature_header",
]

WEBHOOK_TIMEOUT = 10.0  # seconds for the whole request, connect to the status line
SMTP_TIMEOUT = 20.0
APPRISE_TIMEOUT = 30.0
MAX_ERROR = 300
BLOCKING_SENDS = 8  # email and Apprise sends at once (each holds a thread)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ChannelTarget:
    """What a send needs of a channel, read before the send (no session held meanwhile)."""

    id: int
    user_id: int
    kind: str  # email | apprise | webhook
    name: str
    target: str
    secret: str | None = None
    previous_secret: str | None = None
    previous_secret_expires_at: datetime | None = None
    timezone: str = "UTC"

    @classmethod
    def of(cls, channel: NotificationChannel, *, timezone: str = "UTC") -> ChannelTarget:
        """From a channel row (read it, and its owner's time zone, before sending)."""
        return cls(
            id=channel.id,
            user_id=channel.user_id,
            kind=channel.kind,
            name=channel.name,
            target=channel.target,
            secret=channel.secret,
            previous_secret=channel.previous_secret,
            previous_secret_expires_at=channel.previous_secret_expires_at,
            timezone=timezone,
        )


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One notification to send: its stable `message_id` (the `webhook-id`) and payload."""

    message_id: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SendResult:
    delivered: bool
    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds the receiver asked us to wait
    counts_against_channel: bool = False
    latency_ms: float = 0.0


def _failure(
    error: str, *, counts: bool, status_code: int | None = None, retry_after: float | None = None
) -> SendResult:
    return SendResult(
        delivered=False,
        status_code=status_code,
        error=redact(error)[:MAX_ERROR],
        retry_after=retry_after,
        counts_against_channel=counts,
    )


_TOKEN_LIKE = re.compile(r"(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9._~+/=:-]{10,}")


def channel_secrets(channel: ChannelTarget) -> list[str]:
    """What of a channel must never reach a log line: the signing secrets, and the parts of
    its URL that look like credentials (the password, token-like path segments, query values
    and, in an Apprise URL, the user and a token where a host would be: tgram://id:token/).
    A real host name (it has a dot) stays readable."""
    found = [channel.secret, channel.previous_secret]
    if channel.kind in ("webhook", "apprise"):
        try:
            parts = urlsplit(channel.target)
            found += [parts.password, parts.username if channel.kind == "apprise" else None]
            address = parts.netloc.rsplit("@", 1)[-1]
            named_host = "." in (parts.hostname or "")
            pieces = [*parts.path.split("/"), *(value for _, value in parse_qsl(parts.query))]
            if not named_host:
                pieces += [address, *address.split(":")]
        except ValueError:
            pieces = []
        found += [unquote(piece) for piece in pieces if _TOKEN_LIKE.fullmatch(unquote(piece))]
    return [value for value in found if value]


def signature_header(
    channel: ChannelTarget, message_id: str, moment: datetime, body: str
) -> str | None:
    """`webhook-signature`: `v1,<base64>` with the channel's secret and, until the rotation's
    overlap ends, its previous one too (space-separated); None with no secret."""
    secrets = [channel.secret]
    expires = channel.previous_secret_expires_at
    if channel.previous_secret and (expires is None or expires > moment):
        secrets.append(channel.previous_secret)
    signatures = [
        Webhook(secret).sign(msg_id=message_id, timestamp=moment, data=body)
        for secret in secrets
        if secret
    ]
    return " ".join(signatures) or None


class Senders:
    """Sends to any channel; one HTTP client for every webhook (its own connection pool)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.allow_private = settings.notify_allow_private_networks
        self._registered: set[tuple[int, str, str | None, str | None]] = set()
        # SMTP and Apprise block: their own threads, so a slow mail server never holds up the
        # dispatcher's database work (or anyone else's) on the default executor.
        self._blocking = ThreadPoolExecutor(
            max_workers=BLOCKING_SENDS, thread_name_prefix="parcelwatch-notify"
        )
        self._session: aiohttp.ClientSession | None = None

    def _webhook_session(self) -> aiohttp.ClientSession:
        """aiohttp directly (made on first use, in the running loop): a webhook is the one
        request the dispatcher makes per delivery, and httpx's layers on top of it were most
        of the dispatcher's CPU."""
        if self._session is None:
            self._session = _session(aiohttp.TCPConnector(limit=200, limit_per_host=100))
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._blocking.shutdown(wait=False, cancel_futures=True)

    async def _in_thread(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._blocking, call)

    async def send(self, channel: ChannelTarget, messages: Sequence[Outgoing]) -> SendResult:
        """Send `messages` (one for a webhook; one or more, as one message, otherwise)."""
        known = (channel.id, channel.target, channel.secret, channel.previous_secret)
        if known not in self._registered:  # registering re-sorts every secret: once each
            register_secrets(channel_secrets(channel))
            self._registered.add(known)
        started = time.perf_counter()
        if channel.kind == "webhook":
            if len(messages) != 1:
                raise ValueError("a webhook delivery carries exactly one notification")
            result = await self._webhook(channel, messages[0])
        elif channel.kind == "email":
            result = await self._email(channel, messages)
        elif channel.kind == "apprise":
            result = await self._apprise(channel, messages)
        else:
            result = _failure(f"unknown channel kind {channel.kind!r}", counts=True)
        latency = (time.perf_counter() - started) * 1000
        return SendResult(
            delivered=result.delivered,
            status_code=result.status_code,
            error=result.error,
            retry_after=result.retry_after,
            counts_against_channel=result.counts_against_channel,
            latency_ms=round(latency, 3),
        )

    # -- webhooks ------------------------------------------------------------------------

    async def _webhook(self, channel: ChannelTarget, message: Outgoing) -> SendResult:
        body = json.dumps(message.payload, separators=(",", ":"), ensure_ascii=False)
        moment = utcnow()
        try:
            signature = signature_header(channel, message.message_id, moment, body)
        except (ValueError, TypeError, RuntimeError):  # binascii.Error is a ValueError
            return _failure("the signing secret is not a valid whsec_ secret", counts=True)
        if signature is None:
            return _failure("the channel has no signing secret", counts=True)
        try:
            target = await netguard.pinned(channel.target, self.allow_private)
        except netguard.TargetRefused as refused:
            return _failure(str(refused), counts=True)
        headers = {
            "Content-Type": "application/json",
            "webhook-id": message.message_id,
            "webhook-timestamp": str(int(moment.timestamp())),
            "webhook-signature": signature,
        }
        if target.host_header:
            headers["Host"] = target.host_header
        try:
            if target.sni_hostname:
                # A pinned TLS connection is not pooled: the pool knows it by address, and
                # another host name on the same address must not reuse its verification.
                async with _session(aiohttp.TCPConnector(force_close=True)) as one_off:
                    status, retry_after = await _post(one_off, target, body, headers)
            else:
                status, retry_after = await _post(self._webhook_session(), target, body, headers)
        except TimeoutError:
            return _failure(f"no answer within {WEBHOOK_TIMEOUT:g} s", counts=False)
        except (aiohttp.ClientError, OSError) as error:
            # Their messages can carry the URL (it may hold a token): name the kind only.
            return _failure(f"{type(error).__name__} while sending", counts=False)
        if 200 <= status < 300:
            return SendResult(delivered=True, status_code=status)
        if 300 <= status < 400:
            return _failure(
                f"HTTP {status}: a redirect, which is not followed", counts=True, status_code=status
            )
        transient = status in (408, 429) or status >= 500
        return _failure(
            f"HTTP {status} from the receiver",
            counts=not transient,
            status_code=status,
            retry_after=retry_after,
        )

    # -- email ---------------------------------------------------------------------------

    def _email_message(self, channel: ChannelTarget, messages: Sequence[Outgoing]) -> EmailMessage:
        rendered = render([m.payload for m in messages], timezone=channel.timezone)
        sender = self.settings.notify_email_from or self.settings.alert_email_from
        email = EmailMessage()
        email["Subject"] = rendered.subject
        email["From"] = sender
        email["To"] = channel.target
        email["Date"] = formatdate(localtime=False)
        if len(messages) == 1:  # the same on every try, so a mail client can drop a repeat
            email["Message-ID"] = f"<{messages[0].message_id}@parcelwatch>"
        else:
            email["Message-ID"] = make_msgid(domain="parcelwatch")
        email["X-Parcelwatch-Message-Ids"] = " ".join(m.message_id for m in messages)
        email.set_content(rendered.text)
        email.add_alternative(rendered.html, subtype="html")
        return email

    async def _email(self, channel: ChannelTarget, messages: Sequence[Outgoing]) -> SendResult:
        settings = self.settings
        email = self._email_message(channel, messages)
        password = settings.alert_smtp_pass.get_secret_value() if settings.alert_smtp_pass else ""
        try:
            await self._in_thread(
                partial(
                    send_smtp,
                    email,
                    host=settings.alert_smtp_host,
                    port=settings.alert_smtp_port,
                    user=settings.alert_smtp_user,
                    password=password,
                    sender=str(email["From"]),
                    recipients=[channel.target],
                    timeout=SMTP_TIMEOUT,
                )
            )
        except (RecipientsRefused, smtplib.SMTPRecipientsRefused):
            return _failure("the SMTP server refused the address", counts=True)
        except ChannelError as error:
            return _failure(str(error), counts=False)
        except smtplib.SMTPAuthenticationError as error:
            return _failure(f"SMTP login refused ({error.smtp_code})", counts=False)
        except smtplib.SMTPResponseException as error:
            return _failure(f"SMTP error {error.smtp_code}", counts=False)
        except smtplib.SMTPException as error:
            return _failure(f"SMTP error: {type(error).__name__}", counts=False)
        except OSError as error:
            where = f"{settings.alert_smtp_host}:{settings.alert_smtp_port}"
            return _failure(f"cannot reach {where}: {type(error).__name__}", counts=False)
        return SendResult(delivered=True)

    # -- Apprise -------------------------------------------------------------------------

    async def _apprise(self, channel: ChannelTarget, messages: Sequence[Outgoing]) -> SendResult:
        rendered = render([m.payload for m in messages], timezone=channel.timezone)
        try:
            async with asyncio.timeout(APPRISE_TIMEOUT):
                return await self._in_thread(
                    partial(self._apprise_notify, channel.target, rendered.subject, rendered.text)
                )
        except TimeoutError:
            return _failure(f"Apprise did not finish within {APPRISE_TIMEOUT:g} s", counts=False)

    def _apprise_notify(self, url: str, title: str, body: str) -> SendResult:
        try:
            netguard.check_apprise_url(url, self.allow_private)
        except netguard.TargetRefused as refused:
            return _failure(str(refused), counts=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import apprise

            sender = apprise.Apprise()
            if not sender.add(url):
                return _failure("Apprise does not understand this URL", counts=True)
            capture = apprise.LogCapture(level=logging.WARNING)  # type: ignore[no-untyped-call]
            with capture as captured:
                delivered = bool(sender.notify(title=title, body=body))
        if delivered:
            return SendResult(delivered=True)
        lines = [line.split(" - ", 2)[-1] for line in captured.getvalue().splitlines() if line]
        detail = f": {lines[-1]}" if lines else ""
        return _failure(f"Apprise reported the notification as not delivered{detail}", counts=True)


async def send_now(settings: Settings, channel: ChannelTarget, message: Outgoing) -> SendResult:
    """One send outside the outbox, for a caller that must answer with the result at once
    (nothing is recorded, nothing retried). A "send a test" that goes through the outbox (a
    `notification.test` notification and its delivery, then `wake_dispatchers()`) is logged
    and retried like any other; prefer it."""
    senders = Senders(settings)
    try:
        return await senders.send(channel, [message])
    finally:
        await senders.aclose()


def _session(connector: aiohttp.TCPConnector) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT),
        headers={"User-Agent": f"parcelwatch/{__version__}"},
        auto_decompress=False,
    )


async def _post(
    session: aiohttp.ClientSession,
    target: netguard.PinnedTarget,
    body: str,
    headers: dict[str, str],
) -> tuple[int, float | None]:
    """POST and return the status and Retry-After; redirects are not followed, and the
    answer's body is never read (a receiver cannot make us hold a large one)."""
    async with session.post(
        target.url,
        data=body.encode(),
        headers=headers,
        allow_redirects=False,
        server_hostname=target.sni_hostname,
    ) as response:
        return response.status, parse_retry_after(response.headers.get("Retry-After"))
