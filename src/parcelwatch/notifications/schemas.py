"""Request and response bodies of the notifications API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from parcelwatch.models import DeliveryAttempt, NotificationChannel
from parcelwatch.notifications.delivery_log import LoggedDelivery
from parcelwatch.notifications.events import MILESTONE_TYPES
from parcelwatch.notifications.preferences import Preferences, format_clock
from parcelwatch.notifications.service import masked_target

ChannelKind = Literal["email", "apprise", "webhook"]
EventTypeText = Annotated[str, Field(max_length=64)]
Clock = Annotated[str, Field(max_length=5, examples=["22:00"])]

_EVENT_TYPES_HELP = (
    "Which milestones this channel hears about: "
    + ", ".join(event.value for event in MILESTONE_TYPES)
    + ". Omitted: the defaults (out for delivery, delivered, exception, pickup, stuck)."
)


class ChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: ChannelKind
    target: str = Field(
        max_length=2000,
        description="email: an address; apprise: an Apprise URL (ntfy://topic…); webhook: "
        "an http(s) URL.",
        examples=["https://hooks.example.com/parcels"],
    )
    name: str | None = Field(
        default=None, max_length=100, description="Omitted: made from the target."
    )
    event_types: list[EventTypeText] | None = Field(
        default=None, max_length=len(MILESTONE_TYPES), description=_EVENT_TYPES_HELP
    )
    instance_wide: bool = Field(
        default=False,
        description="A webhook hearing about every person's trackers (admin scope only).",
    )


class ChannelUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=100)
    target: str | None = Field(default=None, max_length=2000)
    event_types: list[EventTypeText] | None = Field(
        default=None, max_length=len(MILESTONE_TYPES), description=_EVENT_TYPES_HELP
    )
    enabled: bool | None = Field(
        default=None, description="false pauses it; true switches it on and clears failures."
    )
    instance_wide: bool | None = Field(default=None, description="Admin scope only.")


class ChannelOut(BaseModel):
    id: int
    kind: str = Field(description="email, apprise or webhook")
    name: str
    target: str = Field(description="Masked: no credentials, tokens or query values.")
    event_types: list[str]
    instance_wide: bool
    enabled: bool
    secret: str | None = Field(
        description="A webhook's signing secret (whsec_…): only in the answer that made or "
        "rotated it, null everywhere else."
    )
    previous_secret_expires_at: datetime | None = Field(
        description="After a rotation: until when the previous secret signs too."
    )
    consecutive_failures: int
    disabled_at: datetime | None = Field(description="When the dispatcher switched it off.")
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, channel: NotificationChannel, *, secret: str | None = None) -> ChannelOut:
        return cls(
            id=channel.id,
            kind=channel.kind,
            name=channel.name,
            target=masked_target(channel),
            event_types=list(channel.event_types),
            instance_wide=channel.instance_wide,
            enabled=channel.enabled,
            secret=secret,
            previous_secret_expires_at=channel.previous_secret_expires_at,
            consecutive_failures=channel.consecutive_failures,
            disabled_at=channel.disabled_at,
            disabled_reason=channel.disabled_reason,
            created_at=channel.created_at,
            updated_at=channel.updated_at,
        )


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    attempted_at: datetime
    outcome: str = Field(description="delivered, failed or dead")
    status_code: int | None
    latency_ms: float | None
    error: str | None

    @classmethod
    def of(cls, attempt: DeliveryAttempt) -> AttemptOut:
        return cls.model_validate(attempt)


class DeliveryOut(BaseModel):
    id: int
    channel_id: int
    channel_name: str
    channel_kind: str
    event_type: str
    shipment_id: int | None
    message_id: str = Field(description="The same on every attempt and replay (webhook-id).")
    status: str = Field(description="pending, delivered or dead")
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
    attempt_log: list[AttemptOut] = Field(description="The newest attempts first (up to 20).")

    @classmethod
    def of(cls, logged: LoggedDelivery) -> DeliveryOut:
        delivery = logged.delivery
        return cls(
            id=delivery.id,
            channel_id=logged.channel.id,
            channel_name=logged.channel.name,
            channel_kind=logged.channel.kind,
            event_type=logged.notification.event_type,
            shipment_id=logged.notification.shipment_id,
            message_id=delivery.message_id,
            status=delivery.status,
            attempts=delivery.attempts,
            next_attempt_at=delivery.next_attempt_at,
            last_status_code=delivery.last_status_code,
            last_error=delivery.last_error,
            delivered_at=delivery.delivered_at,
            created_at=delivery.created_at,
            attempt_log=[AttemptOut.of(attempt) for attempt in logged.attempts],
        )


class DeliveryPageOut(BaseModel):
    items: list[DeliveryOut]
    next_before: int | None = Field(
        description="Pass as ?before= for the next (older) page; null at the end."
    )


class PreferencesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timezone: str = Field(max_length=64, examples=["Europe/Berlin"])
    quiet_start: Clock | None = Field(
        default=None, description="Quiet hours begin (HH:MM in your time zone); null: none."
    )
    quiet_end: Clock | None = Field(default=None, description="Quiet hours end (HH:MM).")


class PreferencesOut(BaseModel):
    timezone: str
    quiet_start: str | None
    quiet_end: str | None

    @classmethod
    def of(cls, preferences: Preferences) -> PreferencesOut:
        return cls(
            timezone=preferences.timezone,
            quiet_start=format_clock(preferences.quiet_start_minute),
            quiet_end=format_clock(preferences.quiet_end_minute),
        )
