"""Request and response bodies of the shipments API."""

from __future__ import annotations

from datetime import datetime
from operator import attrgetter
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from parcelwatch.carriers.catalog import CARRIERS
from parcelwatch.domain import ShipmentStatus
from parcelwatch.models import Shipment, TrackingEvent
from parcelwatch.shipments.service import BulkItem, BulkOutcome
from parcelwatch.shipments.trackers import Tracked

MAX_BULK_ITEMS = 500

NotifyMode = Literal["all", "delivered_only", "muted"]
TrackingNumberText = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class ShipmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tracking_number: TrackingNumberText = Field(examples=["1Z5R89390357567127"])
    carrier: str | None = Field(
        default=None, max_length=64, description="Detected from the number when omitted."
    )
    description: str | None = Field(default=None, max_length=500)


class ShipmentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=500)
    carrier: str | None = Field(default=None, max_length=64)
    auto_refresh_enabled: bool | None = Field(
        default=None, description="true re-enables automatic updates and clears the failures."
    )
    labels: list[Annotated[str, Field(max_length=100)]] | None = Field(
        default=None,
        max_length=100,
        description="Your labels of it, replacing the ones it had ([] removes them).",
    )
    notes: str | None = Field(
        default=None, max_length=20_000, description="Your private notes (at most 10,000)."
    )
    archived: bool | None = Field(
        default=None, description="true archives it in your list, false restores it."
    )
    notify: NotifyMode | None = Field(
        default=None,
        description="Your notifications of it: all (your channels' rules), delivered_only, "
        "or muted.",
    )


class ShipmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    carrier: str
    carrier_name: str
    tracking_number: str
    description: str | None
    status: ShipmentStatus
    status_detail: str | None
    final: bool
    estimated_delivery: datetime | None
    delivered_at: datetime | None
    signed_by: str | None
    tracking_url: str | None
    provider: str | None
    last_event_at: datetime | None
    auto_refresh_enabled: bool
    auto_refresh_count: int
    auto_refresh_fail_count: int
    last_auto_refresh: datetime | None
    last_auto_refresh_error: str | None
    last_manual_refresh: datetime | None
    next_check_at: datetime | None
    created_at: datetime
    updated_at: datetime
    tracker_id: int | None = Field(description="Your tracker of it; null when you do not track it")
    labels: list[str]
    notes: str | None
    archived: bool
    notify: NotifyMode | None = Field(
        description="Your notifications of it (all, delivered_only, muted); null when you do "
        "not track it"
    )

    @classmethod
    def of(cls, shipment: Shipment | Tracked) -> ShipmentOut:
        """As its viewer sees it (a bare `Shipment`: as nobody in particular does)."""
        seen = shipment if isinstance(shipment, Tracked) else Tracked(shipment, None)
        row = seen.shipment
        # Read from the shipment itself, not through `Tracked.__getattr__` (a list page of 50
        # made ~1,100 such calls; reading them directly takes a tenth off the page's CPU).
        values = dict(zip(SHIPMENT_FIELDS, _read_shipment(row), strict=True))
        for name in _PERSONAL_FIELDS:
            values[name] = getattr(seen, name)
        info = CARRIERS.get(row.carrier)
        values["carrier_name"] = info.name if info else row.carrier
        values["final"] = row.is_final
        return cls.model_validate(values)


# The viewer's own (their tracker's, through `Tracked`'s properties), and the shipment's.
_PERSONAL_FIELDS = tuple(
    name for name in ShipmentOut.model_fields if isinstance(getattr(Tracked, name, None), property)
)
SHIPMENT_FIELDS = tuple(
    name
    for name in ShipmentOut.model_fields
    if name not in (*_PERSONAL_FIELDS, "carrier_name", "final")
)
_read_shipment = attrgetter(*SHIPMENT_FIELDS)


class ShipmentPage(BaseModel):
    items: list[ShipmentOut]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null at the end."
    )


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    occurred_at: datetime
    utc_offset_minutes: int | None
    status: ShipmentStatus
    carrier_status_code: str | None
    carrier_status_text: str | None
    description: str
    city: str | None
    state: str | None
    postal_code: str | None
    country: str | None

    @classmethod
    def of(cls, event: TrackingEvent) -> EventOut:
        return cls.model_validate(event)


class BulkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[ShipmentCreate] = Field(min_length=1, max_length=MAX_BULK_ITEMS)


class BulkItemOut(BaseModel):
    index: int
    tracking_number: str
    outcome: BulkOutcome
    shipment: ShipmentOut | None = None
    error: str | None = None

    @classmethod
    def of(cls, item: BulkItem, seen: Tracked | None = None) -> BulkItemOut:
        """`seen`: the item's shipment as the asker sees it."""
        shipment = seen if seen is not None else item.shipment
        return cls(
            index=item.index,
            tracking_number=item.tracking_number,
            outcome=item.outcome,
            shipment=ShipmentOut.of(shipment) if shipment is not None else None,
            error=item.error,
        )


class BulkResponse(BaseModel):
    created: int
    existing: int
    errors: int
    items: list[BulkItemOut]


class DetectRequest(BaseModel):
    text: str = Field(max_length=200_000, description="Free text, e.g. a pasted email.")


class CandidateOut(BaseModel):
    carrier: str
    carrier_name: str
    format: str = Field(description="The number format that fits, e.g. 'UPS waybill'.")
    check_digit: bool = Field(description="true: the format's check digit holds; false: none.")
    reason: str = Field(description="Why this carrier: the format and what was checked.")


class DetectedOut(BaseModel):
    tracking_number: str
    carrier: str | None = Field(
        description="The carrier when exactly one fits; null when several do (see candidates)."
    )
    carrier_name: str | None
    ambiguous: bool = Field(description="true: several carriers fit; ask which one.")
    candidates: list[CandidateOut] = Field(
        description="Every carrier the number fits, with its reason; those with a check "
        "digit first."
    )


class DetectResponse(BaseModel):
    numbers: list[DetectedOut]


class ShareCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expires: str | None = Field(
        default=None,
        max_length=32,
        description="Lifetime such as 7d or 12h; omitted: until revoked.",
        examples=["7d"],
    )


class ShareOut(BaseModel):
    id: int
    url: str | None = Field(description="The page's address: shown once, when made")
    created_at: datetime
    expires_at: datetime | None
