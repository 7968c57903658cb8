"""SQLAlchemy tables: shipments, their tracking events, sync runs, alert state, heartbeats and
the webhook pushes already received."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    Boolean,
    Enum,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from parcelwatch.accounts.roles import Role, Scope
from parcelwatch.db import Base, UTCDateTime
from parcelwatch.domain import ShipmentStatus, utcnow

__all__ = [
    "AlertState",
    "EngineHeartbeat",
    "Shipment",
    "SyncRun",
    "ShareLink",
    "Tracker",
    "TrackerLabel",
    "TrackingEvent",
    "User",
    "ApiToken",
    "UserSession",
    "WebhookPush",
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
        Index("ix_trackers_shipment", "shipment_id"),
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
