"""The API's two hot reads without the ORM: a list page of shipments, and one shipment, as a
viewer sees them, read as plain rows and written out as JSON in one pass.

A list page read through the ORM built 51 `Shipment` objects (identity map, instrumented
attributes), queried the viewer's trackers, then validated 50 `ShipmentOut` models one by one:
under `bench/api_load.py` that was most of the page's 5.3 ms of CPU. Here one query reads the
page's columns with the viewer's tracker of each (an outer join; a second query reads labels,
only for shipments the viewer tracks), and pydantic-core validates and serializes the whole
answer at once. The bytes are those the models give (`ShipmentOut.of`, then FastAPI's
serialization): the tests compare the two on every kind of row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from pydantic import TypeAdapter
from sqlalchemy import Row, and_, bindparam, select
from sqlalchemy.orm import Session

from parcelwatch.carriers.catalog import CARRIERS
from parcelwatch.models import Shipment, Tracker, TrackerLabel
from parcelwatch.shipments import service
from parcelwatch.shipments.schemas import SHIPMENT_FIELDS, ShipmentOut, ShipmentPage
from parcelwatch.shipments.trackers import Viewer

__all__ = ["page_json", "shipment_json"]

_PAGE: Final = TypeAdapter(ShipmentPage)
_ONE: Final = TypeAdapter(ShipmentOut)
_SHIPMENTS: Final = Shipment.__table__
_MINE: Final = Tracker.__table__.alias("mine")
_COLUMNS: Final = (
    *(_SHIPMENTS.c[name] for name in SHIPMENT_FIELDS),
    _SHIPMENTS.c.description,
    _MINE.c.id.label("mine_id"),
    _MINE.c.description.label("mine_description"),
    _MINE.c.notes.label("mine_notes"),
    _MINE.c.archived_at.label("mine_archived_at"),
    _MINE.c.notify.label("mine_notify"),
)
_FIELD_COUNT: Final = len(SHIPMENT_FIELDS)
# Built once: a statement's columns are checked and its cache key computed when it is made,
# which for these 27 columns cost more than running it.
_WITH_MINE: Final = select(*_COLUMNS).select_from(
    _SHIPMENTS.outerjoin(
        _MINE,
        and_(_MINE.c.shipment_id == _SHIPMENTS.c.id, _MINE.c.user_id == bindparam("viewer_id")),
    )
)
_ONE_QUERY: Final = _WITH_MINE.where(_SHIPMENTS.c.id == bindparam("shipment_id"))
_LABELS: Final = select(TrackerLabel.tracker_id, TrackerLabel.name).where(
    TrackerLabel.tracker_id.in_(bindparam("tracker_ids", expanding=True))
)


def page_json(session: Session, viewer: Viewer, **filters: Any) -> bytes:
    """`GET /api/shipments`' answer: `service.list_shipments(session, viewer=viewer,
    **filters)` as the viewer sees it, as `ShipmentPage` JSON."""
    limit: int = filters.get("limit", 50)
    query = service.page_query(session, viewer=viewer, base=_WITH_MINE, **filters)
    rows = session.connection().execute(query, {"viewer_id": viewer.user_id}).all()
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = service.next_cursor(rows[-1][0]) if more and rows else None
    items = _as_seen(session, rows)
    return _PAGE.dump_json(_PAGE.validate_python({"items": items, "next_cursor": cursor}))


def shipment_json(session: Session, viewer: Viewer, shipment_id: int) -> bytes | None:
    """`GET /api/shipments/{id}`'s answer as `ShipmentOut` JSON; None when there is no such
    shipment or it is not the viewer's to see (as `trackers.find_seen`)."""
    row = (
        session.connection()
        .execute(_ONE_QUERY, {"viewer_id": viewer.user_id, "shipment_id": shipment_id})
        .first()
    )
    if row is None or (row[len(_NAMES)] is None and not viewer.everyone):
        return None
    return _ONE.dump_json(_ONE.validate_python(_as_seen(session, [row])[0]))


_NAMES: Final = (*SHIPMENT_FIELDS, "description")
_CARRIER: Final = SHIPMENT_FIELDS.index("carrier")
_STATUS: Final = SHIPMENT_FIELDS.index("status")
_NOBODYS: Final = {"tracker_id": None, "notes": None, "archived": False, "notify": None}


def _as_seen(session: Session, rows: Sequence[Row[Any]]) -> list[dict[str, Any]]:
    """`ShipmentOut`'s fields of each row, personal ones from the viewer's tracker (rows are
    read by position: by name costs a lookup each)."""
    mine_at = len(_NAMES)
    tracked = [row[mine_at] for row in rows if row[mine_at] is not None]
    labels: dict[int, list[str]] = {tracker_id: [] for tracker_id in tracked}
    if tracked:
        for tracker_id, name in session.connection().execute(_LABELS, {"tracker_ids": tracked}):
            labels[tracker_id].append(name)
    items = []
    for row in rows:
        values = dict(zip(_NAMES, row, strict=False))  # the shipment's, description included
        carrier = row[_CARRIER]
        info = CARRIERS.get(carrier)
        values["carrier_name"] = info.name if info else carrier
        values["final"] = row[_STATUS].is_final
        tracker_id, description, notes, archived_at, notify = row[mine_at:]
        if tracker_id is None:
            values.update(_NOBODYS, labels=[])
        else:
            values.update(
                description=description,
                tracker_id=tracker_id,
                labels=sorted(labels[tracker_id], key=str.casefold),
                notes=notes,
                archived=archived_at is not None,
                notify=notify,
            )
        items.append(values)
    return items
