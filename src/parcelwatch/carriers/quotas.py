"""A provider's allowance in windows (`<CARRIER>_QUOTA`): parsing and where a moment falls.

    DHL_QUOTA=1/s,250/day@00:00Z     1 call a second, 250 a day, the day starting 00:00 GMT
    FEDEX_QUOTA=1400/10s,100000/day  1,400 calls per 10 seconds, 100,000 per UTC day
    USPS_QUOTA=60/hour               60 calls an hour (the hour starts on the hour)

Each item is `AMOUNT/[MULTIPLE]UNIT[@HH:MM ZONE]`; the amount and period are read by the
`limits` library (`limits.parse`), so `1 per second`, `250/day` and `1400/10 seconds` all
work; `s`, `m`, `h`, `d` (and `sec`, `min`, `hr`) are accepted for the units. A window is
fixed on the clock, as carriers count: a day window starts at its reset time (default
00:00 UTC; the zone is `Z`, `UTC`, `GMT` or an offset such as `-05:00`), an hour window on
the hour.

Windows shorter than an hour (`COUNTED_FROM`) are paced: requests are spaced so no window of
that length ever holds more than its amount. Hour and day windows are counted: what was spent
is stored and shared (`sync/budgets.py`), so a restart or a second engine cannot spend them
twice.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import limits

__all__ = ["COUNTED_FROM", "QuotaWindow", "parse_quota", "quota_text"]

COUNTED_FROM = 3600.0  # seconds: windows this long or longer are counted, shorter ones paced
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_UNITS = {
    "s": "second",
    "sec": "second",
    "secs": "second",
    "m": "minute",
    "min": "minute",
    "mins": "minute",
    "h": "hour",
    "hr": "hour",
    "hrs": "hour",
    "d": "day",
}
_PERIOD = re.compile(
    r"^\s*(?P<amount>[^/\s]+)\s*(?:/|\s+per\s+)\s*(?P<multiple>\d*)\s*(?P<unit>\w+)\s*$"
)
_RESET = re.compile(
    r"^\s*(?P<hour>\d{1,2}):(?P<minute>\d{2})\s*"
    r"(?P<zone>Z|UTC|GMT|[+-]\d{2}:?\d{2})?\s*$",
    re.IGNORECASE,
)
FORM = "items such as 1/s, 200/minute, 60/hour or 250/day@00:00Z, separated by commas"


@dataclass(frozen=True, slots=True)
class QuotaWindow:
    """At most `amount` calls per `seconds`, the windows starting at `anchor` (+ k x seconds)."""

    amount: int
    seconds: float
    anchor: timedelta = timedelta(0)  # the reset time of day, in UTC (day windows)
    text: str = ""

    @property
    def counted(self) -> bool:
        """Counted and stored (hour, day) rather than paced (second, minute)."""
        return self.seconds >= COUNTED_FROM

    @property
    def rate(self) -> float:
        """Calls a second when spread evenly over the window."""
        return self.amount / self.seconds

    @property
    def name(self) -> str:
        """The window's length, as its key: `1s`, `10s`, `1m`, `1h`, `1d`."""
        for unit, seconds in (("d", 86400), ("h", 3600), ("m", 60)):
            if self.seconds % seconds == 0:
                return f"{int(self.seconds // seconds)}{unit}"
        return f"{self.seconds:g}s"

    def bounds(self, now: datetime) -> tuple[datetime, datetime]:
        """The window `now` falls in: (start, the moment it resets)."""
        since = (now - EPOCH - self.anchor).total_seconds()
        start = (
            EPOCH + self.anchor + timedelta(seconds=math.floor(since / self.seconds) * self.seconds)
        )
        return start, start + timedelta(seconds=self.seconds)


def _unit(unit: str) -> str:
    word = unit.lower()
    return _UNITS.get(word, word)


def _reset(text: str, item: str) -> timedelta:
    match = _RESET.match(text)
    if match is None:
        raise ValueError(f"'{item}': the reset time must look like @00:00Z or @09:00-05:00")
    hour, minute = int(match["hour"]), int(match["minute"])
    if hour > 23 or minute > 59:
        raise ValueError(f"'{item}': {hour:02d}:{minute:02d} is not a time of day")
    zone = (match["zone"] or "Z").upper()
    offset = timedelta(0)
    if zone[0] in "+-":
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        if offset >= timedelta(hours=24):
            raise ValueError(f"'{item}': {zone} is not a UTC offset")
        offset = -offset if zone[0] == "-" else offset
    return (timedelta(hours=hour, minutes=minute) - offset) % timedelta(days=1)


def _window(item: str) -> QuotaWindow:
    period, at, reset = item.partition("@")
    match = _PERIOD.match(period)
    if match is None:
        raise ValueError(f"'{item}' is not AMOUNT/PERIOD; expected {FORM}")
    amount = match["amount"]
    if not amount.isdigit() or int(amount) < 1:
        raise ValueError(f"'{item}': the amount must be a whole number of calls, at least 1")
    normal = f"{int(amount)}/{match['multiple'] or 1} {_unit(match['unit'])}"
    try:
        parsed = limits.parse(normal)
    except ValueError:
        raise ValueError(
            f"'{item}': unknown period '{match['unit']}'; use second, minute, hour or day"
        ) from None
    seconds = float(parsed.get_expiry())
    if parsed.GRANULARITY.name in ("month", "year"):
        raise ValueError(f"'{item}': the longest window is a day")
    anchor = timedelta(0)
    if at:
        if seconds < COUNTED_FROM:
            raise ValueError(f"'{item}': only hour and day windows have a reset time")
        anchor = _reset(reset, item) % timedelta(seconds=seconds)
    return QuotaWindow(amount=parsed.amount, seconds=seconds, anchor=anchor, text=item.strip())


@lru_cache(maxsize=256)
def parse_quota(text: str) -> tuple[QuotaWindow, ...]:
    """The windows of a `<CARRIER>_QUOTA` value, shortest first (`ValueError` says what is
    wrong with which item); "" is no window."""
    items = text.split(",") if text.strip() else []
    if any(not item.strip() for item in items):
        raise ValueError(f"an empty item in '{text}'; expected {FORM}")
    windows = [_window(item) for item in items]
    lengths = [window.seconds for window in windows]
    for length in sorted(set(lengths)):
        if lengths.count(length) > 1:
            twice = [w.text for w in windows if w.seconds == length]
            raise ValueError(f"two windows of the same length: {', '.join(twice)}")
    return tuple(sorted(windows, key=lambda window: window.seconds))


def quota_text(windows: tuple[QuotaWindow, ...]) -> str:
    return ",".join(window.text for window in windows)
