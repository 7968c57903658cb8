"""Trackers: a person's follow of a shipment, and who sees which shipment.

A shipment is one row per (carrier, number), polled once however many people follow it.
What belongs to a person is their tracker of it: their description, labels, notes, archived
flag. A member sees only the shipments they track; the owner and admins see every shipment
(`Viewer.everyone`), with their own tracker's fields where they have one. Removing your
tracker never touches anyone else's; the shipment (with its events) goes with its last one.

Services only flush; the caller's transaction commits.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Engine,
    and_,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session, joinedload

from parcelwatch.accounts.roles import Role
from parcelwatch.domain import ShipmentStatus, utcnow
from parcelwatch.errors import InvalidInput
from parcelwatch.models import Shipment, Tracker, TrackerLabel, User

__all__ = [
    "EVERYONE",
    "check_owners",
    "MAX_LABELS",
    "MAX_NOTES",
    "Tracked",
    "TrackerView",
    "Viewer",
    "adopt_untracked",
    "archive_delivered",
    "archived_by",
    "as_seen_by",
    "clean_labels",
    "clean_notes",
    "seen_by",
    "find_seen",
    "follow",
    "hand_over",
    "labels_of",
    "tracker_of",
    "unfollow",
    "visible_to",
]

MAX_LABELS: Final = 20
MAX_LABEL_LENGTH: Final = 40
MAX_NOTES: Final = 10_000
_LABEL: Final = re.compile(r"[^\W_][\w .&+-]*", re.UNICODE)


@dataclass(frozen=True, slots=True)
class Viewer:
    """Whose shipments a request sees: `user_id`'s trackers, or every shipment."""

    user_id: int | None
    everyone: bool

    @classmethod
    def of(cls, user_id: int | None, role: Role) -> Viewer:
        return cls(user_id=user_id, everyone=role is not Role.MEMBER)


EVERYONE: Final = Viewer(user_id=None, everyone=True)  # the CLI and the engine


def visible_to(viewer: Viewer) -> ColumnElement[bool] | None:
    """The filter on `Shipment` a viewer's queries add (None: every shipment)."""
    if viewer.everyone:
        return None
    return exists().where(Tracker.shipment_id == Shipment.id, Tracker.user_id == viewer.user_id)


def archived_by(user_id: int) -> ColumnElement[bool]:
    """Shipments `user_id` archived in their list."""
    return exists().where(
        Tracker.shipment_id == Shipment.id,
        Tracker.user_id == user_id,
        Tracker.archived_at.is_not(None),
    )


class Tracked:
    """A shipment as one person sees it: the shipment's attributes, with the description,
    labels, notes and archive flag of their tracker (none for an admin who does not track
    it: then the description is the one it was registered with)."""

    __slots__ = ("shipment", "tracker")

    def __init__(self, shipment: Shipment, tracker: Tracker | TrackerView | None) -> None:
        self.shipment = shipment
        self.tracker = tracker

    def __getattr__(self, name: str) -> Any:
        return getattr(self.shipment, name)

    @property
    def description(self) -> str | None:
        return self.tracker.description if self.tracker else self.shipment.description

    @property
    def labels(self) -> list[str]:
        return self.tracker.labels if self.tracker else []

    @property
    def notes(self) -> str | None:
        return self.tracker.notes if self.tracker else None

    @property
    def archived(self) -> bool:
        return self.tracker is not None and self.tracker.archived_at is not None

    @property
    def archived_at(self) -> datetime | None:
        return self.tracker.archived_at if self.tracker else None

    @property
    def tracker_id(self) -> int | None:
        return self.tracker.id if self.tracker else None

    @property
    def notify(self) -> str | None:
        """Notifications of it to this person: all, delivered_only or muted (None: no
        tracker of theirs)."""
        return self.tracker.notify if self.tracker else None


def tracker_of(session: Session, user_id: int | None, shipment_id: int) -> Tracker | None:
    if user_id is None:
        return None
    return (
        session.scalars(
            select(Tracker)
            .where(Tracker.user_id == user_id, Tracker.shipment_id == shipment_id)
            .options(joinedload(Tracker.label_rows))  # one query, labels included
        )
        .unique()
        .one_or_none()
    )


@dataclass(frozen=True, slots=True)
class TrackerView:
    """What a page or an answer shows of a tracker, read without the ORM (a list of 50
    shipments would otherwise build 50 tracker objects and their labels on every request)."""

    id: int
    description: str | None
    notes: str | None
    archived_at: datetime | None
    labels: list[str]
    notify: str = "all"


def as_seen_by(session: Session, viewer: Viewer, shipments: Sequence[Shipment]) -> list[Tracked]:
    """`shipments` with the viewer's trackers of them and their labels (one plain query for
    all)."""
    mine: dict[int, TrackerView] = {}
    if viewer.user_id is not None and shipments:
        rows = session.execute(
            select(
                Tracker.shipment_id,
                Tracker.id,
                Tracker.description,
                Tracker.notes,
                Tracker.archived_at,
                Tracker.notify,
                TrackerLabel.name,
            )
            .outerjoin(TrackerLabel, TrackerLabel.tracker_id == Tracker.id)
            .where(
                Tracker.user_id == viewer.user_id,
                Tracker.shipment_id.in_([shipment.id for shipment in shipments]),
            )
        ).all()
        labels: dict[int, list[str]] = {}
        for row in rows:  # one row per label (one with none when there is none)
            names = labels.setdefault(row.shipment_id, [])
            if row.name is not None:
                names.append(row.name)
        mine = {
            row.shipment_id: TrackerView(
                id=row.id,
                description=row.description,
                notes=row.notes,
                archived_at=row.archived_at,
                labels=sorted(labels[row.shipment_id], key=str.casefold),
                notify=row.notify,
            )
            for row in rows
        }
    return [Tracked(shipment, mine.get(shipment.id)) for shipment in shipments]


def find_seen(session: Session, viewer: Viewer, shipment_id: int) -> Tracked | None:
    """The shipment as the viewer sees it, in one query (None: no such shipment, or not
    theirs to see): the hot path of `GET /api/shipments/{id}`."""
    if viewer.user_id is None:
        shipment = session.get(Shipment, shipment_id)
        return Tracked(shipment, None) if shipment is not None else None
    rows = session.execute(
        select(
            Shipment,
            Tracker.id.label("tracker_id"),
            Tracker.description,
            Tracker.notes,
            Tracker.archived_at,
            Tracker.notify,
            TrackerLabel.name,
        )
        .outerjoin(
            Tracker, and_(Tracker.shipment_id == Shipment.id, Tracker.user_id == viewer.user_id)
        )
        .outerjoin(TrackerLabel, TrackerLabel.tracker_id == Tracker.id)
        .where(Shipment.id == shipment_id)
    ).all()
    if not rows:
        return None
    first = rows[0]
    if first.tracker_id is None:
        return Tracked(first[0], None) if viewer.everyone else None
    names = sorted((row.name for row in rows if row.name is not None), key=str.casefold)
    view = TrackerView(
        id=first.tracker_id,
        description=first.description,
        notes=first.notes,
        archived_at=first.archived_at,
        labels=names,
        notify=first.notify,
    )
    return Tracked(first[0], view)


def seen_by(session: Session, viewer: Viewer, shipment: Shipment) -> Tracked:
    return as_seen_by(session, viewer, [shipment])[0]


def follow(
    session: Session, user_id: int, shipment: Shipment, *, description: str | None
) -> tuple[Tracker, bool]:
    """`user_id`'s tracker of `shipment`, made now (True) or already there (False, its
    description left as it was)."""
    existing = tracker_of(session, user_id, shipment.id)
    if existing is not None:
        return existing, False
    tracker = Tracker(user_id=user_id, shipment_id=shipment.id, description=description)
    with session.begin_nested():
        session.add(tracker)
    if shipment.check_owner is None or user_id < shipment.check_owner:
        shipment.check_owner = user_id
    return tracker, True


def unfollow(session: Session, viewer: Viewer, shipment: Shipment) -> bool:
    """Remove the viewer's tracker of `shipment`; the shipment goes with its last tracker
    (and an admin who does not track it removes it for everyone). False when the viewer has
    no tracker of it and may not remove it."""
    tracker = tracker_of(session, viewer.user_id, shipment.id)
    if tracker is None and not viewer.everyone:
        return False
    if tracker is not None:
        session.delete(tracker)
        session.flush()
        others = session.scalar(
            select(func.count()).select_from(Tracker).where(Tracker.shipment_id == shipment.id)
        )
        if others:
            check_owners(session, shipment_ids=[shipment.id])
            return True
    session.delete(shipment)
    session.flush()
    return True


def clean_labels(labels: Iterable[str]) -> list[str]:
    """Labels as stored: NFKC, trimmed, single spaces, unique (case-insensitively), sorted;
    `InvalidInput` naming a label that is not one."""
    cleaned: dict[str, str] = {}
    for raw in labels:
        label = " ".join(unicodedata.normalize("NFKC", raw).split())
        if not label or len(label) > MAX_LABEL_LENGTH or not _LABEL.fullmatch(label):
            raise InvalidInput(
                f"labels: {raw!r} is not a label: 1 to {MAX_LABEL_LENGTH} letters, digits, "
                "spaces and . & + - , starting with a letter or digit"
            )
        cleaned.setdefault(label.casefold(), label)
    if len(cleaned) > MAX_LABELS:
        raise InvalidInput(f"labels: at most {MAX_LABELS} per shipment")
    return sorted(cleaned.values(), key=str.casefold)


def set_labels(session: Session, tracker: Tracker, labels: Iterable[str]) -> None:
    session.execute(delete(TrackerLabel).where(TrackerLabel.tracker_id == tracker.id))
    session.expire(tracker, ["label_rows"])
    names = clean_labels(labels)
    if names:
        session.execute(
            insert(TrackerLabel), [{"tracker_id": tracker.id, "name": name} for name in names]
        )


def clean_notes(notes: str | None) -> str | None:
    if notes is None:
        return None
    if len(notes) > MAX_NOTES:
        raise InvalidInput(f"notes: at most {MAX_NOTES} characters (these are {len(notes)})")
    for character in notes:
        if unicodedata.category(character) == "Cc" and character not in "\t\n\r":
            raise InvalidInput(
                f"notes: contains a control character (U+{ord(character):04X}): remove it"
            )
    return notes.strip() or None


def labels_of(session: Session, user_id: int) -> list[str]:
    """Every label a person's trackers carry."""
    return list(
        session.scalars(
            select(TrackerLabel.name)
            .join(Tracker, Tracker.id == TrackerLabel.tracker_id)
            .where(Tracker.user_id == user_id)
            .distinct()
            .order_by(TrackerLabel.name)
        )
    )


def set_archived(tracker: Tracker, archived: bool) -> None:
    """Archive or restore by hand; a restored tracker is kept (never archived again by
    `archive_delivered`)."""
    if archived and tracker.archived_at is None:
        tracker.archived_at = utcnow()
    elif not archived:
        if tracker.archived_at is not None:
            tracker.kept = True
        tracker.archived_at = None


def archive_delivered(db: Engine, *, days: int) -> int:
    """Archive every tracker whose shipment was delivered more than `days` ago (unless its
    person restored it by hand): AUTO_ARCHIVE_DAYS. How many."""
    cutoff = utcnow() - timedelta(days=days)
    delivered = select(Shipment.id).where(
        Shipment.status == ShipmentStatus.DELIVERED,
        func.coalesce(Shipment.delivered_at, Shipment.updated_at) < cutoff,
    )
    with db.connect().execution_options(sqlite_begin="IMMEDIATE") as connection:
        with connection.begin():
            result = connection.execute(
                update(Tracker)
                .where(
                    Tracker.archived_at.is_(None),
                    Tracker.kept.is_(False),
                    Tracker.shipment_id.in_(delivered),
                )
                .values(archived_at=utcnow())
            )
    return int(result.rowcount)


def adopt_untracked(session: Session, user: User) -> int:
    """Give `user` (the owner, when created) a tracker of every shipment nobody tracks yet:
    those registered before there was an account. How many."""
    untracked = select(Shipment.id, Shipment.description).where(
        ~exists().where(Tracker.shipment_id == Shipment.id)
    )
    rows = session.execute(untracked).all()
    now = utcnow()
    if rows:
        session.execute(
            insert(Tracker),
            [
                {
                    "user_id": user.id,
                    "shipment_id": shipment_id,
                    "description": description,
                    "created_at": now,
                    "updated_at": now,
                }
                for shipment_id, description in rows
            ],
        )
        check_owners(session, shipment_ids=[shipment_id for shipment_id, _ in rows])
    return len(rows)


def hand_over(session: Session, *, giver: User, taker: User) -> None:
    """Every tracker of `giver` becomes `taker`'s (where `taker` has none of that shipment):
    the demo's stand-in owner handing the instance to the real one."""
    taken = select(Tracker.shipment_id).where(Tracker.user_id == taker.id)
    session.execute(
        update(Tracker)
        .where(Tracker.user_id == giver.id, Tracker.shipment_id.not_in(taken))
        .values(user_id=taker.id)
    )
    check_owners(session, counted_for=giver.id)


IDS_A_STATEMENT: Final = 10_000


def check_owners(
    session: Session,
    *,
    shipment_ids: Sequence[int] | None = None,
    counted_for: int | None = None,
) -> None:
    """Set again whose turn a shipment's checks count in (`Shipment.check_owner`: the first
    person tracking it; `parcelwatch.sync.priority`), for these shipments or for those that
    counted in `counted_for`'s turns (that person gone, or their trackers handed over)."""
    first = (
        select(func.min(Tracker.user_id))
        .where(Tracker.shipment_id == Shipment.id)
        .scalar_subquery()
    )
    statement = update(Shipment).values(check_owner=first)
    if counted_for is not None:
        statement = statement.where(Shipment.check_owner == counted_for)
    statement = statement.execution_options(synchronize_session=False)
    if shipment_ids is None:
        session.execute(statement)
        return
    ids = list(shipment_ids)
    for start in range(0, len(ids), IDS_A_STATEMENT):  # PostgreSQL takes 65,535 parameters
        session.execute(statement.where(Shipment.id.in_(ids[start : start + IDS_A_STATEMENT])))
