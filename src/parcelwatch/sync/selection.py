"""Which shipments a pass looks at: due ones by the `ix_shipments_due` index, or all active
ones (`--force`), or named ones (`--shipments`), always page by page."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, false, or_

from parcelwatch.domain import FINAL_STATUSES
from parcelwatch.models import Shipment

__all__ = ["MANUAL_COOLDOWN", "Selection", "active_filter", "claimable_filter", "due_filter"]

MANUAL_COOLDOWN = timedelta(minutes=5)


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


def active_filter(*, max_failures: int, cutoff: datetime) -> ColumnElement[bool]:
    """Active: not final, auto-refresh on, under the failure threshold, within the cut-off."""
    return and_(
        Shipment.status.not_in(list(FINAL_STATUSES)),
        Shipment.auto_refresh_enabled.is_(True),
        Shipment.auto_refresh_fail_count < max_failures,
        Shipment.created_at >= cutoff,
    )


def due_filter(*, now: datetime) -> ColumnElement[bool]:
    """Due: scheduled and the time has come, and not refreshed by hand in the last 5 min."""
    return and_(
        Shipment.next_check_at.is_not(None),
        Shipment.next_check_at <= now,
        or_(
            Shipment.last_manual_refresh.is_(None),
            Shipment.last_manual_refresh <= now - MANUAL_COOLDOWN,
        ),
    )


def claimable_filter(
    selection: Selection,
    *,
    now: datetime,
    max_failures: int,
    cutoff: datetime,
    carriers: Sequence[str],
) -> ColumnElement[bool]:
    """Everything a claim requires: selected, active, the carrier configured, and no live
    lease held by another engine (a crashed engine's lease expires)."""
    if not carriers:
        return false()
    of_carrier = (
        Shipment.carrier == carriers[0] if len(carriers) == 1 else Shipment.carrier.in_(carriers)
    )
    lease_free = or_(Shipment.lease_expires_at.is_(None), Shipment.lease_expires_at < now)
    if selection.manual:
        return and_(
            Shipment.id.in_(list(selection.shipment_ids or [])),
            Shipment.status.not_in(list(FINAL_STATUSES)),
            of_carrier,
            lease_free,
        )
    clauses: list[ColumnElement[bool]] = [
        active_filter(max_failures=max_failures, cutoff=cutoff),
        of_carrier,
        lease_free,
    ]
    if selection.shipment_ids is not None:
        clauses.append(Shipment.id.in_(list(selection.shipment_ids)))
    elif not selection.force:
        clauses.append(due_filter(now=now))
    return and_(*clauses)
