"""Out-of-range and control-character input to the API is a 422 naming the problem, never a
500, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient

UPS_NUMBER = "1Z5R89390357567127"
HUGE_IDS = ["2147483648", "9223372036854775808", "0", "-1"]


@pytest.mark.parametrize("shipment_id", HUGE_IDS)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/shipments/{}"),
        ("PATCH", "/api/shipments/{}"),
        ("DELETE", "/api/shipments/{}"),
        ("GET", "/api/shipments/{}/events"),
        ("POST", "/api/shipments/{}/refresh"),
    ],
)
def test_an_id_out_of_range_is_a_422_naming_the_id(
    api: TestClient, method: str, path: str, shipment_id: str
) -> None:
    body = {"description": "x"} if method == "PATCH" else None
    answer = api.request(method, path.format(shipment_id), json=body)
    assert answer.status_code == 422, answer.text
    assert "shipment_id" in answer.json()["detail"]


@pytest.mark.parametrize("last_id", ["9223372036854775808", "2147483649", "0"])
def test_a_cursor_holding_an_id_out_of_range_is_a_422(api: TestClient, last_id: str) -> None:
    cursor = base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")
    answer = api.get("/api/shipments", params={"cursor": cursor})
    assert answer.status_code == 422
    assert "cursor is not valid" in answer.json()["detail"]


def test_a_huge_alert_threshold_is_a_422(api: TestClient) -> None:
    answer = api.get("/api/health", params={"alert_threshold": "1e300"})
    assert answer.status_code == 422
    assert "alert_threshold" in answer.json()["detail"]


@pytest.mark.parametrize("character", ["\x00", "\x1b", "\x07"])
def test_a_control_character_in_a_description_is_refused(api: TestClient, character: str) -> None:
    created = api.post(
        "/api/shipments", json={"tracking_number": UPS_NUMBER, "description": f"a{character}b"}
    )
    assert created.status_code == 422
    assert f"control character (U+{ord(character):04X})" in created.json()["detail"]
    shipment = api.post("/api/shipments", json={"tracking_number": UPS_NUMBER}).json()
    patched = api.patch(f"/api/shipments/{shipment['id']}", json={"description": character})
    assert patched.status_code == 422
    assert api.get(f"/api/shipments/{shipment['id']}").json()["description"] is None


@pytest.mark.parametrize("param", ["q", "carrier"])
def test_a_nul_in_a_list_filter_is_a_422(api: TestClient, param: str) -> None:
    answer = api.get("/api/shipments", params={param: "ups\x00"})
    assert answer.status_code == 422
    assert "control character (U+0000)" in answer.json()["detail"]
