"""Helpers the carriers' pure `parse_*` functions share: typed payload access and times.

Time policy (the same for every carrier):
- a timestamp with an offset is converted to UTC and keeps that offset (`Z` or +00:00 gives
  the UTC time but says nothing of the local offset, so that stays None);
- a local time without an offset is combined with the carrier's GMT time or offset fields
  when it has them (USPS `GMTTimestamp`/`GMTOffset`, UPS `gmtDate`/`gmtTime`/`gmtOffset`);
- a local time with nothing else is read as UTC with `utc_offset_minutes=None`, which says
  "offset unknown" (the wall-clock time is kept, the ordering within a shipment holds);
- a value that does not parse is never replaced by "now": the field stays empty, and an
  event without a usable time is skipped (and logged).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from parcelwatch.domain import ShipmentStatus, TrackEvent
from parcelwatch.logs import get_logger

__all__ = [
    "EventTime",
    "as_dict",
    "as_list",
    "combine_local",
    "delivered_time",
    "log_skipped_event",
    "newest_first",
    "parse_offset",
    "parse_timestamp",
    "resolve_time",
    "settle_return",
    "text",
    "to_utc",
]

log = get_logger(__name__)

EventTime = tuple[datetime, int | None]  # aware UTC time, local offset in minutes (or None)

_OFFSET = re.compile(r"^(?:UTC|GMT)?\s*([+-])(\d{1,2}):?(\d{2})?$")


def as_dict(value: object) -> dict[str, Any]:
    """`value` when it is a JSON object, else an empty one (missing optional parts)."""
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def text(value: object) -> str | None:
    """A non-empty stripped string, or None (carriers send "", " " and null alike)."""
    if isinstance(value, str):
        stripped = " ".join(value.split())
        return stripped or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def parse_timestamp(value: object) -> datetime | None:
    """An ISO-8601 timestamp, naive or aware; None when it does not parse."""
    raw = text(value)
    if raw is None:
        return None
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    raw = raw.replace(" ", "T", 1)
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        return None


def parse_offset(value: object) -> int | None:
    """`-05:00`, `+0530`, `-5` or minutes as a number → minutes east of UTC."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raw = text(value)
    if raw is None:
        return None
    match = _OFFSET.match(raw)
    if not match:
        return None
    sign, hours, minutes = match.groups()
    total = int(hours) * 60 + int(minutes or 0)
    return -total if sign == "-" else total


def combine_local(date_text: object, time_text: object = None) -> datetime | None:
    """UPS-style `YYYYMMDD` + `HHMMSS` (time optional) → naive local datetime."""
    day = text(date_text)
    if day is None or not re.fullmatch(r"\d{8}", day):
        return None
    clock = text(time_text) or "000000"
    if not re.fullmatch(r"\d{4}(\d{2})?", clock):
        return None
    clock = clock.ljust(6, "0")
    try:
        return datetime.strptime(day + clock, "%Y%m%d%H%M%S")
    except ValueError:
        return None


def resolve_time(
    local: datetime | None,
    *,
    gmt: datetime | None = None,
    offset_minutes: int | None = None,
) -> EventTime | None:
    """Apply the module's time policy; None when there is no usable time at all."""
    if local is not None and local.tzinfo is not None:
        minutes = int((local.utcoffset() or timedelta(0)).total_seconds() // 60)
        # `Z` / +00:00 says the time is in UTC, not what the local offset was.
        return local.astimezone(UTC), minutes or None
    if gmt is not None:
        gmt_utc = gmt.replace(tzinfo=UTC) if gmt.tzinfo is None else gmt.astimezone(UTC)
        if offset_minutes is None and local is not None:
            offset_minutes = _offset_between(local, gmt_utc)
        return gmt_utc, offset_minutes
    if local is None:
        return None
    if offset_minutes is not None:
        return (local - timedelta(minutes=offset_minutes)).replace(tzinfo=UTC), offset_minutes
    return local.replace(tzinfo=UTC), None


def _offset_between(local: datetime, gmt_utc: datetime) -> int | None:
    """The local offset implied by a local and a UTC reading of the same moment, rounded to
    a quarter hour (carriers' GMT times carry seconds the local ones drop)."""
    minutes = (local - gmt_utc.replace(tzinfo=None)).total_seconds() / 60
    rounded = int(round(minutes / 15) * 15)
    return rounded if abs(rounded) <= 14 * 60 else None


def to_utc(value: object) -> datetime | None:
    """A carrier date-time field (ETA, delivery time) → aware UTC under the time policy."""
    resolved = resolve_time(parse_timestamp(value))
    return resolved[0] if resolved else None


def newest_first(events: Iterable[TrackEvent]) -> tuple[TrackEvent, ...]:
    """Events sorted newest first (stable, so same-minute scans keep the carrier's order)."""
    return tuple(sorted(events, key=lambda event: event.occurred_at, reverse=True))


def delivered_time(events: Iterable[TrackEvent]) -> datetime | None:
    """The time of the newest delivered scan, when the carrier gives no delivery field."""
    for event in newest_first(events):
        if event.status is ShipmentStatus.DELIVERED:
            return event.occurred_at
    return None


def settle_return(status: ShipmentStatus, events: Sequence[TrackEvent]) -> ShipmentStatus:
    """A delivery that follows a return-to-sender scan is the return reaching the sender:
    `returned`, not `delivered` (USPS and FedEx report it with their delivered code)."""
    if status is ShipmentStatus.DELIVERED and any(
        event.status is ShipmentStatus.RETURNING_TO_SENDER for event in events
    ):
        return ShipmentStatus.RETURNED
    return status


def log_skipped_event(carrier: str, raw_time: object, description: str | None) -> None:
    log.warning(
        "carrier event skipped: no usable time",
        carrier=carrier,
        raw_time=str(raw_time)[:64],
        description=description,
    )
