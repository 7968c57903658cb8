"""The shared vocabulary: normalized statuses and what a carrier tells us about a parcel."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

__all__ = [
    "FINAL_STATUSES",
    "Location",
    "ShipmentStatus",
    "TrackEvent",
    "TrackInfo",
    "utcnow",
]


class ShipmentStatus(StrEnum):
    """Every carrier code maps to one of these (DESIGN.md, "Normalized status")."""

    PENDING = "pending"
    INFO_RECEIVED = "info_received"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    AVAILABLE_FOR_PICKUP = "available_for_pickup"
    DELIVERY_ATTEMPTED = "delivery_attempted"
    EXCEPTION = "exception"
    RETURNING_TO_SENDER = "returning_to_sender"
    DELIVERED = "delivered"
    RETURNED = "returned"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    UNKNOWN = "unknown"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {
        ShipmentStatus.DELIVERED,
        ShipmentStatus.RETURNED,
        ShipmentStatus.CANCELLED,
        ShipmentStatus.EXPIRED,
    }
)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (the only clock the domain uses)."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Location:
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None

    def __str__(self) -> str:
        parts = [p for p in (self.city, self.state, self.postal_code, self.country) if p]
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class TrackEvent:
    """One carrier scan. `occurred_at` is aware UTC; `utc_offset_minutes` is the local offset
    where the carrier gave one (None when it did not)."""

    occurred_at: datetime
    status: ShipmentStatus
    description: str
    carrier_status_code: str | None = None
    carrier_status_text: str | None = None
    location: Location = field(default_factory=Location)
    utc_offset_minutes: int | None = None

    def __post_init__(self) -> None:
        if self.occurred_at.tzinfo is None:
            raise ValueError("TrackEvent.occurred_at must be timezone-aware")

    @property
    def dedupe_key(self) -> str:
        """Stable identity: carrier code + UTC time + location + text, never the whole payload."""
        parts = (
            self.carrier_status_code or "",
            self.occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            str(self.location).casefold(),
            " ".join(self.description.split()).casefold(),
        )
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class TrackInfo:
    """What a carrier knows about one tracking number. Events are newest first."""

    status: ShipmentStatus
    status_detail: str | None = None
    events: tuple[TrackEvent, ...] = ()
    estimated_delivery: datetime | None = None
    delivered_at: datetime | None = None
    signed_by: str | None = None
    tracking_url: str | None = None
    carrier_status_code: str | None = None
    carrier_status_text: str | None = None
