"""Dashboard pages and forms, served by the real app on the test database."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import update

from parcelwatch.accounts.roles import Role
from parcelwatch.config import Settings
from parcelwatch.domain import ShipmentStatus, utcnow
from parcelwatch.models import Shipment, SyncRun
from parcelwatch.web.views import running_late
from tests.conftest import Browser, Database, browser_session
from tests.web.conftest import HTML, AddShipment

UPS = "1Z999AA10123456784"
USPS = "9400111899223850000008"
FEDEX = "771000000002"


def _count(html: str, label: str) -> int:
    match = re.search(
        r'<span class="card-count">(\d+)</span><span class="card-label">' + label, html
    )
    assert match, label
    return int(match.group(1))


def test_overview_counts_shipments_by_status(web: Browser, add_shipment: AddShipment) -> None:
    add_shipment(UPS, status=ShipmentStatus.OUT_FOR_DELIVERY)
    add_shipment(USPS, status=ShipmentStatus.IN_TRANSIT)
    add_shipment(FEDEX, status=ShipmentStatus.EXCEPTION)
    add_shipment("1Z12345E0398002219", status=ShipmentStatus.DELIVERED)

    html = web.get("/").text

    assert _count(html, "Out for delivery") == 1
    assert _count(html, "In transit") == 1
    assert _count(html, "Need attention") == 1
    assert _count(html, "Delivered this week") == 1
    assert _count(html, "Sync failing") == 0


def test_overview_counts_shipments_whose_updates_are_off_as_sync_failing(
    web: Browser, add_shipment: AddShipment, database: Database
) -> None:
    shipment = add_shipment(UPS, status=ShipmentStatus.IN_TRANSIT)
    with database.sessions.begin() as session:
        session.execute(
            update(Shipment)
            .where(Shipment.id == shipment.id)
            .values(auto_refresh_enabled=False, last_auto_refresh_error="carrier said no")
        )

    assert _count(web.get("/").text, "Sync failing") == 1


def test_an_empty_overview_invites_adding_a_first_shipment(web: Browser) -> None:
    page = web.get("/")
    assert page.status_code == 200
    assert "Add your first shipment" in page.text


def test_the_list_shows_badge_carrier_description_and_last_event(
    web: Browser, add_shipment: AddShipment
) -> None:
    add_shipment(UPS, description="Running shoes", status=ShipmentStatus.IN_TRANSIT)

    html = web.get("/shipments").text

    assert "Running shoes" in html
    assert UPS in html
    assert "UPS" in html
    assert 'class="badge tone-move"' in html
    assert "In transit" in html
    assert "Arrived at facility" in html


def test_the_list_filters_by_search_status_and_carrier(
    web: Browser, add_shipment: AddShipment
) -> None:
    add_shipment(UPS, description="Running shoes", status=ShipmentStatus.IN_TRANSIT)
    add_shipment(USPS, description="Books", status=ShipmentStatus.DELIVERED)

    searched = web.get("/shipments", params={"view": "all", "q": "shoes"}).text
    by_status = web.get("/shipments", params={"view": "all", "status": "delivered"}).text
    by_carrier = web.get("/shipments", params={"view": "all", "carrier": "usps"}).text
    active = web.get("/shipments").text

    assert "Running shoes" in searched
    assert "Books" not in searched
    assert "Books" in by_status
    assert "Running shoes" not in by_status
    assert "Books" in by_carrier
    assert "Running shoes" not in by_carrier
    assert "Running shoes" in active
    assert "Books" not in active


def test_searching_or_picking_a_status_from_the_default_tab_looks_through_every_shipment(
    web: Browser, add_shipment: AddShipment
) -> None:
    add_shipment(UPS, description="Running shoes", status=ShipmentStatus.IN_TRANSIT)
    add_shipment(USPS, description="Books", status=ShipmentStatus.DELIVERED)

    searched = web.get("/shipments", params={"view": "active", "q": "books"}).text
    by_status = web.get("/shipments", params={"view": "active", "status": "delivered"}).text
    delivered_tab = web.get("/shipments", params={"view": "delivered", "q": "shoes"}).text

    assert "Books" in searched
    assert "Books" in by_status
    assert "Running shoes" not in by_status
    assert "Running shoes" not in delivered_tab  # another tab still narrows the search


def test_a_shipment_still_moving_a_day_after_its_eta_is_marked_late(
    web: Browser, add_shipment: AddShipment
) -> None:
    late = add_shipment(UPS, status=ShipmentStatus.IN_TRANSIT, eta_in_days=-3)
    on_time = add_shipment(USPS, status=ShipmentStatus.IN_TRANSIT, eta_in_days=2)

    late_page = web.get(f"/shipments/{late.id}").text
    on_time_page = web.get(f"/shipments/{on_time.id}").text
    listing = web.get("/shipments").text

    assert '<strong class="text-warn">late</strong>' in late_page
    assert "late</strong>" not in on_time_page
    assert listing.count('<strong class="text-warn">late</strong>') == 1


def test_running_late_ignores_final_shipments_and_the_day_of_the_eta() -> None:
    now = utcnow()
    assert running_late(ShipmentStatus.IN_TRANSIT, now - timedelta(days=2), now=now)
    assert not running_late(ShipmentStatus.IN_TRANSIT, now - timedelta(hours=20), now=now)
    assert not running_late(ShipmentStatus.DELIVERED, now - timedelta(days=5), now=now)
    assert not running_late(ShipmentStatus.IN_TRANSIT, None, now=now)


def test_the_list_finds_a_number_typed_with_spaces(web: Browser, add_shipment: AddShipment) -> None:
    add_shipment(UPS, description="Running shoes")
    html = web.get("/shipments", params={"q": "1z 999 aa1"}).text
    assert "Running shoes" in html


def test_the_list_pages_through_many_shipments(web: Browser, add_shipment: AddShipment) -> None:
    for index in range(30):
        add_shipment(f"DEMO{index:06d}", carrier="dhl", description=f"Parcel {index:02d}")

    first = web.get("/shipments", params={"sort": "created"}).text
    second = web.get("/shipments", params={"sort": "created", "page": 2}).text

    assert "page 1 of 2" in first
    assert "Parcel 29" in first
    assert "Parcel 00" not in first
    assert "page 2 of 2" in second
    assert "Parcel 00" in second
    assert "Parcel 29" not in second
    assert 'rel="next"' in first


def test_the_shipment_page_shows_the_timeline_with_machine_readable_times(
    web: Browser, add_shipment: AddShipment
) -> None:
    shipment = add_shipment(
        UPS, description="Running shoes", status=ShipmentStatus.DELIVERED, detail="Delivered"
    )

    html = web.get(f"/shipments/{shipment.id}").text

    assert "Tracking history" in html
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT[^"]+\+00:00" data-local="datetime"', html)
    assert "UTC</time>" in html  # the fallback before the browser localizes it
    assert "Memphis, TN, US" in html
    assert "J SMITH" in html
    assert "https://www.ups.com/track?tracknum=" + UPS in html
    assert "Final status: nothing more to fetch." in html


def test_a_carrier_link_that_is_not_a_web_address_is_not_rendered(
    web: Browser, add_shipment: AddShipment, database: Database
) -> None:
    shipment = add_shipment(UPS)
    with database.sessions.begin() as session:
        session.execute(
            update(Shipment)
            .where(Shipment.id == shipment.id)
            .values(tracking_url="javascript:alert(1)")
        )

    html = web.get(f"/shipments/{shipment.id}").text

    assert "javascript:" not in html
    assert "Track on UPS" not in html


def test_the_refresh_button_waits_out_the_cool_down(
    web: Browser, add_shipment: AddShipment, database: Database
) -> None:
    shipment = add_shipment(UPS, status=ShipmentStatus.IN_TRANSIT)
    with database.sessions.begin() as session:
        session.execute(
            update(Shipment)
            .where(Shipment.id == shipment.id)
            .values(last_manual_refresh=utcnow() - timedelta(minutes=1))
        )

    html = web.get(f"/shipments/{shipment.id}").text

    assert re.search(r'id="refresh-button"\s+disabled', html)
    assert "you can refresh again at" in html


def test_the_refresh_button_says_why_an_unconfigured_carrier_is_not_polled(
    web: Browser, add_shipment: AddShipment
) -> None:
    shipment = add_shipment(USPS)
    html = web.get(f"/shipments/{shipment.id}").text
    assert re.search(r'id="refresh-button"\s+disabled', html)
    assert "Not polled: USPS_CLIENT_ID and USPS_CLIENT_SECRET not set" in html


def test_a_missing_shipment_gets_a_404_page(web: Browser) -> None:
    page = web.get("/shipments/999")
    assert page.status_code == 404
    assert "Shipment 999 does not exist." in page.text
    assert "<html" in page.text


def test_an_unknown_address_gets_an_html_404_for_people_and_json_for_programs(
    web: Browser,
) -> None:
    person = web.get("/no-such-page", headers=HTML)
    program = web.get("/api/no-such-thing", headers=HTML)

    assert person.status_code == 404
    assert "There is no page at this address." in person.text
    assert program.status_code == 404
    assert program.json() == {"detail": "Not Found"}


def test_the_add_page_labels_every_field(web: Browser) -> None:
    html = web.get("/add").text
    for field in ("tracking_number", "carrier", "one-description", "text", "text-description"):
        assert f'for="{field}"' in html
        assert f'id="{field}"' in html


def test_the_operations_page_shows_health_runs_and_carriers(web: Browser) -> None:
    html = web.get("/operations").text
    assert "Health" in html
    assert "Database" in html
    assert "No sync has run yet." in html
    assert "USPS_CLIENT_ID and USPS_CLIENT_SECRET" in html
    assert 'id="pause-button"' in html  # the owner may pause


def test_a_member_sees_operations_but_no_pause_button(web_settings: Settings) -> None:
    from parcelwatch.api.app import create_app

    browser_session(web_settings)  # the owner comes first
    member = browser_session(web_settings, name="sam", role=Role.MEMBER)
    with Browser(create_app(web_settings), member) as client:
        html = client.get("/operations").text
    assert "Health" in html
    assert 'id="pause-button"' not in html
    assert "for the owner and administrators" in html


def test_the_demo_banner_shows_only_in_demo_mode(web: Browser) -> None:
    assert "Demo mode." not in web.get("/").text
    web.app.state.settings = web.app.state.settings.model_copy(  # type: ignore[attr-defined]
        update={"parcelwatch_demo": True}
    )
    assert "Demo mode." in web.get("/").text


def test_static_assets_are_served(web: Browser) -> None:
    assert "prefers-color-scheme: dark" in web.get("/static/app.css").text
    assert "localizeTimes" in web.get("/static/app.js").text


def test_the_operations_page_lists_sync_runs_that_did_something(
    web: Browser, database: Database
) -> None:
    now = utcnow()
    with database.sessions.begin() as session:
        session.add(SyncRun(trigger="updater", outcome="ok", started_at=now, finished_at=now))
        session.add(
            SyncRun(
                trigger="manual",
                outcome="partial",
                started_at=now,
                finished_at=now,
                checked=3,
                updated=1,
                failed=2,
                errors=["ups: carrier unavailable"],
            )
        )

    html = web.get("/operations").text

    assert "manual" in html
    assert "ups: carrier unavailable" in html
    assert ">updater<" not in html  # the idle pass is left out


def test_the_operations_page_lists_every_live_engine_and_the_shared_pause(
    web: Browser, database: Database
) -> None:
    from parcelwatch.domain import utcnow
    from parcelwatch.sync.control import set_paused
    from parcelwatch.sync.runs import beat

    assert "No engine is running." in web.get("/operations").text
    beat(  # a worker on another host, as its heartbeat shows it
        database.engine,
        engine_id="worker-box2-4242-abc123",
        kind="worker",
        started_at=utcnow(),
        paused=False,
        in_flight_batches=3,
        shipments_per_second=12.5,
        carriers="ups,fedex",
    )
    set_paused(database.engine, paused=True)
    html = web.get("/operations").text
    assert "worker-box2-4242-abc123" in html
    assert "12.5" in html
    assert "ups, fedex" in html
    assert "Paused for every engine" in html
