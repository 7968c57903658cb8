"""SQLAlchemy tables: shipments, their tracking events, sync runs, alert state, heartbeats,
the webhook pushes already received, accounts and trackers, budgets, and the notification
outbox with its channels and deliveries."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from parcelwatch.accounts.roles import Role, Scope
from parcelwatch.db import Base, UTCDateTime
from parcelwatch.domain import ShipmentStatus, utcnow

__all__ = [
    "AlertState",
    "EngineHeartbeat",
    "Shipment",
    "SyncControl",
    "SyncRun",
    "ShareLink",
    "Tracker",
    "TrackerLabel",
    "TrackingEvent",
    "User",
    "ApiToken",
    "UserSession",
    "WebhookPush",
    "NotificationChannel",
    "Notification",
    "NotificationDelivery",
    "DeliveryAttempt",
]


def _stored_as_values(enum: type[StrEnum], *, name: str, length: int) -> Enum:
    """A column of `enum` stored as its members' string values in a VARCHAR (no native enum
    type, so adding a member needs no migration), refusing any other string."""
    return Enum(
        enum,
        native_enum=False,
        length=length,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
        name=name,
    )


StatusColumn = _stored_as_values(ShipmentStatus, name="shipment_status", length=32)


# What the due test reads beyond `carrier` and `next_check_at` (`parcelwatch.lifecycle`).
_DUE_TEST_COLUMNS = (
    "status",
    "auto_refresh_enabled",
    "created_at",
    "auto_refresh_fail_count",
    "last_manual_refresh",
)


class Shipment(Base):
    """One tracking number at one carrier. `next_check_at` is NULL when nothing is scheduled
    (final, or auto-refresh disabled), which keeps the due index small."""

    __tablename__ = "shipments"
    __table_args__ = (
        UniqueConstraint("carrier", "tracking_number", name="uq_shipments_carrier_number"),
        # The due indexes carry every column of the due test, so the backlog count and a
        # claim read the index alone (migration 0004).
        Index(
            "ix_shipments_due",
            "next_check_at",
            "carrier",
            *_DUE_TEST_COLUMNS,
            sqlite_where=text("next_check_at IS NOT NULL"),
            postgresql_where=text("next_check_at IS NOT NULL"),
        ),
        Index(
            "ix_shipments_carrier_due",
            "carrier",
            "next_check_at",
            *_DUE_TEST_COLUMNS,
            sqlite_where=text("next_check_at IS NOT NULL"),
            postgresql_where=text("next_check_at IS NOT NULL"),
        ),
        # A claim reads due shipments class by class and person by person (migration 0014).
        Index(
            "ix_shipments_priority_due",
            "carrier",
            "check_priority",
            "check_owner",
            "next_check_at",
            *_DUE_TEST_COLUMNS,
            sqlite_where=text("next_check_at IS NOT NULL"),
            postgresql_where=text("next_check_at IS NOT NULL"),
        ),
        Index("ix_shipments_status_carrier", "status", "carrier"),
        # A status filter's pages, newest first, read off the index (migration 0011).
        Index("ix_shipments_status_id", "status", "id"),
        Index("ix_shipments_tracking_number", "tracking_number"),
        Index("ix_shipments_created_at", "created_at"),
        # An id is never given again after a delete (SQLite's AUTOINCREMENT; PostgreSQL's
        # sequence never reuses one): a stale link or script never reaches another shipment.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    carrier: Mapped[str] = mapped_column(String(64))
    tracking_number: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[ShipmentStatus] = mapped_column(StatusColumn, default=ShipmentStatus.PENDING)
    status_detail: Mapped[str | None] = mapped_column(Text)
    carrier_status_code: Mapped[str | None] = mapped_column(String(64))
    carrier_status_text: Mapped[str | None] = mapped_column(Text)
    estimated_delivery: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    signed_by: Mapped[str | None] = mapped_column(String(200))
    tracking_url: Mapped[str | None] = mapped_column(String(1000))
    provider: Mapped[str | None] = mapped_column(String(32))
    last_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Hash of the dedupe keys of the events the carrier last sent (see sync.writer).
    events_digest: Mapped[str | None] = mapped_column(String(40))

    last_auto_refresh: Mapped[datetime | None] = mapped_column(UTCDateTime)
    auto_refresh_count: Mapped[int] = mapped_column(Integer, default=0)
    auto_refresh_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    last_auto_refresh_error: Mapped[str | None] = mapped_column(Text)
    auto_refresh_fail_count: Mapped[int] = mapped_column(Integer, default=0)
    last_manual_refresh: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    # Which due shipments a short budget goes to first (`parcelwatch.sync.priority`), and
    # whose turn this one counts in: the first person tracking it (`trackers.check_owners`).
    check_priority: Mapped[int] = mapped_column(SmallInteger, default=2, server_default="2")
    check_owner: Mapped[int | None] = mapped_column(Integer)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    events: Mapped[list[TrackingEvent]] = relationship(
        back_populates="shipment",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="desc(TrackingEvent.occurred_at)",
    )

    @property
    def is_final(self) -> bool:
        return self.status.is_final


class TrackingEvent(Base):
    """One carrier scan, unique per shipment by its dedupe key."""

    __tablename__ = "tracking_events"
    __table_args__ = (
        UniqueConstraint("shipment_id", "dedupe_key", name="uq_tracking_events_dedupe"),
        Index("ix_tracking_events_shipment_occurred", "shipment_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id", ondelete="CASCADE"))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    utc_offset_minutes: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[ShipmentStatus] = mapped_column(StatusColumn)
    carrier_status_code: Mapped[str | None] = mapped_column(String(64))
    carrier_status_text: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    city: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str | None] = mapped_column(String(100))
    postal_code: Mapped[str | None] = mapped_column(String(32))
    country: Mapped[str | None] = mapped_column(String(8))
    dedupe_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    shipment: Mapped[Shipment] = relationship(back_populates="events")


class SyncRun(Base):
    """One pass of the sync engine: the audit trail health checks and `sync --stats` read."""

    __tablename__ = "sync_runs"
    __table_args__ = (Index("ix_sync_runs_started_at", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trigger: Mapped[str] = mapped_column(String(32))
    engine_id: Mapped[str | None] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(32), default="running")
    checked: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    api_calls: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[str]] = mapped_column(JSON, default=list)


class AlertState(Base):
    """The last notification per alert condition, for cool-downs and recovery notices."""

    __tablename__ = "alert_states"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    severity: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EngineHeartbeat(Base):
    """A running engine (server updater, `sync` command, worker) reports in here."""

    __tablename__ = "engine_heartbeats"

    engine_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    hostname: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    # What it is doing, as of its last heartbeat (the admin status lists every live engine).
    in_flight_batches: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    shipments_per_second: Mapped[float] = mapped_column(
        Float, default=0.0, server_default=text("0")
    )
    carriers: Mapped[str | None] = mapped_column(String(200), default=None)  # None: all


class SyncControl(Base):
    """Switches every engine obeys: the row `updater` holds the pause that the admin API sets
    and each updater and worker reads before its next batch (kept until resumed)."""

    __tablename__ = "sync_control"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookPush(Base):
    """A provider push already applied, remembered while its signature is still accepted, so
    a replay of it is answered as a duplicate and changes nothing."""

    __tablename__ = "webhook_pushes"
    __table_args__ = (Index("ix_webhook_pushes_expires_at", "expires_at"),)

    # SHA-256 of what the push's signature covers (for ShipEngine: timestamp and raw body).
    push_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # After this the signature's timestamp is refused anyway: the row can go.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


RoleColumn = _stored_as_values(Role, name="user_role", length=16)


class User(Base):
    """A person's account. `name` is stored normalized (NFKC, lower case), so it is unique
    whatever case it is typed in; `password_hash` is NULL for an account that only signs in
    through the reverse proxy."""

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("name", name="uq_users_name"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    role: Mapped[Role] = mapped_column(RoleColumn)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Notifications: the person's IANA time zone, and quiet hours in it as minutes after
    # midnight (both NULL: none); non-urgent messages wait for the end of them.
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    quiet_start_minute: Mapped[int | None] = mapped_column(Integer)
    quiet_end_minute: Mapped[int | None] = mapped_column(Integer)


ScopeColumn = _stored_as_values(Scope, name="token_scope", length=16)


class ApiToken(Base):
    """A personal API token. Only the SHA-256 of the token is kept (a token is 256 random
    bits, so a fast hash is as safe as a slow one and a lookup stays one indexed read); the
    `prefix` (its first characters) lets a person recognise it in a list."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        UniqueConstraint("token_hash", name="uq_api_tokens_hash"),
        Index("ix_api_tokens_user", "user_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    scope: Mapped[Scope] = mapped_column(ScopeColumn)
    token_hash: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


class UserSession(Base):
    """A dashboard sign-in, kept on the server so that it can be listed and revoked. The
    cookie holds a random secret of which only the SHA-256 is stored; `csrf_token` is what
    every form and script write of this session must send back. `expires_at` moves forward
    with use (the idle timeout)."""

    __tablename__ = "user_sessions"
    __table_args__ = (
        UniqueConstraint("token_hash", name="uq_user_sessions_hash"),
        Index("ix_user_sessions_user", "user_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    user_agent: Mapped[str] = mapped_column(String(200), default="")
    address: Mapped[str] = mapped_column(String(64), default="")

    user: Mapped[User] = relationship()


class Tracker(Base):
    """A person's follow of one shipment: their description, labels, notes and archive flag.
    The shipment (carrier, number, events) is shared and polled once however many people
    track it; it is deleted with its last tracker."""

    __tablename__ = "trackers"
    __table_args__ = (
        UniqueConstraint("user_id", "shipment_id", name="uq_trackers_user_shipment"),
        # By shipment, then person: "who tracked it first" (`trackers.check_owners`) is a probe.
        Index("ix_trackers_shipment", "shipment_id", "user_id"),
        # A person's archived shipments: few, and asked of every list page ("not archived").
        Index(
            "ix_trackers_archived",
            "user_id",
            "shipment_id",
            postgresql_where=text("archived_at IS NOT NULL"),
            sqlite_where=text("archived_at IS NOT NULL"),
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id", ondelete="CASCADE"))
    description: Mapped[str | None] = mapped_column(String(500))
    notes: Mapped[str | None] = mapped_column(Text)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Restored by hand: AUTO_ARCHIVE_DAYS no longer archives it.
    kept: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Notifications of this shipment: all (the person's rules), delivered_only, or muted.
    notify: Mapped[str] = mapped_column(String(16), default="all", server_default="all")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    user: Mapped[User] = relationship()
    shipment: Mapped[Shipment] = relationship()
    label_rows: Mapped[list[TrackerLabel]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="TrackerLabel.name"
    )

    @property
    def labels(self) -> list[str]:
        return sorted((row.name for row in self.label_rows), key=str.casefold)


class TrackerLabel(Base):
    """One label of a tracker (a person's labels are the names their trackers carry)."""

    __tablename__ = "tracker_labels"

    tracker_id: Mapped[int] = mapped_column(
        ForeignKey("trackers.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(40), primary_key=True)


class ShareLink(Base):
    """A read-only public page of one shipment (`/t/<token>`), made by one of its trackers:
    status, timeline and ETA, never the tracker's own fields. Only the token's SHA-256 is
    kept; it can expire and be revoked, and goes with its tracker."""

    __tablename__ = "share_links"
    __table_args__ = (
        UniqueConstraint("token_hash", name="uq_share_links_hash"),
        Index("ix_share_links_tracker", "tracker_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tracker_id: Mapped[int] = mapped_column(ForeignKey("trackers.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    tracker: Mapped[Tracker] = relationship()


class CarrierBudget(Base):
    """What a provider spent of one counted quota window (hour, day) that started at
    `period_start` (`carriers/quotas.py`); shared by every engine using this database."""

    __tablename__ = "carrier_budgets"

    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    window: Mapped[str] = mapped_column(String(16), primary_key=True)  # its length: 1h, 1d
    period_start: Mapped[datetime] = mapped_column(UTCDateTime)
    resets_at: Mapped[datetime] = mapped_column(UTCDateTime)
    spent: Mapped[int] = mapped_column(Integer, default=0)
    quota: Mapped[int] = mapped_column(Integer)  # the window's amount when last spent from
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CarrierBlock(Base):
    """A provider that told us to stop (429 with Retry-After, "retry after 12:00AM GMT"):
    no engine calls it before `blocked_until`."""

    __tablename__ = "carrier_blocks"

    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    blocked_until: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(String(300))


class NotificationChannel(Base):
    """Where one person hears about their parcels: an email address, an Apprise URL or a
    Standard Webhooks endpoint, with the event types it wants. An instance-wide webhook
    (made by an admin) hears about every tracker. `target` may hold a secret (an Apprise
    token, a URL's credentials): it is shown masked and never logged."""

    __tablename__ = "notification_channels"
    __table_args__ = (
        Index("ix_notification_channels_user", "user_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # email | apprise | webhook
    name: Mapped[str] = mapped_column(String(100))
    target: Mapped[str] = mapped_column(Text)
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    instance_wide: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # Webhooks: the signing secret (`whsec_…`); during a rotation the previous one signs too
    # until `previous_secret_expires_at`.
    secret: Mapped[str | None] = mapped_column(String(200))
    previous_secret: Mapped[str | None] = mapped_column(String(200))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    user: Mapped[User] = relationship()


class Notification(Base):
    """The outbox: one milestone of one tracker's shipment (or a test), written in the same
    transaction as the sync write that caused it. `dedupe_key` makes a milestone once per
    tracker however often the same data is polled; `payload` is the versioned body every
    channel renders from, so a delivery never reads another person's data later."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("user_id", "dedupe_key", name="uq_notifications_user_dedupe"),
        Index("ix_notifications_tracker", "tracker_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    tracker_id: Mapped[int | None] = mapped_column(ForeignKey("trackers.id", ondelete="SET NULL"))
    shipment_id: Mapped[int | None] = mapped_column(ForeignKey("shipments.id", ondelete="SET NULL"))
    event_type: Mapped[str] = mapped_column(String(64))
    dedupe_key: Mapped[str] = mapped_column(String(200))
    urgent: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NotificationDelivery(Base):
    """One notification to one channel: claimed by a dispatcher with a lease (as shipments
    are), retried with backoff until delivered or dead-lettered. `message_id` is the same on
    every attempt and replay (the `webhook-id` receivers deduplicate by)."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        UniqueConstraint("notification_id", "channel_id", name="uq_deliveries_notification"),
        # The dispatcher's claim walks this: pending rows by when they are due.
        Index("ix_deliveries_due", "status", "next_attempt_at"),
        Index("ix_deliveries_channel", "channel_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column(
        ForeignKey("notification_channels.id", ondelete="CASCADE")
    )
    message_id: Mapped[str] = mapped_column(String(64))
    # pending | delivered | dead (retries spent, or its channel was disabled)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(2000))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A replay starts a new NOTIFY_RETRY_FOR window from here (else from `created_at`).
    replayed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    notification: Mapped[Notification] = relationship()
    channel: Mapped[NotificationChannel] = relationship()


class DeliveryAttempt(Base):
    """One try of one delivery, for the delivery log: never the secret, never the body."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (
        Index("ix_delivery_attempts_delivery", "delivery_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("notification_deliveries.id", ondelete="CASCADE")
    )
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    outcome: Mapped[str] = mapped_column(String(16))  # delivered | failed | dead
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(String(2000))
