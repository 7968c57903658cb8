"""When a person wants to hear: their time zone and quiet hours, and a tracker's notify mode
(all, delivered only, muted). Services only flush; the caller's transaction commits."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from zoneinfo import available_timezones

from sqlalchemy.orm import Session

from parcelwatch.errors import InvalidInput, NotFound
from parcelwatch.models import User
from parcelwatch.notifications.events import NOTIFY_MODES
from parcelwatch.notifications.service import require_account

__all__ = [
    "Preferences",
    "clean_notify",
    "format_clock",
    "get_preferences",
    "parse_clock",
    "set_preferences",
    "time_zones",
]


@dataclass(frozen=True, slots=True)
class Preferences:
    """When a person wants to hear: their IANA time zone, and quiet hours in it as minutes
    after midnight (both None: no quiet hours; start after end: they span midnight)."""

    timezone: str
    quiet_start_minute: int | None
    quiet_end_minute: int | None


@cache
def time_zones() -> frozenset[str]:
    """Every IANA time zone name this machine knows."""
    return frozenset(available_timezones())


def parse_clock(text: str, field: str) -> int:
    """`"22:30"` as minutes after midnight (1350); `InvalidInput` naming `field`."""
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text.strip())
    if match is None:
        raise InvalidInput(f"{field}: {text[:20]!r} is not a time of day such as 22:00")
    return int(match[1]) * 60 + int(match[2])


def format_clock(minute: int | None) -> str | None:
    return None if minute is None else f"{minute // 60:02d}:{minute % 60:02d}"


def get_preferences(session: Session, user_id: int | None) -> Preferences:
    user = session.get(User, require_account(user_id))
    if user is None:
        raise NotFound("That account no longer exists.")
    return Preferences(user.timezone, user.quiet_start_minute, user.quiet_end_minute)


def set_preferences(
    session: Session,
    user_id: int | None,
    *,
    timezone: str,
    quiet_start_minute: int | None,
    quiet_end_minute: int | None,
) -> Preferences:
    """Set a person's time zone and quiet hours (give both ends, or neither for none)."""
    if timezone not in time_zones():
        raise InvalidInput(
            f"timezone: {timezone[:64]!r} is not an IANA time zone name such as Europe/Berlin "
            "or America/New_York"
        )
    if (quiet_start_minute is None) != (quiet_end_minute is None):
        raise InvalidInput("quiet_start, quiet_end: give both ends of the quiet hours, or neither")
    for field, minute in (("quiet_start", quiet_start_minute), ("quiet_end", quiet_end_minute)):
        if minute is not None and not 0 <= minute < 24 * 60:
            raise InvalidInput(f"{field}: a time of day from 00:00 to 23:59")
    if quiet_start_minute is not None and quiet_start_minute == quiet_end_minute:
        raise InvalidInput("quiet_end: quiet hours that end when they start last no time")
    user = session.get(User, require_account(user_id), with_for_update=True)
    if user is None:
        raise NotFound("That account no longer exists.")
    user.timezone = timezone
    user.quiet_start_minute = quiet_start_minute
    user.quiet_end_minute = quiet_end_minute
    session.flush()
    return Preferences(user.timezone, user.quiet_start_minute, user.quiet_end_minute)


def clean_notify(mode: str) -> str:
    """A tracker's notify mode, or `InvalidInput` naming `notify`."""
    if mode not in NOTIFY_MODES:
        raise InvalidInput(f"notify: choose one of {', '.join(NOTIFY_MODES)}")
    return mode
