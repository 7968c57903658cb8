"""Share links: a read-only public page of one shipment, `/t/<token>`, for a shop's customer
or a family member without an account. It shows the status, the timeline, the ETA and the
carrier's link, never the tracker's description, labels or notes, nor who tracks it.

A link is made by a tracker of the shipment (so it goes when that tracker goes), is 256
random bits of which only the SHA-256 is stored, may expire, and can be revoked. Services
only flush; the caller's transaction commits."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from parcelwatch.accounts.secrets import digest, new_secret
from parcelwatch.domain import utcnow
from parcelwatch.errors import Conflict, NotFound
from parcelwatch.models import ShareLink, Shipment, Tracker
from parcelwatch.shipments.service import get_shipment
from parcelwatch.shipments.trackers import Viewer, tracker_of

__all__ = ["MadeLink", "find_shared", "list_links", "make_link", "revoke_link"]

MAX_LINKS = 20


@dataclass(frozen=True, slots=True)
class MadeLink:
    link: ShareLink
    token: str  # shown once, for the URL


def _tracker(session: Session, viewer: Viewer, shipment_id: int) -> Tracker:
    """The viewer's tracker of the shipment: NotFound when they may not see it, Conflict
    when they see it (an admin) but do not track it."""
    get_shipment(session, shipment_id, viewer=viewer)
    tracker = tracker_of(session, viewer.user_id, shipment_id)
    if tracker is None:
        raise Conflict("Share links are made from your own list: add the shipment to it first.")
    return tracker


def make_link(
    session: Session, viewer: Viewer, shipment_id: int, *, expires_in: timedelta | None
) -> MadeLink:
    tracker = _tracker(session, viewer, shipment_id)
    if len(list_links(session, viewer, shipment_id)) >= MAX_LINKS:
        raise Conflict(f"At most {MAX_LINKS} live share links per shipment: revoke one first.")
    token = new_secret()
    now = utcnow()
    link = ShareLink(
        tracker_id=tracker.id,
        token_hash=digest(token),
        created_at=now,
        expires_at=now + expires_in if expires_in is not None else None,
    )
    session.add(link)
    session.flush()
    return MadeLink(link=link, token=token)


def list_links(session: Session, viewer: Viewer, shipment_id: int) -> list[ShareLink]:
    """The viewer's live links of the shipment."""
    tracker = _tracker(session, viewer, shipment_id)
    now = utcnow()
    return [
        link
        for link in session.scalars(
            select(ShareLink)
            .where(ShareLink.tracker_id == tracker.id, ShareLink.revoked_at.is_(None))
            .order_by(ShareLink.id)
        )
        if link.expires_at is None or link.expires_at > now
    ]


def revoke_link(session: Session, viewer: Viewer, shipment_id: int, link_id: int) -> None:
    tracker = _tracker(session, viewer, shipment_id)
    link = session.get(ShareLink, link_id)
    if link is None or link.tracker_id != tracker.id or link.revoked_at is not None:
        raise NotFound(f"No live share link {link_id} of shipment {shipment_id}.")
    link.revoked_at = utcnow()
    session.flush()


def find_shared(session: Session, token: str) -> Shipment | None:
    """The shipment a live link's token opens, else None (unknown, revoked, expired, or its
    shipment or tracker gone)."""
    wanted = digest(token)
    link = session.scalar(select(ShareLink).where(ShareLink.token_hash == wanted))
    if link is None or not hmac.compare_digest(link.token_hash, wanted):
        return None
    if link.revoked_at is not None or (link.expires_at is not None and link.expires_at <= utcnow()):
        return None
    return link.tracker.shipment
