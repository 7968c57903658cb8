"""What a person reads: the subject, plain-text and HTML bodies of an email, and the title and
body of an Apprise message, rendered from notification payloads (one, or several of the same
channel grouped). Only the payloads are read, so a message carries nothing but its owner's
notifications."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from parcelwatch.domain import ShipmentStatus
from parcelwatch.notifications.events import EventType, title
from parcelwatch.web.views import carrier_name, status_view

__all__ = ["RenderedMessage", "render"]

Payload = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    subject: str
    text: str
    html: str


@cache
def _environment(autoescape: bool) -> Environment:
    return Environment(
        loader=PackageLoader("parcelwatch.notifications", "templates"),
        autoescape=select_autoescape(default=True) if autoescape else False,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=False,
    )


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _moment(value: object, zone: ZoneInfo, *, date_only: bool = False) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    midnight_utc = moment.utcoffset() == timedelta(0) and moment.time() == time(0)
    if moment.tzinfo is not None and not (date_only and midnight_utc):
        # A date-only ETA is stored as midnight UTC: converted, it would move a day back.
        moment = moment.astimezone(zone)
    if date_only:
        return moment.strftime("%A %-d %B %Y")
    return moment.strftime("%-d %B %Y, %H:%M ") + (moment.tzname() or "")


def _place(location: object) -> str | None:
    if not isinstance(location, Mapping):
        return None
    parts = [location.get(key) for key in ("city", "state", "postal_code", "country")]
    text = ", ".join(str(part) for part in parts if part)
    return text or None


def _link(value: object) -> str | None:
    """Only http(s) links make it into a message."""
    if isinstance(value, str) and value.startswith(("https://", "http://")):
        return value
    return None


def _name(shipment: Mapping[str, Any], tracker: Mapping[str, Any]) -> str:
    for candidate in (tracker.get("description"), shipment.get("description")):
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    carrier = carrier_name(str(shipment.get("carrier") or ""))
    return f"{carrier} {shipment.get('tracking_number') or ''}".strip() or "Your parcel"


def _status(value: object) -> tuple[str | None, str | None]:
    try:
        view = status_view(ShipmentStatus(str(value)))
    except ValueError:
        return None, None
    return view.label, view.hint if view.hint != view.label else None


def _event_type(payload: Payload) -> EventType | None:
    try:
        return EventType(str(payload.get("type")))
    except ValueError:
        return None


def _item(payload: Payload, zone: ZoneInfo) -> dict[str, Any]:
    """The lines of one notification, each None when the payload does not have it."""
    data = payload.get("data") or {}
    event_type = _event_type(payload)
    if "channel" in data:  # notification.test, channel.disabled
        headline = title(event_type, "") if event_type else "parcelwatch"
        return {
            "name": None,
            "headline": headline,
            "status": None,
            "status_hint": None,
            "carrier_line": None,
            "where": None,
            "latest": None,
            "eta": None,
            "signed_by": None,
            "message": str(data.get("message") or "") or None,
            "link": None,
        }
    shipment: Mapping[str, Any] = data.get("shipment") or {}
    tracker: Mapping[str, Any] = data.get("tracker") or {}
    events: Sequence[Mapping[str, Any]] = data.get("events") or []
    name = _name(shipment, tracker)
    status, hint = _status(shipment.get("status"))
    newest = max(events, key=lambda e: str(e.get("occurred_at") or ""), default=None)
    latest = None
    where = None
    if newest is not None:
        where = _place(newest.get("location"))
        when = _moment(newest.get("occurred_at"), zone)
        description = newest.get("description")
        latest = " · ".join(str(part) for part in (when, description) if part) or None
    carrier = carrier_name(str(shipment.get("carrier") or ""))
    number = shipment.get("tracking_number")
    final = ShipmentStatus.DELIVERED.value == shipment.get("status")
    return {
        "name": name,
        "headline": title(event_type, name) if event_type else name,
        "status": status,
        "status_hint": hint,
        "carrier_line": f"{carrier} {number}" if number else None,
        "where": where,
        "latest": latest,
        "eta": None if final else _moment(shipment.get("estimated_delivery"), zone, date_only=True),
        "signed_by": shipment.get("signed_by") or None,
        "message": None,
        "link": _link(shipment.get("url")) or _link(shipment.get("tracking_url")),
    }


def _subject(items: Sequence[Mapping[str, Any]]) -> str:
    if len(items) == 1:
        return str(items[0]["headline"])
    names = list(dict.fromkeys(str(item["name"]) for item in items if item["name"]))
    if len(names) == 1:
        return f"{names[0]}: {len(items)} updates"
    return f"parcelwatch: {len(items)} updates"


def render(payloads: Sequence[Payload], *, timezone: str | None = None) -> RenderedMessage:
    """One message for one or more payloads of one person (grouped, oldest first), times in
    their time zone."""
    if not payloads:
        raise ValueError("nothing to render")
    zone = _zone(timezone)
    items = [_item(payload, zone) for payload in payloads]
    subject = _subject(items)
    context = {"items": items, "subject": subject, "footer": None}
    text = _environment(False).get_template("message.txt").render(context)
    html = _environment(True).get_template("message.html").render(context)
    return RenderedMessage(subject=subject, text=text, html=html)
