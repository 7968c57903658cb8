"""The real carrier parsers read every emulated answer without an unmapped status code."""

from __future__ import annotations

from datetime import timedelta

import pytest

from parcelwatch.carriers import dhl as dhl_client
from parcelwatch.carriers import fedex as fedex_client
from parcelwatch.carriers import shipengine as shipengine_client
from parcelwatch.carriers import ups as ups_client
from parcelwatch.carriers import usps as usps_client
from parcelwatch.domain import ShipmentStatus, TrackInfo
from parcelwatch.emulator import Storyline, dhl, fedex, shipengine, ups, usps
from parcelwatch.emulator.storylines import build_timeline

from .conftest import START

NUMBER = "1Z999AA10123456784"
STAGES = [
    (story, hours)
    for story in Storyline
    if story is not Storyline.NOT_FOUND
    for hours in (1, 30, 60, 90, 500)
]


def parsed(story: Storyline, hours: int) -> dict[str, TrackInfo | None]:
    us = build_timeline(NUMBER, story, START)
    eu = build_timeline(NUMBER, story, START, region="eu")
    now = START + timedelta(hours=hours)
    fedex_body = {
        "output": {
            "completeTrackResults": [
                {"trackingNumber": NUMBER, "trackResults": [fedex.render_track_result(us, now)]}
            ]
        }
    }
    return {
        "usps": usps_client.parse_tracking(NUMBER, usps.render_tracking(us, now)),
        "ups": ups_client.parse_track_response(NUMBER, ups.render_tracking(us, now)).info,
        "fedex": fedex_client.parse_track_response([NUMBER], fedex_body)[0].info,
        "dhl": dhl_client.parse_shipments_response(NUMBER, dhl.render_tracking(eu, now)).info,
        "shipengine": shipengine_client.parse_tracking(
            NUMBER, shipengine.render_tracking(us, now, "ups"), carrier="ups"
        ),
    }


@pytest.mark.parametrize(("story", "hours"), STAGES, ids=[f"{s.value}-{h}h" for s, h in STAGES])
def test_no_emulated_status_is_unknown_to_the_clients(story: Storyline, hours: int) -> None:
    for carrier, info in parsed(story, hours).items():
        assert info is not None, carrier
        assert info.status is not ShipmentStatus.UNKNOWN, carrier
        unknown = [e.carrier_status_code for e in info.events if e.status is ShipmentStatus.UNKNOWN]
        assert not unknown, (carrier, unknown)
        assert info.events, carrier


def test_a_finished_normal_storyline_reads_as_delivered_with_its_signer_everywhere() -> None:
    signer = build_timeline(NUMBER, Storyline.NORMAL, START).events[-1].signer
    for carrier, info in parsed(Storyline.NORMAL, 500).items():
        assert info is not None
        assert info.status is ShipmentStatus.DELIVERED, carrier
        assert info.delivered_at is not None, carrier
        assert info.signed_by == signer, carrier
