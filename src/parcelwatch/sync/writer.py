"""Writing what carriers said: one transaction per batch (or per group of batches), bulk
statements, events deduplicated by `(shipment_id, dedupe_key)` with ON CONFLICT DO NOTHING.
A shipment remembers a digest of the event list last written (`events_digest`): a poll that
brings the same list again (most do) inserts nothing.

`apply_track_info` applies one `TrackInfo` inside the caller's session (manual refresh, the
ShipEngine webhook) with exactly the rules the engine uses.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    Connection,
    Table,
    Update,
    and_,
    bindparam,
    case,
    func,
    null,
    select,
    update,
)
from sqlalchemy.orm import Session

from parcelwatch.db import insert_new
from parcelwatch.domain import ShipmentStatus, TrackInfo, utcnow
from parcelwatch.models import Shipment, TrackingEvent
from parcelwatch.notifications.milestones import Milestone, expired_milestone, found_milestones
from parcelwatch.notifications.outbox import enqueue_milestones
from parcelwatch.sync.claims import SNAPSHOT_COLUMNS, ClaimedShipment
from parcelwatch.sync.outcomes import ShipmentOutcome
from parcelwatch.sync.planning import CheckPlan, check_value, planned_next_check
from parcelwatch.sync.priority import check_priority
from parcelwatch.sync.scheduling import (
    SchedulePolicy,
    expiry_detail,
    failure_delay,
    is_silent_too_long,
    next_check_after_success,
)

__all__ = [
    "ShipmentResult",
    "ShipmentResultKind",
    "WriteSummary",
    "apply_track_info",
    "events_digest",
    "write_results",
]

NOT_FOUND_DETAIL = "The carrier has no data for this number yet."

_shipments = cast(Table, Shipment.__table__)
_events = cast(Table, TrackingEvent.__table__)


class ShipmentResultKind(StrEnum):
    """What the carrier call came to for one shipment (the writer picks its UPDATE by it)."""

    FOUND = "found"
    NOT_FOUND = "not_found"
    FAILED = "failed"  # the shipment's own failure: counts toward the threshold
    DEFERRED = "deferred"  # carrier-wide failure or open breaker: tried again later, not counted


@dataclass(frozen=True, slots=True)
class ShipmentResult:
    """The outcome of calling the carrier for one claimed shipment."""

    shipment: ClaimedShipment
    kind: ShipmentResultKind
    provider: str
    info: TrackInfo | None = None
    message: str | None = None
    defer_until: datetime | None = None
    # A failure that may be part of a carrier-wide pattern (its kind, e.g. a malformed body):
    # the engine judges it before it is written (`sync.patterns`).
    pattern: str | None = None
    # Deferred because the provider's budget is spent (or it asked to wait): nothing failed,
    # so the run counts it as waiting, not among its failures.
    waiting: bool = False


@dataclass(slots=True)
class WriteSummary:
    updated: int = 0
    unchanged: int = 0
    not_found: int = 0
    failed: int = 0
    deferred: int = 0
    waiting: int = 0  # deferred for the provider's budget (`ShipmentResult.waiting`)
    disabled: int = 0
    expired: int = 0
    lost: int = 0  # lease lost (expired and taken, or shipment deleted): nothing written
    events_added: int = 0
    # deliveries added to the outbox, by channel kind (`notifications.outbox.announce` them
    # once the transaction has committed)
    notifications: Counter[str] = field(default_factory=Counter)
    outcomes: dict[int, ShipmentOutcome] = field(default_factory=dict)


def _found_values(
    result: ShipmentResult,
    info: TrackInfo,
    now: datetime,
    policy: SchedulePolicy,
    plan: CheckPlan | None = None,
) -> tuple[dict[str, Any], bool, bool]:
    """Column values for a found parcel, whether anything changed, whether it expired."""
    before = result.shipment
    newest = max((event.occurred_at for event in info.events), default=None)
    last_event_at = before.last_event_at
    if newest is not None and (last_event_at is None or newest > last_event_at):
        last_event_at = newest
    changed = info.status != before.status or last_event_at != before.last_event_at
    status, detail = info.status, info.status_detail
    last_movement = last_event_at or before.created_at
    expired = False
    if not status.is_final and is_silent_too_long(
        last_movement=last_movement, now=now, policy=policy
    ):
        detail = expiry_detail(status, detail, policy=policy)
        status, expired, changed = ShipmentStatus.EXPIRED, True, True
    values = {
        "v_status": status,
        "v_status_detail": detail,
        "v_carrier_status_code": info.carrier_status_code,
        "v_carrier_status_text": info.carrier_status_text,
        "v_estimated_delivery": info.estimated_delivery,
        "v_delivered_at": info.delivered_at,
        "v_signed_by": info.signed_by,
        "v_tracking_url": info.tracking_url,
        "v_provider": result.provider,
        "v_last_event_at": last_event_at,
        "v_last_auto_refresh": now,
        "v_next_check_at": _next_check(
            status, info, last_movement=last_movement, now=now, policy=policy, plan=plan
        ),
        "v_events_digest": None,  # set by the caller, which has the events' keys
        "v_check_priority": check_priority(status, info.estimated_delivery, now, last_movement),
    }
    return values, changed, expired


def _next_check(
    status: ShipmentStatus,
    info: TrackInfo,
    *,
    last_movement: datetime,
    now: datetime,
    policy: SchedulePolicy,
    plan: CheckPlan | None,
) -> datetime | None:
    """The provider's plan (`sync.planning`) when the engine made one, else the fixed
    schedule (`sync.scheduling`); never again when final."""
    if plan is None or status.is_final:
        return next_check_after_success(
            status,
            last_movement=last_movement,
            now=now,
            policy=policy,
            estimated_delivery=info.estimated_delivery,
        )
    offsets = (e.utc_offset_minutes for e in info.events if e.utc_offset_minutes is not None)
    offset = next(offsets, None)  # the newest scan's: the parcel's local time
    value = check_value(
        status,
        now=now,
        estimated_delivery=info.estimated_delivery,
        last_movement=last_movement,
        local_offset_minutes=offset,
    )
    return planned_next_check(value, plan, now)


def _not_found_values(
    result: ShipmentResult,
    now: datetime,
    policy: SchedulePolicy,
    plan: CheckPlan | None = None,
) -> tuple[dict[str, Any], bool]:
    before = result.shipment
    status = before.status
    detail = before.status_detail if status != ShipmentStatus.PENDING else NOT_FOUND_DETAIL
    expired = is_silent_too_long(last_movement=before.last_movement, now=now, policy=policy)
    if expired:
        detail = expiry_detail(status, detail, policy=policy)
        status = ShipmentStatus.EXPIRED
    values = {
        "v_status": status,
        "v_status_detail": detail,
        "v_provider": result.provider,
        "v_last_auto_refresh": now,
        "v_next_check_at": (
            next_check_after_success(
                status, last_movement=before.last_movement, now=now, policy=policy
            )
            if plan is None or status.is_final
            else planned_next_check(
                check_value(status, now=now, last_movement=before.last_movement), plan, now
            )
        ),
        "v_check_priority": check_priority(status, None, now),
    }
    return values, expired


def _failed_values(
    result: ShipmentResult, now: datetime, policy: SchedulePolicy
) -> tuple[dict[str, Any], bool]:
    failures = result.shipment.auto_refresh_fail_count + 1
    message = result.message or "unknown error"
    if failures >= policy.max_failures:
        error = f"Auto-refresh disabled after {failures} consecutive failures; last: {message}"
        return {
            "v_enabled": False,
            "v_error": error[:2000],
            "v_last_auto_refresh": now,
            "v_next_check_at": None,
        }, True
    return {
        "v_enabled": True,
        "v_error": message[:2000],
        "v_last_auto_refresh": now,
        "v_next_check_at": now + failure_delay(failures),
    }, False


def _statement(kind: ShipmentResultKind, owned: bool) -> Update:
    table = _shipments
    where = [table.c.id == bindparam("b_id")]
    if owned:
        where.append(table.c.lease_owner == bindparam("b_owner"))
    lease = {"lease_owner": None, "lease_expires_at": None}
    if kind is ShipmentResultKind.FOUND:
        values: dict[str, Any] = {
            "status": bindparam("v_status"),
            "status_detail": bindparam("v_status_detail"),
            "carrier_status_code": bindparam("v_carrier_status_code"),
            "carrier_status_text": bindparam("v_carrier_status_text"),
            "estimated_delivery": bindparam("v_estimated_delivery"),
            "delivered_at": func.coalesce(bindparam("v_delivered_at"), table.c.delivered_at),
            "signed_by": func.coalesce(bindparam("v_signed_by"), table.c.signed_by),
            "tracking_url": func.coalesce(bindparam("v_tracking_url"), table.c.tracking_url),
            "provider": bindparam("v_provider"),
            "last_event_at": bindparam("v_last_event_at"),
            "last_auto_refresh": bindparam("v_last_auto_refresh"),
            "auto_refresh_count": table.c.auto_refresh_count + 1,
            "auto_refresh_fail_count": 0,
            "last_auto_refresh_error": None,
            "next_check_at": bindparam("v_next_check_at"),
            "events_digest": bindparam("v_events_digest"),
            "check_priority": bindparam("v_check_priority"),
        }
    elif kind is ShipmentResultKind.NOT_FOUND:
        values = {
            "status": bindparam("v_status"),
            "status_detail": bindparam("v_status_detail"),
            "provider": bindparam("v_provider"),
            "last_auto_refresh": bindparam("v_last_auto_refresh"),
            "auto_refresh_count": table.c.auto_refresh_count + 1,
            "auto_refresh_fail_count": 0,
            "last_auto_refresh_error": None,
            "next_check_at": bindparam("v_next_check_at"),
            "check_priority": bindparam("v_check_priority"),
        }
    elif kind is ShipmentResultKind.FAILED:
        # A failure can switch auto-refresh off, never on: a shipment a person switched off
        # and then refreshed by hand stays off, with nothing scheduled.
        enabled = table.c.auto_refresh_enabled
        values = {
            "auto_refresh_enabled": and_(enabled, bindparam("v_enabled", type_=Boolean)),
            "auto_refresh_fail_count": table.c.auto_refresh_fail_count + 1,
            "last_auto_refresh_error": bindparam("v_error"),
            "last_auto_refresh": bindparam("v_last_auto_refresh"),
            "next_check_at": case(
                (enabled, bindparam("v_next_check_at", type_=table.c.next_check_at.type)),
                else_=null(),
            ),
        }
    else:
        values = {
            "last_auto_refresh_error": bindparam("v_error"),
            "next_check_at": bindparam("v_next_check_at"),
        }
    values["updated_at"] = bindparam("v_updated_at")
    return update(table).where(*where).values(**values, **lease)


_STATEMENTS = {
    (kind, owned): _statement(kind, owned) for kind in ShipmentResultKind for owned in (True, False)
}


def _insert_events(connection: Connection, rows: list[dict[str, Any]]) -> int:
    """Insert the events not stored yet; returns how many were new."""
    new = insert_new(
        connection, _events, rows, unique=["shipment_id", "dedupe_key"], returning=[_events.c.id]
    )
    return len(new)


def events_digest(keys: Sequence[str]) -> str:
    """One hash for a list of events (by their dedupe keys, in any order): a poll that
    brings the same list as the last one written has nothing to insert."""
    return hashlib.sha256("\n".join(sorted(set(keys))).encode()).hexdigest()[:40]


def _event_rows(
    shipment_id: int, info: TrackInfo, keys: Sequence[str], now: datetime
) -> list[dict[str, Any]]:
    seen: set[str] = set()
    rows = []
    for event, key in zip(info.events, keys, strict=True):
        if key in seen:
            continue
        seen.add(key)
        rows.append(
            {
                "shipment_id": shipment_id,
                "occurred_at": event.occurred_at,
                "utc_offset_minutes": event.utc_offset_minutes,
                "status": event.status,
                "carrier_status_code": event.carrier_status_code,
                "carrier_status_text": event.carrier_status_text,
                "description": event.description,
                "city": event.location.city,
                "state": event.location.state,
                "postal_code": event.location.postal_code,
                "country": event.location.country,
                "dedupe_key": key,
                "created_at": now,
            }
        )
    return rows


def _still_owned(connection: Connection, ids: list[int], owner: str) -> set[int]:
    query = select(_shipments.c.id).where(
        _shipments.c.id.in_(ids), _shipments.c.lease_owner == owner
    )
    if connection.dialect.name == "postgresql":
        query = query.with_for_update()
    return set(connection.scalars(query))


def write_results(
    connection: Connection,
    results: Sequence[ShipmentResult],
    *,
    owner: str | None,
    policy: SchedulePolicy,
    now: datetime | None = None,
    plans: Mapping[str, CheckPlan] | None = None,
) -> WriteSummary:
    """Write `results` in the connection's current transaction. With `owner`, only shipments
    whose lease that owner still holds are written (the others count as `lost`). `plans`
    (by provider code) schedule the next checks from the provider's budget."""
    now = now or utcnow()
    summary = WriteSummary()
    if owner is not None and results:
        owned = _still_owned(connection, [r.shipment.id for r in results], owner)
        summary.lost = sum(1 for r in results if r.shipment.id not in owned)
        results = [r for r in results if r.shipment.id in owned]
    params: dict[ShipmentResultKind, list[dict[str, Any]]] = {
        kind: [] for kind in ShipmentResultKind
    }
    event_rows: list[dict[str, Any]] = []
    milestones: list[Milestone] = []
    for result in results:
        shipment_id = result.shipment.id
        base = {"b_id": shipment_id, "b_owner": owner, "v_updated_at": now}
        if result.kind is ShipmentResultKind.FOUND and result.info is not None:
            values, changed, expired = _found_values(
                result, result.info, now, policy, (plans or {}).get(result.provider)
            )
            keys = [event.dedupe_key for event in result.info.events]
            values["v_events_digest"] = digest = events_digest(keys)
            if digest != result.shipment.events_digest:  # else every event is stored already
                event_rows.extend(_event_rows(shipment_id, result.info, keys, now))
            before = result.shipment
            milestones += found_milestones(
                shipment_id=shipment_id,
                carrier=before.carrier,
                tracking_number=before.tracking_number,
                previous_status=before.status,
                previous_last_event_at=before.last_event_at,
                previous_estimated_delivery=before.estimated_delivery,
                info=result.info,
                status=values["v_status"],
                status_detail=values["v_status_detail"],
                last_event_at=values["v_last_event_at"],
                now=now,
                stuck_after=policy.notify.stuck_after,
            )
            outcome = (
                ShipmentOutcome.EXPIRED
                if expired
                else ShipmentOutcome.UPDATED
                if changed
                else ShipmentOutcome.UNCHANGED
            )
            summary.expired += expired
            summary.updated += changed
            summary.unchanged += not changed
            kind = ShipmentResultKind.FOUND
        elif result.kind is ShipmentResultKind.NOT_FOUND:
            values, expired = _not_found_values(
                result, now, policy, (plans or {}).get(result.provider)
            )
            outcome = ShipmentOutcome.EXPIRED if expired else ShipmentOutcome.NOT_FOUND
            if expired:
                before = result.shipment
                milestones.append(
                    expired_milestone(
                        shipment_id=shipment_id,
                        carrier=before.carrier,
                        tracking_number=before.tracking_number,
                        previous_status=before.status,
                        status_detail=values["v_status_detail"],
                    )
                )
            summary.expired += expired
            summary.not_found += 1
            kind = ShipmentResultKind.NOT_FOUND
        elif result.kind is ShipmentResultKind.FAILED:
            values, disabled = _failed_values(result, now, policy)
            outcome = ShipmentOutcome.DISABLED if disabled else ShipmentOutcome.FAILED
            summary.failed += 1
            summary.disabled += disabled
            kind = ShipmentResultKind.FAILED
        else:
            values = {"v_error": result.message, "v_next_check_at": result.defer_until or now}
            outcome = ShipmentOutcome.DEFERRED
            if result.waiting:
                summary.waiting += 1
            else:
                summary.deferred += 1
            kind = ShipmentResultKind.DEFERRED
        summary.outcomes[shipment_id] = outcome
        params[kind].append(base | values)
    summary.events_added = _insert_events(connection, event_rows)
    for kind, rows in params.items():
        if rows:
            connection.execute(_STATEMENTS[(kind, owner is not None)], rows)
    summary.notifications = enqueue_milestones(
        connection, milestones, now=now, policy=policy.notify
    )
    return summary


def apply_track_info(
    session: Session,
    shipment_id: int,
    info: TrackInfo,
    provider: str,
    *,
    policy: SchedulePolicy | None = None,
    now: datetime | None = None,
) -> WriteSummary:
    """Apply what a carrier said about one shipment now, in the caller's transaction (the
    webhook receiver and manual refresh use this). Flushes, never commits."""
    session.flush()
    row = session.execute(select(*SNAPSHOT_COLUMNS).where(Shipment.id == shipment_id)).one_or_none()
    summary = WriteSummary()
    if row is None:
        summary.lost = 1
        return summary
    claimed = ClaimedShipment.from_row(row)
    if claimed.status.is_final and not info.status.is_final:
        info = _keep_final(session, shipment_id, info)
    result = ShipmentResult(claimed, ShipmentResultKind.FOUND, provider, info=info)
    summary = write_results(
        session.connection(), [result], owner=None, policy=policy or SchedulePolicy(), now=now
    )
    cached = session.identity_map.get(session.identity_key(Shipment, shipment_id))
    if cached is not None:
        session.expire(cached)
    return summary


def _keep_final(session: Session, shipment_id: int, info: TrackInfo) -> TrackInfo:
    """A late, out-of-order push must not reopen a final shipment: keep its status and
    what describes it, add only the events."""
    current = session.get(Shipment, shipment_id)
    if current is None:  # pragma: no cover - checked by the caller
        return info
    return replace(
        info,
        status=current.status,
        status_detail=current.status_detail,
        carrier_status_code=current.carrier_status_code,
        carrier_status_text=current.carrier_status_text,
        estimated_delivery=current.estimated_delivery,
    )
