"""Applying a verified ShipEngine push to the shipment it is about, once.

A push is remembered (`webhook_pushes`) for as long as its signature would be accepted, so a
captured push replayed within that window is answered as a duplicate and changes nothing. A
push older than what the shipment already shows (pushes can arrive out of order) changes
nothing either, and says so.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from parcelwatch.carriers.shipengine import CODE as SHIPENGINE
from parcelwatch.config import Settings
from parcelwatch.domain import utcnow
from parcelwatch.logs import get_logger
from parcelwatch.models import Shipment, WebhookPush
from parcelwatch.shipments.service import canonical_number
from parcelwatch.sync.scheduling import SchedulePolicy
from parcelwatch.sync.writer import apply_track_info
from parcelwatch.webhooks.shipengine import TrackEventPush

__all__ = ["AppliedPush", "PushOutcome", "apply_push", "push_id", "remember_push"]

log = get_logger(__name__)


class PushOutcome(StrEnum):
    UPDATED = "updated"  # the status, the last event or the events changed
    UNCHANGED = "unchanged"  # nothing new, or older than what the shipment shows
    DUPLICATE = "duplicate"  # this very push was received before
    UNTRACKED = "untracked"  # no shipment has this carrier and number


@dataclass(frozen=True, slots=True)
class AppliedPush:
    outcome: PushOutcome
    shipment_id: int | None = None
    events_added: int = 0
    older: bool = False  # older than what the shipment already showed
    # deliveries the push added to the outbox, by channel kind (`outbox.announce`)
    notifications: Counter[str] = field(default_factory=Counter)


def push_id(timestamp: str, body: bytes) -> str:
    """A push's id: SHA-256 of what its signature covers (ShipEngine sends no id of its own).
    A replay must carry the same timestamp and body, or its signature fails."""
    return hashlib.sha256(timestamp.encode() + b"." + body).hexdigest()


def remember_push(
    session: Session,
    identifier: str,
    *,
    provider: str,
    expires_at: datetime,
    now: datetime | None = None,
) -> bool:
    """Record the push in the caller's transaction: True when it is new, False when it was
    received before (also while a concurrent request holds the same push). Expired ids are
    pruned on the way."""
    moment = now or utcnow()
    session.execute(delete(WebhookPush).where(WebhookPush.expires_at < moment))
    try:
        with session.begin_nested():
            session.add(
                WebhookPush(
                    push_id=identifier, provider=provider, received_at=moment, expires_at=expires_at
                )
            )
    except IntegrityError:
        return False
    return True


def apply_push(session: Session, push: TrackEventPush, settings: Settings) -> AppliedPush:
    """Apply the push to its shipment (by carrier and number) in the caller's transaction;
    nothing is written when no shipment has that carrier and number, or when the push is
    older than the shipment's last event."""
    number = canonical_number(push.tracking_number)
    row = session.execute(
        select(Shipment.id, Shipment.last_event_at).where(
            Shipment.carrier == push.carrier, Shipment.tracking_number == number
        )
    ).one_or_none()
    if row is None:
        log.info("shipengine webhook for an untracked number ignored", carrier=push.carrier)
        return AppliedPush(PushOutcome.UNTRACKED)
    shipment_id, last_event_at = row
    newest = max((event.occurred_at for event in push.info.events), default=None)
    if last_event_at is not None and (newest is None or newest < last_event_at):
        log.info("shipengine webhook older than the shipment ignored", shipment_id=shipment_id)
        return AppliedPush(PushOutcome.UNCHANGED, shipment_id, older=True)
    summary = apply_track_info(
        session, shipment_id, push.info, SHIPENGINE, policy=SchedulePolicy.from_settings(settings)
    )
    changed = bool(summary.updated or summary.events_added)
    log.info(
        "shipengine webhook applied",
        shipment_id=shipment_id,
        carrier=push.carrier,
        events_added=summary.events_added,
        changed=changed,
    )
    return AppliedPush(
        PushOutcome.UPDATED if changed else PushOutcome.UNCHANGED,
        shipment_id,
        events_added=summary.events_added,
        notifications=summary.notifications,
    )
