"""Which shipments a pass looks at: due ones by the `ix_shipments_due` index, or all active
ones (`--force`), or named ones (`--shipments`), always page by page."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_

from parcelwatch.lifecycle import Lifecycle, open_filter
from parcelwatch.models import Shipment

__all__ = ["Selection", "ahead_filter", "claimable_filter"]


@dataclass(frozen=True, slots=True)
class Selection:
    """What a pass syncs. `force` ignores `next_check_at` and the manual cool-down;
    `shipment_ids` restricts to those shipments (and implies force); `carriers` restricts
    to those carrier codes."""

    force: bool = False
    manual: bool = False  # a person asked: any non-final shipment among `shipment_ids`
    shipment_ids: Sequence[int] | None = None
    carriers: Sequence[str] | None = None
    limit: int | None = None

    @property
    def by_id(self) -> bool:
        """Keyset over ids (forced passes) rather than oldest-due-first."""
        return self.force or self.shipment_ids is not None


def claimable_filter(
    selection: Selection,
    *,
    now: datetime,
    lifecycle: Lifecycle,
    carriers: Sequence[str] | None = None,
) -> ColumnElement[bool]:
    """Everything a claim requires: selected, active (due, unless forced or named), of a
    tracked carrier (narrowed to `carriers`), and no live lease held by another engine (a
    crashed engine's lease expires). The definitions live in `parcelwatch.lifecycle`."""
    of_carrier = lifecycle.tracked(carriers)
    lease_free = _lease_free(now)
    if selection.manual:
        return and_(
            Shipment.id.in_(list(selection.shipment_ids or [])),
            open_filter(),
            of_carrier,
            lease_free,
        )
    if not selection.by_id:
        return and_(lifecycle.due(now, carriers), lease_free)
    clauses = [lifecycle.active(now), of_carrier, lease_free]
    if selection.shipment_ids is not None:
        clauses.append(Shipment.id.in_(list(selection.shipment_ids)))
    return and_(*clauses)


def ahead_filter(
    *, now: datetime, lifecycle: Lifecycle, carriers: Sequence[str]
) -> ColumnElement[bool]:
    """What may ride along in a request's spare room (`claims.claim_ahead`, which adds "not
    due yet"): active, of these carriers, not refreshed by hand just now, and not leased."""
    return and_(
        lifecycle.tracked(carriers),
        lifecycle.active(now),
        lifecycle.cooled_down(now),
        _lease_free(now),
    )


def _lease_free(now: datetime) -> ColumnElement[bool]:
    return or_(Shipment.lease_expires_at.is_(None), Shipment.lease_expires_at < now)
