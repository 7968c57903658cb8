"""A person's notification channels (email, Apprise, Standard Webhooks) with the event types
each wants, and webhook secrets with their rotation (time zone and quiet hours:
`notifications.preferences`).

Shared by the API, the dashboard and the CLI. A channel is its owner's alone: anyone else
asking for it (members, admins, ADMIN_API_KEY) gets `NotFound`, as for a missing one. A
target is checked when it is set (address form, URL scheme, no private network unless
NOTIFY_ALLOW_PRIVATE_NETWORKS); what an answer shows of it is `masked_target`. Services only
flush; the caller's transaction commits.
"""

from __future__ import annotations

import base64
import re
import secrets
import unicodedata
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from parcelwatch.domain import utcnow
from parcelwatch.errors import Conflict, Forbidden, InvalidInput, NotFound
from parcelwatch.models import NotificationChannel
from parcelwatch.notifications.events import (
    CHANNEL_KINDS,
    DEFAULT_EVENT_TYPES,
    MILESTONE_TYPES,
)
from parcelwatch.notifications.netguard import check_url

__all__ = [
    "MAX_CHANNELS",
    "ROTATION_OVERLAP",
    "UNSET",
    "Issued",
    "clean_event_types",
    "clean_target",
    "create_channel",
    "delete_channel",
    "every_channel",
    "get_channel",
    "list_channels",
    "masked_target",
    "new_secret",
    "owner_of_channel",
    "require_account",
    "rotate_secret",
    "update_channel",
]

MAX_CHANNELS: Final = 50  # per person: more is a script gone wrong
MAX_NAME: Final = 100
MAX_TARGET: Final = 2000
# After a rotation the previous secret signs too, so receivers can switch without a gap.
ROTATION_OVERLAP: Final = timedelta(hours=24)
SECRET_PREFIX: Final = "whsec_"
NO_ACCOUNT: Final = (
    "The ADMIN_API_KEY belongs to no account and has no notification settings: use a "
    "personal API token."
)
_EMAIL: Final = re.compile(r"[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+")
# Apprise services that talk to a host the person names (a self-hosted server): that host is
# checked like a webhook's. The others (Telegram, Discord, Pushover…) go to their vendor.
_SELF_HOSTED_APPRISE: Final = frozenset(
    {"json", "jsons", "xml", "xmls", "form", "forms", "gotify", "gotifys", "apprise", "apprises"}
    | {"mmost", "mmosts", "rocket", "rockets", "matrix", "matrixs", "ntfy", "ntfys", "mqtt"}
)


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


@dataclass(frozen=True, slots=True)
class Issued:
    """A channel just made or rotated, with its webhook secret: the only time it is shown."""

    channel: NotificationChannel
    secret: str | None


def require_account(user_id: int | None) -> int:
    """`user_id`, or `Conflict` for ADMIN_API_KEY (no account, so no settings)."""
    if user_id is None:
        raise Conflict(NO_ACCOUNT)
    return user_id


def new_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` and 24 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def list_channels(session: Session, user_id: int | None) -> list[NotificationChannel]:
    """A person's channels, oldest first (none for ADMIN_API_KEY)."""
    if user_id is None:
        return []
    return list(
        session.scalars(
            select(NotificationChannel)
            .where(NotificationChannel.user_id == user_id)
            .order_by(NotificationChannel.id)
        )
    )


def every_channel(session: Session) -> list[NotificationChannel]:
    """Every person's channels, by owner then age: for the operator's command line only."""
    return list(
        session.scalars(
            select(NotificationChannel).order_by(
                NotificationChannel.user_id, NotificationChannel.id
            )
        )
    )


def owner_of_channel(session: Session, channel_id: int) -> int:
    """Whose channel `channel_id` is (the command line acts for its owner); `NotFound`."""
    owner = session.scalar(
        select(NotificationChannel.user_id).where(NotificationChannel.id == channel_id)
    )
    if owner is None:
        raise NotFound(f"Notification channel {channel_id} does not exist.")
    return owner


def get_channel(
    session: Session, user_id: int | None, channel_id: int, *, for_update: bool = False
) -> NotificationChannel:
    """`user_id`'s channel `channel_id`; `NotFound` for another person's as for a missing one."""
    query = select(NotificationChannel).where(
        NotificationChannel.id == channel_id, NotificationChannel.user_id == user_id
    )
    if for_update:
        query = query.with_for_update()
    channel = session.scalar(query) if user_id is not None else None
    if channel is None:
        raise NotFound(f"Notification channel {channel_id} does not exist.")
    return channel


def clean_event_types(values: Iterable[str] | None) -> list[str]:
    """The event types as stored (unique, in the order of `MILESTONE_TYPES`); the defaults
    when None; `InvalidInput` naming one that is not an event type."""
    if values is None:
        values = [event.value for event in DEFAULT_EVENT_TYPES]
    known = [event.value for event in MILESTONE_TYPES]
    chosen = set()
    for value in values:
        if value not in known:
            raise InvalidInput(
                f"event_types: {value[:80]!r} is not an event type; choose from " + ", ".join(known)
            )
        chosen.add(value)
    return [value for value in known if value in chosen]


def _clean_name(name: str) -> str:
    text = " ".join(unicodedata.normalize("NFKC", name).split())
    if not text or len(text) > MAX_NAME:
        raise InvalidInput(f"name: 1 to {MAX_NAME} characters")
    for character in text:
        if unicodedata.category(character) == "Cc":
            raise InvalidInput(f"name: contains a control character (U+{ord(character):04X})")
    return text


def clean_target(kind: str, target: str, *, allow_private: bool) -> str:
    """`target` as stored for a channel of `kind`, or `InvalidInput` saying what is wrong."""
    if kind not in CHANNEL_KINDS:
        raise InvalidInput(f"kind: choose one of {', '.join(CHANNEL_KINDS)}")
    text = target.strip()
    if not text or len(text) > MAX_TARGET or any(ord(c) < 33 or ord(c) == 127 for c in text):
        raise InvalidInput(f"target: 1 to {MAX_TARGET} characters, with no spaces or controls")
    if kind == "email":
        if len(text) > 254 or not _EMAIL.fullmatch(text):
            raise InvalidInput(f"target: {text[:80]!r} is not an email address")
        return text
    if kind == "webhook":
        try:
            check_url(text, allow_private=allow_private)
        except ValueError as error:
            raise InvalidInput(f"target: the webhook URL {error}") from None
        return text
    return _clean_apprise(text, allow_private=allow_private)


def _apprise_knows(url: str) -> bool:
    # Apprise imports the deprecated `imghdr` lazily on Python 3.11/3.12: not our warning.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import apprise  # imported on use: it loads every notification service it knows

        return apprise.Apprise.instantiate(url, suppress_exceptions=True) is not None


def _clean_apprise(text: str, *, allow_private: bool) -> str:
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if not scheme or not _apprise_knows(text):
        raise InvalidInput(
            "target: not an Apprise URL Apprise knows (such as ntfy://topic, "
            "tgram://token/chat or discord://id/token); see the Apprise wiki"
        )
    if scheme in _SELF_HOSTED_APPRISE:
        parts = urlsplit(text)
        # ntfy://topic is a topic on ntfy.sh; ntfy://host/topic names a server of one's own.
        if parts.hostname and (not scheme.startswith("ntfy") or parts.path.strip("/")):
            web = "https" if scheme.endswith("s") else "http"
            host = parts.netloc.rpartition("@")[2]
            try:
                check_url(f"{web}://{host}/", allow_private=allow_private)
            except ValueError as error:
                raise InvalidInput(f"target: the Apprise URL {error}") from None
    return text


def masked_target(channel: NotificationChannel) -> str:
    """What answers and pages show of a target: an email address whole; a webhook URL by its
    host and first path segment, without credentials or query values (Slack, Discord and Home
    Assistant put the secret in the rest of the path); an Apprise URL (tokens all through it)
    by its scheme."""
    if channel.kind == "email":
        return channel.target
    if channel.kind == "apprise":
        return channel.target.split("://", 1)[0] + "://…"
    parts = urlsplit(channel.target)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"…@{host}" if "@" in parts.netloc else host
    segments = [segment for segment in parts.path.split("/") if segment]
    path = "/" + "/".join(segments[:1] + ["…"] * (len(segments) > 1)) if segments else ""
    query = "&".join(
        f"{pair.split('=', 1)[0]}=…" if "=" in pair else "…"
        for pair in parts.query.split("&")
        if pair
    )
    return urlunsplit((parts.scheme, netloc, path, query, ""))


def _default_name(kind: str, target: str) -> str:
    if kind == "email":
        return target[:MAX_NAME]
    if kind == "webhook":
        return f"Webhook to {urlsplit(target).hostname}"[:MAX_NAME]
    return f"Apprise ({target.split('://', 1)[0]})"[:MAX_NAME]


def _check_instance_wide(kind: str, instance_wide: bool, *, admin: bool) -> None:
    if not instance_wide:
        return
    if kind != "webhook":
        raise InvalidInput("instance_wide: only a webhook can hear about every tracker")
    if not admin:
        raise Forbidden("instance_wide: only the owner and admins (admin scope) may make one")


def create_channel(
    session: Session,
    *,
    user_id: int | None,
    kind: str,
    target: str,
    name: str | None = None,
    event_types: Iterable[str] | None = None,
    instance_wide: bool = False,
    admin: bool = False,
    allow_private: bool = False,
) -> Issued:
    """A new channel of `user_id` (a webhook gets its secret, returned this once). `admin`:
    the caller may make an instance-wide webhook."""
    owner = require_account(user_id)
    cleaned = clean_target(kind, target, allow_private=allow_private)
    types = clean_event_types(event_types)
    _check_instance_wide(kind, instance_wide, admin=admin)
    if len(list_channels(session, owner)) >= MAX_CHANNELS:
        raise Conflict(f"At most {MAX_CHANNELS} notification channels per person.")
    secret = new_secret() if kind == "webhook" else None
    channel = NotificationChannel(
        user_id=owner,
        kind=kind,
        name=_clean_name(name) if name and name.strip() else _default_name(kind, cleaned),
        target=cleaned,
        event_types=types,
        instance_wide=instance_wide,
        enabled=True,
        secret=secret,
    )
    session.add(channel)
    session.flush()
    return Issued(channel, secret)


def update_channel(
    session: Session,
    *,
    user_id: int | None,
    channel_id: int,
    name: str | _Unset = UNSET,
    target: str | _Unset = UNSET,
    event_types: Iterable[str] | _Unset = UNSET,
    enabled: bool | _Unset = UNSET,
    instance_wide: bool | _Unset = UNSET,
    admin: bool = False,
    allow_private: bool = False,
) -> NotificationChannel:
    """Change a channel; every value is checked before any is changed. Switching a channel
    on again (one the dispatcher switched off after failures) clears its failure count."""
    channel = get_channel(session, user_id, channel_id, for_update=True)
    cleaned_name = name if isinstance(name, _Unset) else _clean_name(name)
    cleaned_target = (
        target
        if isinstance(target, _Unset)
        else clean_target(channel.kind, target, allow_private=allow_private)
    )
    types = event_types if isinstance(event_types, _Unset) else clean_event_types(event_types)
    if not isinstance(instance_wide, _Unset) and instance_wide != channel.instance_wide:
        _check_instance_wide(channel.kind, instance_wide, admin=admin)
        channel.instance_wide = instance_wide
    if not isinstance(cleaned_name, _Unset):
        channel.name = cleaned_name
    if not isinstance(cleaned_target, _Unset):
        channel.target = cleaned_target
    if not isinstance(types, _Unset):
        channel.event_types = types
    if not isinstance(enabled, _Unset):
        if enabled and not channel.enabled:
            channel.consecutive_failures = 0
            channel.disabled_at = None
            channel.disabled_reason = None
        channel.enabled = enabled
    session.flush()
    return channel


def delete_channel(session: Session, *, user_id: int | None, channel_id: int) -> None:
    """Remove a channel with its delivery log."""
    session.delete(get_channel(session, user_id, channel_id, for_update=True))
    session.flush()


def rotate_secret(
    session: Session,
    *,
    user_id: int | None,
    channel_id: int,
    overlap: timedelta = ROTATION_OVERLAP,
    now: datetime | None = None,
) -> Issued:
    """A new signing secret for a webhook, returned this once; the old one keeps signing
    beside it for `overlap`, so receivers can switch without missing a message."""
    channel = get_channel(session, user_id, channel_id, for_update=True)
    if channel.kind != "webhook":
        raise Conflict(f"Only webhooks have a signing secret; this channel is {channel.kind}.")
    secret = new_secret()
    channel.previous_secret = channel.secret
    channel.previous_secret_expires_at = (now or utcnow()) + overlap
    channel.secret = secret
    session.flush()
    return Issued(channel, secret)
