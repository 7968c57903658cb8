"""The shipments REST API, end to end through the real app on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi.testclient import TestClient

from parcelwatch.domain import ShipmentStatus, TrackEvent, utcnow
from parcelwatch.models import TrackingEvent
from tests.conftest import Database

UPS_NUMBER = "1Z5R89390357567127"
USPS_NUMBER = "9361289673090019555035"
FEDEX_NUMBER = "123456789012"


def test_registering_a_number_detects_the_carrier_and_answers_201(api: TestClient) -> None:
    response = api.post("/api/shipments", json={"tracking_number": "1z 5r8-939 0357567127"})
    assert response.status_code == 201
    body = response.json()
    assert body["tracking_number"] == UPS_NUMBER
    assert body["carrier"] == "ups"
    assert body["status"] == "pending"
    assert body["auto_refresh_enabled"] is True
    assert body["tracking_url"].startswith("https://www.ups.com/")


def test_registering_the_same_number_again_returns_the_existing_shipment(api: TestClient) -> None:
    first = api.post("/api/shipments", json={"tracking_number": UPS_NUMBER})
    again = api.post("/api/shipments", json={"tracking_number": UPS_NUMBER, "carrier": "ups"})
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert len(api.get("/api/shipments").json()["items"]) == 1


def test_an_undetectable_number_is_a_422_listing_the_supported_carriers(api: TestClient) -> None:
    response = api.post("/api/shipments", json={"tracking_number": "HELLO12345"})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "Could not detect the carrier" in detail
    assert "usps" in detail
    assert "fedex" in detail


def test_an_unknown_carrier_is_a_422_listing_the_supported_carriers(api: TestClient) -> None:
    response = api.post("/api/shipments", json={"tracking_number": UPS_NUMBER, "carrier": "owl"})
    assert response.status_code == 422
    assert "Unknown carrier 'owl'" in response.json()["detail"]
    assert "canada_post" in response.json()["detail"]


def test_an_explicit_carrier_overrides_detection(api: TestClient) -> None:
    response = api.post(
        "/api/shipments", json={"tracking_number": "CA123456789", "carrier": "canada_post"}
    )
    assert response.status_code == 201
    assert response.json()["carrier"] == "canada_post"


def test_bulk_registration_reports_each_item_and_writes_only_the_valid_ones(
    api: TestClient,
) -> None:
    api.post("/api/shipments", json={"tracking_number": FEDEX_NUMBER})
    response = api.post(
        "/api/shipments/bulk",
        json={
            "items": [
                {"tracking_number": UPS_NUMBER, "description": "shoes"},
                {"tracking_number": FEDEX_NUMBER},
                {"tracking_number": "???"},
                {"tracking_number": USPS_NUMBER, "carrier": "usps"},
            ]
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["created"], body["existing"], body["errors"]) == (2, 1, 1)
    outcomes = [item["outcome"] for item in body["items"]]
    assert outcomes == ["created", "existing", "error", "created"]
    assert "not a tracking number" in body["items"][2]["error"]
    numbers = {item["tracking_number"] for item in api.get("/api/shipments").json()["items"]}
    assert numbers == {UPS_NUMBER, FEDEX_NUMBER, USPS_NUMBER}


def test_bulk_registration_refuses_more_than_500_items(api: TestClient) -> None:
    items = [{"tracking_number": f"CA{i:09d}", "carrier": "canada_post"} for i in range(501)]
    response = api.post("/api/shipments/bulk", json={"items": items})
    assert response.status_code == 422
    assert api.get("/api/shipments").json()["items"] == []
    body = response.json()
    assert body["detail"].startswith("Invalid request: items: ")
    assert "500" in body["detail"]
    assert "CA000000000" not in response.text  # the input is not echoed back


def test_a_malformed_body_names_the_field_and_the_problem(api: TestClient) -> None:
    response = api.post("/api/shipments", json={"description": "no number"})

    assert response.status_code == 422
    assert response.json()["detail"] == "Invalid request: tracking_number: Field required"
    assert response.json()["errors"] == [
        {"loc": ["body", "tracking_number"], "msg": "Field required"}
    ]


def test_detect_finds_every_number_in_a_pasted_email(api: TestClient) -> None:
    email = (
        "Thanks for your order #5512!\n"
        "Box 1 ships with UPS, tracking 1Z 5R8 939 03 5756 7127.\n"
        f"Box 2: USPS {USPS_NUMBER}. Questions? Call 555-123-4567.\n"
    )
    response = api.post("/api/detect", json={"text": email})
    assert response.status_code == 200
    numbers = response.json()["numbers"]
    # The fields clients had before the candidates answer are unchanged.
    assert [{k: n[k] for k in ("tracking_number", "carrier", "carrier_name")} for n in numbers] == [
        {"tracking_number": UPS_NUMBER, "carrier": "ups", "carrier_name": "UPS"},
        {"tracking_number": USPS_NUMBER, "carrier": "usps", "carrier_name": "USPS"},
    ]
    assert [n["ambiguous"] for n in numbers] == [False, False]
    assert numbers[0]["candidates"] == [
        {
            "carrier": "ups",
            "carrier_name": "UPS",
            "format": "UPS 1Z",
            "check_digit": True,
            "reason": "UPS 1Z: pattern and check digit",
        }
    ]


def test_detect_gives_every_candidate_with_its_reason_when_two_carriers_fit(
    api: TestClient,
) -> None:
    # Purolator's published test number 287809468872 also satisfies FedEx's 12-digit check.
    response = api.post("/api/detect", json={"text": "287809468872"})

    [found] = response.json()["numbers"]
    assert found["carrier"] is None
    assert found["carrier_name"] is None
    assert found["ambiguous"] is True
    assert [(c["carrier"], c["format"], c["check_digit"]) for c in found["candidates"]] == [
        ("fedex", "FedEx Express (12 digits)", True),
        ("purolator_ca", "Purolator (12 digits)", True),
    ]
    assert all(c["reason"] for c in found["candidates"])


def test_detect_reads_a_number_printed_with_a_space_between_every_character(
    api: TestClient,
) -> None:
    # tracking_number_data's spaced test numbers: USPS 20 (ten of its digits pass DHL's
    # mod 7 on their own) and UPS 1Z.
    email = (
        "USPS: 0 3 0 7 1 7 9 0 0 0 0 5 2 3 4 8 3 7 4 1\nUPS:  1 Z 8 V 9 2 A 7 0 3 6 7 2 0 3 0 2 4\n"
    )
    numbers = api.post("/api/detect", json={"text": email}).json()["numbers"]

    assert [(n["tracking_number"], n["carrier"]) for n in numbers] == [
        ("03071790000523483741", "usps"),
        ("1Z8V92A70367203024", "ups"),
    ]


def test_registering_a_number_two_carriers_fit_asks_for_the_carrier(api: TestClient) -> None:
    refused = api.post("/api/shipments", json={"tracking_number": "287809468872"})
    assert refused.status_code == 422
    assert "FedEx" in refused.text
    assert "Purolator" in refused.text

    chosen = api.post(
        "/api/shipments", json={"tracking_number": "287809468872", "carrier": "purolator_ca"}
    )
    assert chosen.status_code == 201
    assert chosen.json()["carrier"] == "purolator_ca"


def test_listing_filters_by_carrier_status_activity_and_text(
    api: TestClient, database: Database
) -> None:
    api.post("/api/shipments", json={"tracking_number": UPS_NUMBER, "description": "Red shoes"})
    fedex = api.post("/api/shipments", json={"tracking_number": FEDEX_NUMBER}).json()
    with database.sessions.begin() as session:
        from parcelwatch.models import Shipment

        shipment = session.get(Shipment, fedex["id"])
        assert shipment is not None
        shipment.status = ShipmentStatus.DELIVERED

    def numbers(**params: str) -> list[str]:
        response = api.get("/api/shipments", params=params)
        assert response.status_code == 200
        return [item["tracking_number"] for item in response.json()["items"]]

    assert numbers(carrier="ups") == [UPS_NUMBER]
    assert numbers(status="delivered") == [FEDEX_NUMBER]
    assert numbers(active="true") == [UPS_NUMBER]
    assert numbers(active="false") == [FEDEX_NUMBER]
    assert numbers(q="red sh") == [UPS_NUMBER]
    assert numbers(q="1z5r8") == [UPS_NUMBER]
    assert numbers(q="100%") == []


def test_listing_pages_with_a_cursor_without_repeats_or_gaps(api: TestClient) -> None:
    for i in range(7):
        api.post("/api/shipments", json={"tracking_number": f"CA{i:09d}", "carrier": "canada_post"})
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = api.get("/api/shipments", params=params).json()
        seen += [item["tracking_number"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"CA{i:09d}" for i in reversed(range(7))]


def test_a_malformed_cursor_is_a_clear_422(api: TestClient) -> None:
    response = api.get("/api/shipments", params={"cursor": "garbage!"})
    assert response.status_code == 422
    assert "cursor" in response.json()["detail"]


def test_patch_changes_the_description_and_re_enabling_clears_failures(
    api: TestClient, database: Database
) -> None:
    created = api.post("/api/shipments", json={"tracking_number": UPS_NUMBER}).json()
    with database.sessions.begin() as session:
        from parcelwatch.models import Shipment

        shipment = session.get(Shipment, created["id"])
        assert shipment is not None
        shipment.auto_refresh_enabled = False
        shipment.auto_refresh_fail_count = 10
        shipment.last_auto_refresh_error = "UPS: invalid inquiry number"
        shipment.next_check_at = None
    response = api.patch(
        f"/api/shipments/{created['id']}",
        json={"description": "  Gift  for mum ", "auto_refresh_enabled": True},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["description"] == "Gift for mum"
    assert body["auto_refresh_enabled"] is True
    assert body["auto_refresh_fail_count"] == 0
    assert body["last_auto_refresh_error"] is None
    assert body["next_check_at"] is not None


def test_patch_corrects_the_carrier_and_starts_tracking_afresh(
    api: TestClient, database: Database
) -> None:
    created = api.post("/api/shipments", json={"tracking_number": FEDEX_NUMBER}).json()
    _add_event(database, created["id"])
    response = api.patch(f"/api/shipments/{created['id']}", json={"carrier": "dhl"})
    assert response.status_code == 200
    assert response.json()["carrier"] == "dhl"
    assert response.json()["status"] == "pending"
    assert api.get(f"/api/shipments/{created['id']}/events").json() == []


def test_correcting_to_a_carrier_that_already_has_the_number_is_a_409(api: TestClient) -> None:
    first = api.post("/api/shipments", json={"tracking_number": FEDEX_NUMBER}).json()
    api.post("/api/shipments", json={"tracking_number": FEDEX_NUMBER, "carrier": "dhl"})
    response = api.patch(f"/api/shipments/{first['id']}", json={"carrier": "dhl"})
    assert response.status_code == 409
    assert api.get(f"/api/shipments/{first['id']}").json()["carrier"] == "fedex"


def test_delete_removes_the_shipment_and_its_events(api: TestClient, database: Database) -> None:
    created = api.post("/api/shipments", json={"tracking_number": UPS_NUMBER}).json()
    _add_event(database, created["id"])
    assert api.delete(f"/api/shipments/{created['id']}").status_code == 204
    assert api.get(f"/api/shipments/{created['id']}").status_code == 404
    with database.sessions() as session:
        assert session.query(TrackingEvent).count() == 0


def test_events_are_listed_newest_first(api: TestClient, database: Database) -> None:
    created = api.post("/api/shipments", json={"tracking_number": UPS_NUMBER}).json()
    _add_event(database, created["id"], minutes_ago=120, text="Picked up")
    _add_event(database, created["id"], minutes_ago=5, text="Out for delivery")
    _add_event(database, created["id"], minutes_ago=60, text="Departed facility")
    events = api.get(f"/api/shipments/{created['id']}/events").json()
    assert [event["description"] for event in events] == [
        "Out for delivery",
        "Departed facility",
        "Picked up",
    ]
    assert events[0]["occurred_at"].endswith(("+00:00", "Z"))


def test_an_oversized_streamed_body_is_refused_with_413_and_nothing_written(
    api: TestClient,
) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield b'{"tracking_number": "'
        for _ in range(30):
            yield b"1" * 100_000
        yield b'"}'

    response = api.post(
        "/api/shipments", content=chunks(), headers={"content-type": "application/json"}
    )

    assert response.status_code == 413
    assert "limit" in response.json()["detail"]
    assert api.get("/api/shipments").json()["items"] == []


def test_a_small_streamed_body_is_accepted(api: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"tracking_number": '
        yield b'"1Z5R89390357567127"}'

    response = api.post(
        "/api/shipments", content=chunks(), headers={"content-type": "application/json"}
    )

    assert response.status_code == 201


def test_an_unknown_shipment_is_a_404_with_a_detail(api: TestClient) -> None:
    response = api.get("/api/shipments/999")
    assert response.status_code == 404
    assert response.json() == {"detail": "Shipment 999 does not exist."}


def test_an_oversized_body_is_refused_with_413_and_nothing_written(api: TestClient) -> None:
    response = api.post(
        "/api/shipments",
        content=b'{"tracking_number": "' + b"1" * 2_000_000 + b'"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]
    assert api.get("/api/shipments").json()["items"] == []


def test_the_openapi_document_is_served_at_docs(api: TestClient) -> None:
    assert api.get("/docs").status_code == 200
    paths = api.get("/openapi.json").json()["paths"]
    assert {"/api/shipments", "/api/shipments/bulk", "/api/detect"} <= set(paths)


def _add_event(
    database: Database, shipment_id: int, *, minutes_ago: int = 30, text: str = "Arrived"
) -> None:
    from datetime import timedelta

    event = TrackEvent(
        occurred_at=utcnow() - timedelta(minutes=minutes_ago),
        status=ShipmentStatus.IN_TRANSIT,
        description=text,
    )
    with database.sessions.begin() as session:
        session.add(
            TrackingEvent(
                shipment_id=shipment_id,
                occurred_at=event.occurred_at,
                status=event.status,
                description=event.description,
                dedupe_key=event.dedupe_key,
            )
        )
