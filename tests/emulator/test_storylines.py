"""Storylines are deterministic, advance with the emulator clock, and end where they should."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from starlette.applications import Starlette

from parcelwatch.emulator import EmulatorClock, Storyline, emulator_state, find_number
from parcelwatch.emulator.storylines import EventKind, build_timeline, choose_storyline

from .conftest import (
    START,
    FakeMonotonic,
    fedex_body,
    fedex_token,
    make_client,
    ups_headers,
    ups_token,
    usps_token,
)

FINAL_KINDS = {
    Storyline.NORMAL: EventKind.DELIVERED,
    Storyline.FAILED_ATTEMPT: EventKind.DELIVERED,
    Storyline.EXCEPTION: EventKind.HELD,
    Storyline.RETURN_TO_SENDER: EventKind.RETURNED,
    Storyline.AVAILABLE_FOR_PICKUP: EventKind.AVAILABLE_FOR_PICKUP,
    Storyline.NEVER_MOVES: EventKind.LABEL_CREATED,
    Storyline.CANCELLED: EventKind.CANCELLED,
}


def test_the_same_number_and_seed_always_get_the_same_timeline() -> None:
    first = build_timeline("9400100000000000000017", Storyline.NORMAL, START, seed=3)
    again = build_timeline("9400100000000000000017", Storyline.NORMAL, START, seed=3)
    assert first == again
    assert choose_storyline("1Z999AA10123456784", 3) is choose_storyline("1Z999AA10123456784", 3)


def test_unpinned_numbers_spread_over_every_storyline() -> None:
    seen = Counter(choose_storyline(f"NUM{i:06d}") for i in range(2000))
    assert set(seen) == set(Storyline)
    assert seen[Storyline.NORMAL] > seen[Storyline.CANCELLED]


@pytest.mark.parametrize("storyline", list(Storyline))
def test_find_number_returns_a_number_following_that_storyline(storyline: Storyline) -> None:
    assert choose_storyline(find_number(storyline, seed=5), 5) is storyline


@pytest.mark.parametrize("storyline", list(FINAL_KINDS))
def test_each_storyline_ends_in_its_final_event(storyline: Storyline) -> None:
    timeline = build_timeline("EMU00000042", storyline, START)
    assert timeline.events[0].kind is EventKind.LABEL_CREATED
    assert timeline.events[-1].kind is FINAL_KINDS[storyline]
    times = [event.at for event in timeline.events]
    assert times == sorted(times)


def test_not_found_numbers_have_no_events() -> None:
    assert build_timeline("EMU00000042", Storyline.NOT_FOUND, START).events == ()


def test_failed_attempt_tries_once_then_delivers_with_a_signer() -> None:
    kinds = [e.kind for e in build_timeline("EMU7", Storyline.FAILED_ATTEMPT, START).events]
    assert kinds[-4:] == [
        EventKind.OUT_FOR_DELIVERY,
        EventKind.DELIVERY_ATTEMPTED,
        EventKind.OUT_FOR_DELIVERY,
        EventKind.DELIVERED,
    ]
    assert build_timeline("EMU7", Storyline.FAILED_ATTEMPT, START).events[-1].signer


@pytest.mark.parametrize("number", [f"EMU{i}" for i in range(25)])
def test_deliveries_happen_in_local_daytime(number: str) -> None:
    delivered = build_timeline(number, Storyline.NORMAL, START).events[-1]
    assert 10 <= delivered.local_at.hour < 19


def test_visible_events_grow_as_time_passes_newest_first() -> None:
    timeline = build_timeline("EMU1", Storyline.NORMAL, START)
    early = timeline.visible(START + timedelta(hours=1))
    later = timeline.visible(START + timedelta(days=2))
    assert [e.kind for e in early] == [EventKind.LABEL_CREATED]
    assert len(later) > len(early)
    assert later[0].at >= later[-1].at
    assert timeline.visible(START + timedelta(days=30))[0].kind is EventKind.DELIVERED


def test_clock_runs_speed_times_faster_than_real_time() -> None:
    real = FakeMonotonic()
    clock = EmulatorClock(speed=60, start=START, monotonic=real)
    real.now += 60
    assert clock.now() == START + timedelta(hours=1)
    assert clock.advance(timedelta(days=1)) == START + timedelta(days=1, hours=1)


def test_frozen_clock_moves_only_when_advanced() -> None:
    clock = EmulatorClock(speed=0, start=START)
    assert clock.now() == START
    with pytest.raises(ValueError, match="forward"):
        clock.advance(timedelta(seconds=-1))


@pytest.mark.anyio
async def test_a_number_starts_when_first_seen_and_advances_with_the_clock(
    build: Callable[..., Starlette],
) -> None:
    app = build(pins={"EMU55": "normal"})
    async with make_client(app) as client:
        token = await usps_token(client)
        headers = {"Authorization": f"Bearer {token}"}
        url = "/usps/tracking/v3/tracking/EMU55?expand=DETAIL"
        first = (await client.get(url, headers=headers)).json()
        assert first["statusCategory"] == "Pre-Shipment"
        assert len(first["trackingEvents"]) == 1
        advanced = await client.post("/_emulator/clock", json={"advance": "10d"})
        assert advanced.json()["now"] == (START + timedelta(days=10)).isoformat()
        done = (await client.get(url, headers=headers)).json()
    assert done["statusCategory"] == "Delivered"
    assert done["trackingEvents"][0]["name"]
    assert done["trackingEvents"][-1]["eventCode"] == "GX"


@pytest.mark.anyio
async def test_a_configured_epoch_anchors_every_number(build: Callable[..., Starlette]) -> None:
    epoch = START - timedelta(days=20)
    app = build(epoch=epoch, pins={"EMU56": "normal"})
    story = emulator_state(app).timeline("EMU56")
    assert story.started_at == epoch
    assert story.visible(START)[0].kind is EventKind.DELIVERED


@pytest.mark.anyio
async def test_delivered_answers_carry_signer_and_delivery_dates(
    build: Callable[..., Starlette],
) -> None:
    number = "EMU0000077"
    app = build(pins={number: {"storyline": "normal", "age": "15d"}})
    signer = emulator_state(app).timeline(number).events[-1].signer
    async with make_client(app) as client:
        ups = await client.get(
            f"/ups/api/track/v1/details/{number}", headers=ups_headers(await ups_token(client))
        )
        fedex = await client.post(
            "/fedex/track/v1/trackingnumbers",
            json=fedex_body(number),
            headers={"Authorization": f"Bearer {await fedex_token(client)}"},
        )
        dhl = await client.get(
            "/dhl/track/shipments", params={"trackingNumber": number}, headers={"DHL-API-Key": "k"}
        )
        shipengine = await client.get(
            "/shipengine/v1/tracking",
            params={"carrier_code": "fedex", "tracking_number": number},
            headers={"API-Key": "k"},
        )
    package = ups.json()["trackResponse"]["shipment"][0]["package"][0]
    assert package["currentStatus"]["type"] == "D"
    assert package["deliveryDate"][0]["type"] == "DEL"
    assert package["deliveryInformation"]["receivedBy"] == signer
    result = fedex.json()["output"]["completeTrackResults"][0]["trackResults"][0]
    assert result["latestStatusDetail"]["code"] == "DL"
    assert result["deliveryDetails"]["receivedByName"] == signer
    assert result["dateAndTimes"][0]["type"] == "ACTUAL_DELIVERY"
    shipment = dhl.json()["shipments"][0]
    assert shipment["status"]["statusCode"] == "delivered"
    assert shipment["details"]["proofOfDelivery"]["signed"]["name"] == signer
    body = shipengine.json()
    assert body["status_code"] == "DE"
    assert body["actual_delivery_date"].endswith("Z")
    assert body["events"][0]["signer"] == signer
    assert body["events"][0]["carrier_status_code"] == "DL"


@pytest.mark.anyio
async def test_event_times_agree_between_local_and_utc_renderings(
    build: Callable[..., Starlette],
) -> None:
    number = "EMU0000078"
    app = build(pins={number: {"storyline": "normal", "age": "15d"}})
    async with make_client(app) as client:
        usps = await client.get(
            f"/usps/tracking/v3/tracking/{number}?expand=DETAIL",
            headers={"Authorization": f"Bearer {await usps_token(client)}"},
        )
        ups = await client.get(
            f"/ups/api/track/v1/details/{number}", headers=ups_headers(await ups_token(client))
        )
    for event in usps.json()["trackingEvents"]:
        local = datetime.fromisoformat(event["eventTimestamp"] + event["GMTOffset"])
        assert local == datetime.fromisoformat(event["GMTTimestamp"])
    for activity in ups.json()["trackResponse"]["shipment"][0]["package"][0]["activity"]:
        local = datetime.strptime(activity["date"] + activity["time"], "%Y%m%d%H%M%S")
        gmt = datetime.strptime(activity["gmtDate"] + activity["gmtTime"], "%Y%m%d%H%M%S")
        offset = datetime.fromisoformat(f"2000-01-01T00:00:00{activity['gmtOffset']}").utcoffset()
        assert offset is not None
        assert local - offset == gmt


@pytest.mark.anyio
async def test_dhl_parcel_and_express_numbers_render_timestamps_differently(
    build: Callable[..., Starlette],
) -> None:
    app = build(head_start="5d")
    formats = set()
    async with make_client(app) as client:
        for index in range(12):
            number = f"JJD{index:08d}"
            answer = await client.get(
                "/dhl/track/shipments",
                params={"trackingNumber": number},
                headers={"DHL-API-Key": "k"},
            )
            if answer.status_code == 200:
                shipment = answer.json()["shipments"][0]
                stamp = shipment["events"][0]["timestamp"]
                formats.add((shipment["service"], len(stamp) > 19))
    assert formats == {("express", False), ("parcel-de", True)}
