"""Milestones are facts, not polls: each is found once per what it names, whatever is polled
again, corrected or flapped (pure functions, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from parcelwatch.domain import Location, ShipmentStatus, TrackEvent, TrackInfo
from parcelwatch.notifications.events import EventType
from parcelwatch.notifications.milestones import Milestone, found_milestones

NOW = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
S = ShipmentStatus


def _event(status: ShipmentStatus, at: datetime, text: str = "scan") -> TrackEvent:
    return TrackEvent(occurred_at=at, status=status, description=text, location=Location("Reno"))


def _found(
    before: ShipmentStatus,
    info: TrackInfo,
    *,
    status: ShipmentStatus | None = None,
    previous_eta: datetime | None = None,
    previous_last_event_at: datetime | None = None,
    now: datetime = NOW,
) -> list[Milestone]:
    newest = max((e.occurred_at for e in info.events), default=None)
    return found_milestones(
        shipment_id=7,
        carrier="ups",
        tracking_number="1Z",
        previous_status=before,
        previous_last_event_at=previous_last_event_at,
        previous_estimated_delivery=previous_eta,
        info=info,
        status=status or info.status,
        status_detail=None,
        last_event_at=newest,
        now=now,
        stuck_after=timedelta(days=4),
    )


def _types(found: list[Milestone]) -> list[EventType]:
    return [m.event_type for m in found]


@pytest.mark.parametrize(
    ("status", "event_type"),
    [
        (S.OUT_FOR_DELIVERY, EventType.OUT_FOR_DELIVERY),
        (S.DELIVERED, EventType.DELIVERED),
        (S.DELIVERY_ATTEMPTED, EventType.DELIVERY_ATTEMPTED),
        (S.AVAILABLE_FOR_PICKUP, EventType.AVAILABLE_FOR_PICKUP),
        (S.EXCEPTION, EventType.EXCEPTION),
        (S.RETURNING_TO_SENDER, EventType.RETURNING_TO_SENDER),
    ],
)
def test_each_status_milestone_is_found_when_the_status_is_reached(
    status: ShipmentStatus, event_type: EventType
) -> None:
    info = TrackInfo(status=status, events=(_event(status, NOW - timedelta(hours=1)),))
    assert _types(_found(S.IN_TRANSIT, info)) == [event_type]


def test_the_first_move_is_in_transit_but_going_back_to_in_transit_is_not_news() -> None:
    info = TrackInfo(status=S.IN_TRANSIT, events=(_event(S.IN_TRANSIT, NOW),))
    assert _types(_found(S.INFO_RECEIVED, info)) == [EventType.IN_TRANSIT]
    assert _types(_found(S.PENDING, info)) == [EventType.IN_TRANSIT]
    assert _found(S.OUT_FOR_DELIVERY, info) == []


def test_polling_the_same_data_again_finds_nothing() -> None:
    info = TrackInfo(status=S.OUT_FOR_DELIVERY, events=(_event(S.OUT_FOR_DELIVERY, NOW),))
    assert _found(S.OUT_FOR_DELIVERY, info) == []


def test_a_flapping_status_names_the_same_milestone_the_same_way() -> None:
    ofd = _event(S.OUT_FOR_DELIVERY, NOW - timedelta(hours=2))
    first = _found(S.IN_TRANSIT, TrackInfo(status=S.OUT_FOR_DELIVERY, events=(ofd,)))
    # back to in transit, then out for delivery again with the same (or corrected) scan
    corrected = _event(S.OUT_FOR_DELIVERY, NOW - timedelta(hours=2), text="On vehicle")
    again = _found(S.IN_TRANSIT, TrackInfo(status=S.OUT_FOR_DELIVERY, events=(corrected,)))
    assert [m.dedupe_key for m in first] == [m.dedupe_key for m in again]


def test_out_for_delivery_on_another_day_is_news_again() -> None:
    monday = _event(S.OUT_FOR_DELIVERY, NOW - timedelta(days=1))
    tuesday = _event(S.OUT_FOR_DELIVERY, NOW)
    first = _found(S.IN_TRANSIT, TrackInfo(status=S.OUT_FOR_DELIVERY, events=(monday,)))
    second = _found(
        S.DELIVERY_ATTEMPTED, TrackInfo(status=S.OUT_FOR_DELIVERY, events=(tuesday, monday))
    )
    assert first[0].dedupe_key != second[0].dedupe_key


def test_delivered_is_one_milestone_per_shipment() -> None:
    a = _found(S.IN_TRANSIT, TrackInfo(status=S.DELIVERED, events=(_event(S.DELIVERED, NOW),)))
    later = _event(S.DELIVERED, NOW + timedelta(days=1))
    b = _found(S.EXCEPTION, TrackInfo(status=S.DELIVERED, events=(later,)))
    assert a[0].dedupe_key == b[0].dedupe_key == "7:shipment.delivered"


def test_an_eta_moved_by_a_day_or_made_earlier_is_news_a_few_hours_later_is_not() -> None:
    eta = NOW + timedelta(days=2)
    events = (_event(S.IN_TRANSIT, NOW),)

    def moved(new: datetime) -> list[EventType]:
        info = TrackInfo(status=S.IN_TRANSIT, events=events, estimated_delivery=new)
        return _types(_found(S.IN_TRANSIT, info, previous_eta=eta))

    assert moved(eta + timedelta(days=1)) == [EventType.ETA_CHANGED]
    assert moved(eta - timedelta(hours=3)) == [EventType.ETA_CHANGED]
    assert moved(eta + timedelta(hours=5)) == []
    assert moved(eta) == []


def test_a_first_eta_is_not_a_change() -> None:
    info = TrackInfo(
        status=S.IN_TRANSIT, events=(_event(S.IN_TRANSIT, NOW),), estimated_delivery=NOW
    )
    assert _found(S.IN_TRANSIT, info, previous_eta=None) == []


def test_in_transit_without_a_new_event_for_the_stuck_days_is_stuck_once_per_last_event() -> None:
    last = _event(S.IN_TRANSIT, NOW - timedelta(days=5))
    info = TrackInfo(status=S.IN_TRANSIT, events=(last,))
    found = _found(S.IN_TRANSIT, info, previous_last_event_at=last.occurred_at)
    assert _types(found) == [EventType.STUCK]
    assert found[0].new_events == ()
    recent = TrackInfo(status=S.IN_TRANSIT, events=(_event(S.IN_TRANSIT, NOW - timedelta(days=3)),))
    assert _found(S.IN_TRANSIT, recent) == []


def test_a_day_past_its_eta_and_not_delivered_is_late_and_delivered_never_is() -> None:
    events = (_event(S.IN_TRANSIT, NOW),)
    past = NOW - timedelta(days=1, hours=1)
    info = TrackInfo(status=S.IN_TRANSIT, events=events, estimated_delivery=past)
    assert _types(_found(S.IN_TRANSIT, info, previous_eta=past)) == [EventType.LATE]
    delivered = TrackInfo(
        status=S.DELIVERED, events=(_event(S.DELIVERED, NOW),), estimated_delivery=past
    )
    assert _types(_found(S.DELIVERED, delivered, previous_eta=past)) == []


def test_new_events_are_only_those_after_the_last_one_known() -> None:
    old = _event(S.IN_TRANSIT, NOW - timedelta(hours=5))
    new = _event(S.OUT_FOR_DELIVERY, NOW - timedelta(hours=1))
    info = TrackInfo(status=S.OUT_FOR_DELIVERY, events=(new, old))
    (found,) = _found(S.IN_TRANSIT, info, previous_last_event_at=old.occurred_at)
    assert found.new_events == (new,)


def test_expiring_is_a_milestone_of_its_own() -> None:
    info = TrackInfo(status=S.IN_TRANSIT, events=(_event(S.IN_TRANSIT, NOW - timedelta(days=20)),))
    found = _found(S.IN_TRANSIT, info, status=S.EXPIRED)
    assert _types(found) == [EventType.EXPIRED]
