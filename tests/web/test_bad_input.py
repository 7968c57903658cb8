"""Out-of-range ids and control characters in the dashboard's pages and forms are refused
with a 422, never a 500, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.conftest import Browser
from tests.shipments.test_bad_input import HUGE_IDS, UPS_NUMBER


@pytest.mark.parametrize("shipment_id", HUGE_IDS)
def test_the_dashboard_refuses_an_id_out_of_range(web: Browser, shipment_id: str) -> None:
    assert web.get(f"/shipments/{shipment_id}").status_code == 422
    answer = web.submit(f"/shipments/{shipment_id}/description", data={"description": "x"})
    assert answer.status_code == 422


def test_a_nul_in_the_dashboard_forms_and_filters_is_refused(web: Browser) -> None:
    added = web.submit(
        "/add",
        data={"tracking_number": UPS_NUMBER, "description": "gift\x00"},
    )
    assert added.status_code == 422
    assert "control character" in added.text
    searched = web.get("/shipments", params={"q": "a\x00"})
    assert searched.status_code == 422
    # An unknown carrier filter is dropped (the list shows every carrier), NUL or not.
    assert web.get("/shipments", params={"carrier": "ups\x00"}).status_code == 200
