"""A person's trackers as CSV or JSON: every shipment in their list (archived ones too) with
their own description, labels and notes. The one export behind `GET /api/trackers/export`,
the dashboard's buttons and `parcelwatch shipments export`."""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from parcelwatch.carriers.catalog import CARRIERS
from parcelwatch.domain import utcnow
from parcelwatch.models import Tracker

__all__ = ["COLUMNS", "as_csv", "as_json", "export_rows"]

COLUMNS: Final = (
    "tracking_number",
    "carrier",
    "carrier_name",
    "status",
    "description",
    "labels",
    "notes",
    "archived",
    "estimated_delivery",
    "delivered_at",
    "last_event_at",
    "added_at",
    "shipment_id",
)
# A cell a spreadsheet would run as a formula (CSV injection) starts with one of these.
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def export_rows(session: Session, user_id: int) -> list[dict[str, Any]]:
    trackers = session.scalars(
        select(Tracker)
        .where(Tracker.user_id == user_id)
        .options(selectinload(Tracker.label_rows), selectinload(Tracker.shipment))
        .order_by(Tracker.id)
    )
    rows = []
    for tracker in trackers:
        shipment = tracker.shipment
        info = CARRIERS.get(shipment.carrier)
        rows.append(
            {
                "tracking_number": shipment.tracking_number,
                "carrier": shipment.carrier,
                "carrier_name": info.name if info else shipment.carrier,
                "status": shipment.status.value,
                "description": tracker.description,
                "labels": tracker.labels,
                "notes": tracker.notes,
                "archived": tracker.archived_at is not None,
                "estimated_delivery": _iso(shipment.estimated_delivery),
                "delivered_at": _iso(shipment.delivered_at),
                "last_event_at": _iso(shipment.last_event_at),
                "added_at": _iso(tracker.created_at),
                "shipment_id": shipment.id,
            }
        )
    return rows


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def as_json(rows: list[dict[str, Any]]) -> str:
    document = {"exported_at": utcnow().isoformat(), "version": 1, "trackers": rows}
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def as_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_cell(row[column]) for column in COLUMNS])
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        value = "; ".join(value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text
