"""Shipment service functions shared by the REST API, the CLI and the dashboard.

Functions take the session and keyword-only arguments, flush, and never commit: the
request or command that called them owns the transaction.
"""

from __future__ import annotations

import base64
import binascii
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import ColumnElement, Select, delete, exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from parcelwatch.carriers.catalog import CARRIERS, public_tracking_url
from parcelwatch.carriers.detect import (
    Candidate,
    DetectedNumber,
    detect_candidates,
    find_tracking_numbers,
    normalize_number,
)
from parcelwatch.domain import FINAL_STATUSES, ShipmentStatus, utcnow
from parcelwatch.errors import Conflict, InvalidInput, NotFound
from parcelwatch.logs import get_logger
from parcelwatch.models import Shipment, Tracker, TrackerLabel, TrackingEvent
from parcelwatch.notifications.preferences import clean_notify
from parcelwatch.shipments import trackers
from parcelwatch.shipments.trackers import EVERYONE, Viewer, visible_to
from parcelwatch.sync.priority import CheckPriority

__all__ = [
    "UNSET",
    "AmbiguousCarrier",
    "BulkItem",
    "BulkOutcome",
    "Page",
    "canonical_number",
    "carrier_choices",
    "delete_shipment",
    "detect_numbers",
    "find_shipment",
    "get_shipment",
    "list_events",
    "list_shipments",
    "next_cursor",
    "page_query",
    "register_many",
    "refuse_control_characters",
    "register_shipment",
    "update_shipment",
]

log = get_logger(__name__)

MAX_NUMBER_LENGTH: Final = 40
MIN_NUMBER_LENGTH: Final = 5


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


class AmbiguousCarrier(InvalidInput):
    """The number fits the formats of several carriers: the person has to choose one."""

    def __init__(self, number: str, candidates: Sequence[Candidate]) -> None:
        choices = "; ".join(
            f"{CARRIERS[c.carrier].name} ({c.carrier}: {c.reason})" for c in candidates
        )
        super().__init__(
            f"'{number}' fits several carriers: {choices}. Give the carrier explicitly."
        )
        self.number = number
        self.candidates = tuple(candidates)


def _supported_carriers() -> str:
    return ", ".join(sorted(CARRIERS))


def canonical_number(raw: str) -> str:
    """A tracking number as stored: NFKC-normalized (full-width `１Ｚ` is `1Z`), without
    spaces or dashes, upper-case. Every lookup and the carrier detection use this form."""
    return normalize_number(unicodedata.normalize("NFKC", raw))


def _validated_number(raw: str) -> str:
    refuse_control_characters(raw, "tracking number")
    number = canonical_number(raw)
    if not number:
        raise InvalidInput("The tracking number is empty.")
    if (
        not (number.isascii() and number.isalnum())
        or not MIN_NUMBER_LENGTH <= len(number) <= MAX_NUMBER_LENGTH
    ):
        raise InvalidInput(
            f"'{raw.strip()}' is not a tracking number: use {MIN_NUMBER_LENGTH} to "
            f"{MAX_NUMBER_LENGTH} letters and digits (spaces and dashes are ignored)."
        )
    return number


def _validated_carrier(carrier: str | None, number: str) -> str:
    if carrier:
        code = unicodedata.normalize("NFKC", refuse_control_characters(carrier, "carrier"))
        code = code.strip().lower()
        if code not in CARRIERS:
            raise InvalidInput(
                f"Unknown carrier '{carrier}'. Supported carriers: {_supported_carriers()}."
            )
        return code
    candidates = detect_candidates(number)
    if not candidates:
        raise InvalidInput(
            f"Could not detect the carrier of '{number}': give the carrier explicitly. "
            f"Supported carriers: {_supported_carriers()}."
        )
    if len(candidates) > 1:
        raise AmbiguousCarrier(number, candidates)
    return candidates[0].carrier


# The largest id a shipment can have (a 32-bit integer column on PostgreSQL); a larger one
# in a path or cursor is refused before it reaches the database.
MAX_ID: Final = 2**31 - 1
_ALLOWED_CONTROLS = frozenset("\t\n\r")


def refuse_control_characters(text: str, what: str) -> str:
    """`text` unchanged, or InvalidInput naming the first control character in it (NUL, ESC,
    BEL...: stored, they break PostgreSQL or a terminal that prints them)."""
    for character in text:
        if unicodedata.category(character) == "Cc" and character not in _ALLOWED_CONTROLS:
            raise InvalidInput(
                f"The {what} contains a control character (U+{ord(character):04X}): remove it."
            )
    return text


def search_filter(search: str | None, viewer: Viewer = EVERYONE) -> ColumnElement[bool] | None:
    """Shipments whose number or description (the viewer's tracker's; for the owner and
    admins, anyone's) contains `search`, case-insensitively; None when there is nothing to
    search for. Used by the API, the CLI and the dashboard."""
    if search is None:
        return None
    text = refuse_control_characters(search, "search text").strip().lower()
    if not text:
        return None
    pattern = f"%{_escape_like(text)}%"
    described = exists().where(
        Tracker.shipment_id == Shipment.id,
        func.lower(Tracker.description).like(pattern, escape="\\"),
        *([Tracker.user_id == viewer.user_id] if not viewer.everyone else []),
    )
    clauses: list[ColumnElement[bool]] = [described]
    if viewer.everyone:
        clauses.append(func.lower(Shipment.description).like(pattern, escape="\\"))
    if number := canonical_number(text):
        clauses.append(Shipment.tracking_number.contains(number, autoescape=True))
    return or_(*clauses)


def carrier_filter(carrier: str | None) -> ColumnElement[bool] | None:
    if not carrier or not carrier.strip():
        return None
    code = refuse_control_characters(carrier, "carrier filter")
    code = unicodedata.normalize("NFKC", code).strip().lower()
    return Shipment.carrier == code


def _clean_description(description: str | None) -> str | None:
    if description is None:
        return None
    text = " ".join(refuse_control_characters(description, "description").split())
    if len(text) > 500:
        raise InvalidInput("The description is too long: at most 500 characters.")
    return text or None


def register_shipment(
    session: Session,
    *,
    tracking_number: str,
    carrier: str | None = None,
    description: str | None = None,
    owner_id: int | None = None,
) -> tuple[Shipment, bool]:
    """Register a number (normalized, carrier detected when not given). Idempotent on
    (carrier, number): an existing shipment is returned with `created=False`. With
    `owner_id`, that person's tracker of it is made too, and `created` says whether their
    tracker is new (so nobody learns that someone else tracks the number)."""
    number = _validated_number(tracking_number)
    code = _validated_carrier(carrier, number)
    text = _clean_description(description)
    shipment, created = _shipment_for(session, code, number, text)
    if owner_id is None:
        return shipment, created
    _, followed = trackers.follow(session, owner_id, shipment, description=text)
    return shipment, followed


def _shipment_for(
    session: Session, code: str, number: str, text: str | None
) -> tuple[Shipment, bool]:
    existing = _by_carrier_and_number(session, code, number)
    if existing is not None:
        return existing, False
    shipment = Shipment(
        carrier=code,
        tracking_number=number,
        description=text,
        status=ShipmentStatus.PENDING,
        tracking_url=public_tracking_url(code, number),
        next_check_at=utcnow(),
    )
    try:
        with session.begin_nested():
            session.add(shipment)
    except IntegrityError:
        # Registered concurrently by another request: return that one.
        raced = _by_carrier_and_number(session, code, number)
        if raced is None:
            raise
        return raced, False
    log.info("shipment registered", shipment_id=shipment.id, carrier=code)
    return shipment, True


def _by_carrier_and_number(session: Session, carrier: str, number: str) -> Shipment | None:
    return session.scalar(
        select(Shipment).where(Shipment.carrier == carrier, Shipment.tracking_number == number)
    )


class BulkOutcome(StrEnum):
    CREATED = "created"
    EXISTING = "existing"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class BulkItem:
    index: int
    tracking_number: str
    outcome: BulkOutcome
    shipment: Shipment | None = None
    error: str | None = None


def register_many(
    session: Session,
    items: Sequence[tuple[str, str | None, str | None]],
    *,
    owner_id: int | None = None,
) -> list[BulkItem]:
    """Register (tracking_number, carrier, description) items; one result per item. An item
    that fails writes nothing and does not stop the others."""
    results = []
    for index, (number, carrier, description) in enumerate(items):
        try:
            with session.begin_nested():
                shipment, created = register_shipment(
                    session,
                    tracking_number=number,
                    carrier=carrier,
                    description=description,
                    owner_id=owner_id,
                )
        except InvalidInput as error:
            results.append(BulkItem(index, number, BulkOutcome.ERROR, error=error.detail))
            continue
        outcome = BulkOutcome.CREATED if created else BulkOutcome.EXISTING
        results.append(BulkItem(index, shipment.tracking_number, outcome, shipment=shipment))
    return results


def get_shipment(
    session: Session, shipment_id: int, *, for_update: bool = False, viewer: Viewer = EVERYONE
) -> Shipment:
    """The shipment, or NotFound (also when `viewer` may not see it: another member's is as
    unknown as a missing one). `for_update` locks its row until the transaction ends (on
    PostgreSQL; SQLite's writer already holds the database), so a change and a concurrent
    delete take turns and the loser sees 404 rather than a vanished row."""
    shipment = session.get(Shipment, shipment_id, with_for_update=for_update)
    if shipment is None or (
        not viewer.everyone and trackers.tracker_of(session, viewer.user_id, shipment_id) is None
    ):
        raise NotFound(f"Shipment {shipment_id} does not exist.")
    return shipment


def find_shipment(session: Session, reference: str) -> Shipment:
    """A shipment by id or by tracking number (as the CLI accepts either)."""
    refuse_control_characters(reference, "shipment id or tracking number")
    if (
        reference.isascii()
        and reference.isdigit()
        and int(reference) <= MAX_ID
        and (shipment := session.get(Shipment, int(reference)))
    ):
        return shipment
    number = canonical_number(reference)
    matches = session.scalars(
        select(Shipment).where(Shipment.tracking_number == number).limit(2)
    ).all()
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise Conflict(f"'{reference}' is registered at several carriers: use the shipment id.")
    raise NotFound(f"No shipment with id or tracking number '{reference}'.")


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Shipment]
    next_cursor: str | None


def _encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, value = raw.split(":", 1)
        if prefix != "id":
            raise ValueError(prefix)
        last_id = int(value)
        if not 1 <= last_id <= MAX_ID + 1:
            raise ValueError(value)
        return last_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(
            "The cursor is not valid: pass next_cursor from a previous page."
        ) from None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_shipments(
    session: Session,
    *,
    status: ShipmentStatus | None = None,
    carrier: str | None = None,
    active: bool | None = None,
    search: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
    viewer: Viewer = EVERYONE,
    label: str | None = None,
    archived: bool | None = False,
) -> Page:
    """Shipments newest first, filtered, one page at a time (cursor pagination by id): those
    the viewer may see, without the ones they archived (`archived=None`: with them; True:
    only them), with `label` on their tracker when given."""
    query = page_query(
        session,
        status=status,
        carrier=carrier,
        active=active,
        search=search,
        cursor=cursor,
        limit=limit,
        viewer=viewer,
        label=label,
        archived=archived,
    )
    rows = list(session.scalars(query))
    more = len(rows) > limit
    items = rows[:limit]
    return Page(items, next_cursor(items[-1].id) if more and items else None)


def page_query(
    session: Session,
    *,
    status: ShipmentStatus | None = None,
    carrier: str | None = None,
    active: bool | None = None,
    search: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
    viewer: Viewer = EVERYONE,
    label: str | None = None,
    archived: bool | None = False,
    base: Select[Any] | None = None,
) -> Select[Any]:
    """The query of `list_shipments`' page: `limit + 1` shipments (one more says whether a
    next page exists), newest first; selected by `base` (a select from `shipments`, by
    default `select(Shipment)`) for callers that read other columns of them."""
    query = (select(Shipment) if base is None else base).order_by(Shipment.id.desc())
    if (scope := visible_to(viewer)) is not None:
        query = query.where(scope)
    query = _personal_filters(session, query, viewer, label=label, archived=archived)
    if status is not None:
        query = query.where(Shipment.status == status)
    if (by_carrier := carrier_filter(carrier)) is not None:
        query = query.where(by_carrier)
    if active is True:
        query = query.where(Shipment.status.not_in(FINAL_STATUSES))
    elif active is False:
        query = query.where(Shipment.status.in_(FINAL_STATUSES))
    if (matching := search_filter(search, viewer)) is not None:
        query = query.where(matching)
    if cursor:
        query = query.where(Shipment.id < _decode_cursor(cursor))
    return query.limit(limit + 1)


def next_cursor(last_id: int) -> str:
    """The cursor of the page after the one that ends with shipment `last_id`."""
    return _encode_cursor(last_id)


def _personal_filters(
    session: Session,
    query: Select[Shipment],
    viewer: Viewer,
    *,
    label: str | None,
    archived: bool | None,
) -> Select[Shipment]:
    """Filter by the viewer's own label and archive flag (neither means anything without an
    account)."""
    if viewer.user_id is None:
        if label:
            raise InvalidInput("label: labels belong to accounts; sign in with a personal token")
        return query
    mine = (Tracker.shipment_id == Shipment.id, Tracker.user_id == viewer.user_id)
    if label:
        wanted = " ".join(label.split())
        known = trackers.labels_of(session, viewer.user_id)
        match = next((name for name in known if name.casefold() == wanted.casefold()), None)
        if match is None:
            listed = ", ".join(known) if known else "none yet"
            raise InvalidInput(f"label: you have no label {wanted!r} (yours: {listed})")
        query = query.where(
            exists()
            .where(*mine)
            .where(
                exists().where(TrackerLabel.tracker_id == Tracker.id, TrackerLabel.name == match)
            )
        )
    if archived is not None:
        archived_mine = trackers.archived_by(viewer.user_id)
        query = query.where(archived_mine if archived else ~archived_mine)
    return query


def update_shipment(
    session: Session,
    shipment_id: int,
    *,
    description: str | None | _Unset = UNSET,
    carrier: str | _Unset = UNSET,
    auto_refresh_enabled: bool | _Unset = UNSET,
    labels: Sequence[str] | _Unset = UNSET,
    notes: str | None | _Unset = UNSET,
    archived: bool | _Unset = UNSET,
    notify: str | _Unset = UNSET,
    viewer: Viewer = EVERYONE,
) -> Shipment:
    """Change the viewer's description, labels, notes, archive flag or notify mode (their
    tracker's), correct the carrier (which starts tracking afresh), or switch auto-refresh;
    re-enabling clears the failure count and schedules a check now. Every value is checked
    before any is changed."""
    shipment = get_shipment(session, shipment_id, for_update=True, viewer=viewer)
    text = description if isinstance(description, _Unset) else _clean_description(description)
    cleaned_labels = labels if isinstance(labels, _Unset) else trackers.clean_labels(labels)
    cleaned_notes = notes if isinstance(notes, _Unset) else trackers.clean_notes(notes)
    code = (
        carrier
        if isinstance(carrier, _Unset)
        else _validated_carrier(carrier, shipment.tracking_number)
    )
    tracker = trackers.tracker_of(session, viewer.user_id, shipment.id)
    mode = notify if isinstance(notify, _Unset) else clean_notify(notify)
    personal = [cleaned_labels, cleaned_notes, archived, mode]
    if tracker is None and any(not isinstance(value, _Unset) for value in personal):
        raise Conflict(
            "labels, notes, archive and notify belong to your own tracker of a shipment: add the "
            "shipment to your list first"
        )
    if not isinstance(code, _Unset) and code != shipment.carrier and not viewer.everyone:
        _refuse_if_shared(session, shipment)
    if not isinstance(text, _Unset):
        if tracker is not None:
            tracker.description = text
        else:
            shipment.description = text
    if tracker is not None:
        if not isinstance(cleaned_labels, _Unset):
            trackers.set_labels(session, tracker, cleaned_labels)
        if not isinstance(cleaned_notes, _Unset):
            tracker.notes = cleaned_notes
        if not isinstance(archived, _Unset):
            trackers.set_archived(tracker, archived)
        if not isinstance(mode, _Unset):
            tracker.notify = mode
    if not isinstance(code, _Unset):
        _change_carrier(session, shipment, code)
    if not isinstance(auto_refresh_enabled, _Unset):
        _set_auto_refresh(shipment, auto_refresh_enabled)
    session.flush()
    return shipment


def _refuse_if_shared(session: Session, shipment: Shipment) -> None:
    """A member corrects the carrier of a shipment only they track: others rely on it."""
    followers = session.scalar(
        select(func.count()).select_from(Tracker).where(Tracker.shipment_id == shipment.id)
    )
    if followers and followers > 1:
        raise Conflict(
            "Other people track this shipment too, so its carrier cannot be changed here: "
            "remove it from your list and add the number again with the right carrier."
        )


def _change_carrier(session: Session, shipment: Shipment, code: str) -> None:
    if code == shipment.carrier:
        return
    if _by_carrier_and_number(session, code, shipment.tracking_number) is not None:
        raise Conflict(
            f"{shipment.tracking_number} is already registered at {code}: "
            "delete one of the two shipments instead."
        )
    # What the wrong carrier said does not describe this parcel: start again.
    session.execute(delete(TrackingEvent).where(TrackingEvent.shipment_id == shipment.id))
    session.expire(shipment, ["events"])
    shipment.carrier = code
    shipment.tracking_url = public_tracking_url(code, shipment.tracking_number)
    shipment.status = ShipmentStatus.PENDING
    for field in (
        "status_detail",
        "carrier_status_code",
        "carrier_status_text",
        "estimated_delivery",
        "delivered_at",
        "signed_by",
        "provider",
        "last_event_at",
        "events_digest",
        "last_auto_refresh_error",
    ):
        setattr(shipment, field, None)
    shipment.auto_refresh_fail_count = 0
    shipment.check_priority = CheckPriority.MOVING  # never checked at this carrier
    shipment.next_check_at = utcnow() if shipment.auto_refresh_enabled else None
    log.info("shipment carrier corrected", shipment_id=shipment.id, carrier=code)


def _set_auto_refresh(shipment: Shipment, enabled: bool) -> None:
    shipment.auto_refresh_enabled = enabled
    if enabled:
        shipment.auto_refresh_fail_count = 0
        shipment.last_auto_refresh_error = None
        shipment.next_check_at = None if shipment.is_final else utcnow()
    else:
        shipment.next_check_at = None


def delete_shipment(session: Session, shipment_id: int, *, viewer: Viewer = EVERYONE) -> None:
    """Remove the viewer's tracker of the shipment; the shipment and its events go with its
    last tracker (the CLI and an admin who does not track it remove it for everyone)."""
    shipment = get_shipment(session, shipment_id, for_update=True, viewer=viewer)
    carrier = shipment.carrier
    if not trackers.unfollow(session, viewer, shipment):
        raise NotFound(f"Shipment {shipment_id} does not exist.")
    log.info("shipment removed from a list", shipment_id=shipment_id, carrier=carrier)


def carrier_choices(numbers: Sequence[str]) -> list[tuple[str, tuple[Candidate, ...]]]:
    """The numbers among `numbers` that several carriers fit, each with its candidates (for
    a page that asks which carrier each one is); the others are left out."""
    choices = []
    for raw in numbers:
        number = canonical_number(raw)
        if number.isascii() and number.isalnum() and len(number) <= MAX_NUMBER_LENGTH:
            candidates = detect_candidates(number)
            if len(candidates) > 1:
                choices.append((number, candidates))
    return choices


def detect_numbers(text: str) -> list[DetectedNumber]:
    """Every tracking number in free text (a pasted email), NFKC-normalized first so
    full-width digits are found as the ASCII ones; tabs and line breaks are the only control
    characters accepted."""
    refuse_control_characters(text, "text")
    return find_tracking_numbers(unicodedata.normalize("NFKC", text))


def list_events(
    session: Session, shipment_id: int, *, limit: int = 500, viewer: Viewer = EVERYONE
) -> list[TrackingEvent]:
    """A shipment's events, newest first."""
    get_shipment(session, shipment_id, viewer=viewer)
    query = (
        select(TrackingEvent)
        .where(TrackingEvent.shipment_id == shipment_id)
        .order_by(TrackingEvent.occurred_at.desc(), TrackingEvent.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))
