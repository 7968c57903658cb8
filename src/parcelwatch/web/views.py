"""Presentation tables and filters for the dashboard: status labels and tones, times, carriers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from parcelwatch.carriers.catalog import CARRIERS
from parcelwatch.domain import ShipmentStatus

__all__ = [
    "STATUS_VIEWS",
    "StatusView",
    "carrier_name",
    "event_place",
    "running_late",
    "status_view",
    "utc_text",
]


@dataclass(frozen=True, slots=True)
class StatusView:
    """How a status looks: a label (never colour alone), a tone for the colour, a symbol."""

    label: str
    tone: str  # css class suffix: ok, info, move, wait, warn, bad, muted
    symbol: str
    hint: str


# Explicit table: every normalized status has a label and tone; no fallback guessing.
STATUS_VIEWS: Final[dict[ShipmentStatus, StatusView]] = {
    ShipmentStatus.PENDING: StatusView("Waiting for carrier", "muted", "○", "Registered"),
    ShipmentStatus.INFO_RECEIVED: StatusView(
        "Label created", "wait", "◔", "The carrier does not have the parcel yet"
    ),
    ShipmentStatus.IN_TRANSIT: StatusView("In transit", "move", "➜", "Moving"),
    ShipmentStatus.OUT_FOR_DELIVERY: StatusView(
        "Out for delivery", "info", "➤", "On the vehicle for delivery"
    ),
    ShipmentStatus.AVAILABLE_FOR_PICKUP: StatusView(
        "Ready for pickup", "info", "⌂", "Waiting at a pickup point"
    ),
    ShipmentStatus.DELIVERY_ATTEMPTED: StatusView(
        "Delivery attempted", "warn", "!", "The carrier will try again"
    ),
    ShipmentStatus.EXCEPTION: StatusView("Exception", "bad", "✕", "Needs attention"),
    ShipmentStatus.RETURNING_TO_SENDER: StatusView(
        "Returning to sender", "warn", "↩", "A return is under way"
    ),
    ShipmentStatus.DELIVERED: StatusView("Delivered", "ok", "✓", "Delivered"),
    ShipmentStatus.RETURNED: StatusView("Returned", "muted", "↩", "Back with the sender"),
    ShipmentStatus.CANCELLED: StatusView("Cancelled", "muted", "⊘", "Label voided"),
    ShipmentStatus.EXPIRED: StatusView("Expired", "muted", "⌛", "Tracking stopped"),
    ShipmentStatus.UNKNOWN: StatusView(
        "Unknown", "warn", "?", "The carrier said something parcelwatch does not know"
    ),
}


def status_view(status: ShipmentStatus | str) -> StatusView:
    return STATUS_VIEWS[ShipmentStatus(status)]


def carrier_name(code: str) -> str:
    info = CARRIERS.get(code)
    return info.name if info else code


def utc_text(moment: datetime | None, *, date_only: bool = False) -> str:
    """The server-side fallback shown before (or without) JavaScript: UTC, unambiguous."""
    if moment is None:
        return "—"
    moment = moment.astimezone(UTC)
    if date_only:
        return moment.strftime("%a %d %b %Y")
    return moment.strftime("%d %b %Y, %H:%M UTC")


def iso(moment: datetime | None) -> str:
    return moment.astimezone(UTC).isoformat() if moment else ""


def event_place(city: str | None, state: str | None, country: str | None) -> str:
    parts = [part for part in (city.title() if city else None, state, country) if part]
    return ", ".join(parts)


def web_url(url: str | None) -> str | None:
    """The URL when it is a web address; carrier-supplied links never become `javascript:`."""
    if url and url.strip().lower().startswith(("https://", "http://")):
        return url.strip()
    return None


def seconds_until(moment: datetime | None, now: datetime) -> int:
    if moment is None:
        return 0
    return max(0, int((moment - now) / timedelta(seconds=1)))


def running_late(
    status: ShipmentStatus | str, eta: datetime | None, *, now: datetime | None = None
) -> bool:
    """Still on its way a whole day after the carrier's estimated delivery (a day's grace,
    since an ETA is a date and the reader's day may not be UTC's)."""
    if eta is None or ShipmentStatus(status).is_final:
        return False
    return eta + timedelta(days=1) < (now or datetime.now(UTC))
