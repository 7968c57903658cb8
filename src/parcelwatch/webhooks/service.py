"""Applying a verified ShipEngine push to the shipment it is about."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from parcelwatch.carriers.shipengine import CODE as SHIPENGINE
from parcelwatch.config import Settings
from parcelwatch.logs import get_logger
from parcelwatch.models import Shipment
from parcelwatch.sync.scheduling import SchedulePolicy
from parcelwatch.sync.writer import apply_track_info
from parcelwatch.webhooks.shipengine import TrackEventPush

__all__ = ["AppliedPush", "apply_push"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class AppliedPush:
    shipment_id: int
    events_added: int


def apply_push(session: Session, push: TrackEventPush, settings: Settings) -> AppliedPush | None:
    """Apply the push to its shipment (by carrier and number) in the caller's transaction;
    None, and nothing written, when no shipment has that carrier and number."""
    shipment_id = session.scalar(
        select(Shipment.id).where(
            Shipment.carrier == push.carrier, Shipment.tracking_number == push.tracking_number
        )
    )
    if shipment_id is None:
        log.info("shipengine webhook for an untracked number ignored", carrier=push.carrier)
        return None
    summary = apply_track_info(
        session, shipment_id, push.info, SHIPENGINE, policy=SchedulePolicy.from_settings(settings)
    )
    log.info(
        "shipengine webhook applied",
        shipment_id=shipment_id,
        carrier=push.carrier,
        events_added=summary.events_added,
    )
    return AppliedPush(shipment_id=shipment_id, events_added=summary.events_added)
