"""Dashboard forms: same-origin check, redirect after POST, and what each form changes."""

from __future__ import annotations

from sqlalchemy import select

from parcelwatch.domain import ShipmentStatus
from parcelwatch.models import Shipment, Tracker
from tests.conftest import Browser, Database
from tests.web.conftest import AddShipment

UPS = "1Z999AA10123456784"
USPS = "9400111899223850000008"

EMAIL = f"""Hello Sam,

Good news: your order #1042 has shipped in two parcels.
  Parcel 1: UPS tracking number {UPS}
  Parcel 2: USPS 9400 1118 9922 3850 0000 08

Thanks for shopping with us!
"""


def _shipments(database: Database) -> list[Shipment]:
    with database.sessions() as session:
        return list(session.scalars(select(Shipment).order_by(Shipment.id)))


def test_adding_one_number_redirects_to_its_page(web: Browser, database: Database) -> None:
    answer = web.submit(
        "/add",
        data={"tracking_number": "1z 999 aa1 0123456784", "description": "Shoes"},
        follow_redirects=False,
    )

    (shipment,) = _shipments(database)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/shipments/{shipment.id}?notice=added"
    assert (shipment.carrier, shipment.tracking_number) == ("ups", UPS)
    assert "Shipment added." in web.get(answer.headers["location"]).text


def test_adding_a_number_again_shows_the_existing_shipment(
    web: Browser, add_shipment: AddShipment
) -> None:
    shipment = add_shipment(UPS)
    answer = web.submit("/add", data={"tracking_number": UPS}, follow_redirects=False)
    assert answer.headers["location"] == f"/shipments/{shipment.id}?notice=existing"


def test_an_unrecognised_number_is_explained_on_the_form(web: Browser, database: Database) -> None:
    answer = web.submit("/add", data={"tracking_number": "12345678"})

    assert answer.status_code == 422
    assert "Could not detect the carrier" in answer.text
    assert 'aria-invalid="true"' in answer.text
    assert 'value="12345678"' in answer.text
    assert _shipments(database) == []


def test_pasting_an_email_adds_every_tracking_number_in_it(
    web: Browser, database: Database
) -> None:
    answer = web.submit(
        "/add/text",
        data={"text": EMAIL, "description": "Order 1042"},
        follow_redirects=False,
    )

    shipments = _shipments(database)
    assert answer.status_code == 303
    assert [(s.carrier, s.tracking_number) for s in shipments] == [("ups", UPS), ("usps", USPS)]
    assert all(s.description == "Order 1042" for s in shipments)
    done = web.get(answer.headers["location"]).text
    assert "2 shipments added" in done
    assert UPS in done
    assert USPS in done


def test_pasting_the_same_email_twice_adds_nothing_new(web: Browser, database: Database) -> None:
    web.submit("/add/text", data={"text": EMAIL})
    again = web.submit("/add/text", data={"text": EMAIL})

    assert len(_shipments(database)) == 2
    assert "0 shipments added" in again.text
    assert "Already tracked" in again.text


def test_text_without_a_tracking_number_is_explained(web: Browser) -> None:
    answer = web.submit("/add/text", data={"text": "See you on Friday!"})
    assert answer.status_code == 422
    assert "No tracking number was found" in answer.text


def test_a_form_sent_from_another_site_is_refused(web: Browser, database: Database) -> None:
    for headers in (
        {"Origin": "https://evil.example"},
        {"Referer": "https://evil.example/page"},
        {"Origin": "null"},
        {},
    ):
        answer = web.post(
            "/add",
            data={"tracking_number": UPS, "csrf_token": web.csrf["X-CSRF-Token"]},
            headers={**headers, "Accept": "text/html"},
        )
        assert answer.status_code == 403, headers
        assert "own pages (the Origin header did not match)" in answer.text
    assert _shipments(database) == []


def test_a_form_with_a_same_origin_referer_and_no_origin_is_accepted(web: Browser) -> None:
    answer = web.post(
        "/add",
        data={"tracking_number": UPS, "csrf_token": web.csrf["X-CSRF-Token"]},
        headers={"Referer": "http://testserver/add"},
        follow_redirects=False,
    )
    assert answer.status_code == 303


def test_editing_the_description_saves_it_and_redirects(
    web: Browser, add_shipment: AddShipment, database: Database
) -> None:
    shipment = add_shipment(UPS, description="Shoes")
    answer = web.submit(
        f"/shipments/{shipment.id}/description",
        data={"description": "  Trail   shoes "},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    with database.sessions() as session:  # the owner's own description, on their tracker
        assert session.scalars(select(Tracker.description)).one() == "Trail shoes"
    assert "Trail shoes" in web.get(f"/shipments/{shipment.id}").text


def test_re_enabling_automatic_updates_clears_the_failures(
    web: Browser, add_shipment: AddShipment, database: Database
) -> None:
    shipment = add_shipment(UPS, status=ShipmentStatus.IN_TRANSIT)
    web.submit(f"/shipments/{shipment.id}/auto-refresh", data={"enabled": "false"})
    assert _shipments(database)[0].auto_refresh_enabled is False
    page = web.get(f"/shipments/{shipment.id}").text
    assert "Re-enable automatic updates" in page

    answer = web.submit(
        f"/shipments/{shipment.id}/auto-refresh",
        data={"enabled": "true"},
        follow_redirects=False,
    )

    (after,) = _shipments(database)
    assert answer.headers["location"].endswith("notice=auto_on")
    assert after.auto_refresh_enabled is True
    assert after.auto_refresh_fail_count == 0
    assert after.next_check_at is not None


def test_deleting_asks_for_confirmation_first(
    web: Browser, add_shipment: AddShipment, database: Database
) -> None:
    shipment = add_shipment(UPS, description="Shoes")

    confirm = web.get(f"/shipments/{shipment.id}/delete")
    assert "Delete this shipment?" in confirm.text
    assert len(_shipments(database)) == 1

    answer = web.submit(f"/shipments/{shipment.id}/delete", follow_redirects=False)
    assert answer.status_code == 303
    assert _shipments(database) == []
    assert "Shipment deleted." in web.get(answer.headers["location"]).text


def test_deleting_a_missing_shipment_gets_a_404_page(web: Browser) -> None:
    answer = web.submit("/shipments/42/delete")
    assert answer.status_code == 404


def test_labels_notes_and_archive_are_kept_on_your_tracker(
    web: Browser, add_shipment: AddShipment
) -> None:
    shipment = add_shipment(UPS, description="Shoes", status=ShipmentStatus.IN_TRANSIT)
    saved = web.submit(
        f"/shipments/{shipment.id}/personal",
        data={"labels": "gifts, Work ,gifts", "notes": "Back door"},
        follow_redirects=False,
    )
    assert saved.headers["location"] == f"/shipments/{shipment.id}?notice=saved_mine"
    page = web.get(f"/shipments/{shipment.id}").text
    assert 'value="gifts, Work"' in page
    assert "Back door</textarea>" in page
    assert 'class="label-chip">gifts<' in web.get("/shipments").text
    web.submit(f"/shipments/{shipment.id}/archive", data={"archived": "true"})
    assert f'href="/shipments/{shipment.id}"' not in web.get("/shipments?view=all").text
    assert f'href="/shipments/{shipment.id}"' in web.get("/shipments?view=archived").text
    web.submit(f"/shipments/{shipment.id}/archive", data={"archived": "false"})
    assert f'href="/shipments/{shipment.id}"' in web.get("/shipments").text


def test_a_bad_label_is_explained_and_changes_nothing(
    web: Browser, add_shipment: AddShipment
) -> None:
    shipment = add_shipment(UPS)
    web.submit(f"/shipments/{shipment.id}/personal", data={"labels": "gifts", "notes": "a"})
    answer = web.submit(
        f"/shipments/{shipment.id}/personal", data={"labels": "<b>", "notes": "changed"}
    )
    assert answer.status_code == 422
    assert "is not a label" in answer.text
    assert "a</textarea>" in web.get(f"/shipments/{shipment.id}").text


# Purolator's published test number; it satisfies FedEx's 12-digit check digit as well.
TWO_CARRIERS = "287809468872"


def test_a_number_two_carriers_fit_is_answered_with_a_choice_not_a_guess(
    web: Browser, database: Database
) -> None:
    answer = web.submit("/add", data={"tracking_number": TWO_CARRIERS})

    assert answer.status_code == 422
    assert "fits several carriers" in answer.text
    assert 'type="radio" name="carrier" value="fedex"' in answer.text
    assert 'type="radio" name="carrier" value="purolator_ca"' in answer.text
    assert "Purolator (12 digits): pattern and check digit" in answer.text
    assert f'value="{TWO_CARRIERS}"' in answer.text
    assert _shipments(database) == []

    chosen = web.submit(
        "/add",
        data={"tracking_number": TWO_CARRIERS, "carrier": "purolator_ca"},
        follow_redirects=False,
    )

    assert chosen.status_code == 303
    assert [(s.carrier, s.tracking_number) for s in _shipments(database)] == [
        ("purolator_ca", TWO_CARRIERS)
    ]


def test_a_pasted_number_two_carriers_fit_is_offered_for_a_choice_after_the_rest(
    web: Browser, database: Database
) -> None:
    text = f"UPS: {UPS}\nPurolator or FedEx, who knows: {TWO_CARRIERS}\n"
    answer = web.submit("/add/text", data={"text": text})

    assert [(s.carrier, s.tracking_number) for s in _shipments(database)] == [("ups", UPS)]
    assert "1 shipment added" in answer.text
    assert "Needs a carrier" in answer.text
    assert f'name="tracking_number" value="{TWO_CARRIERS}"' in answer.text
    assert 'value="fedex"' in answer.text
    assert 'value="purolator_ca"' in answer.text
    assert 'name="csrf_token"' in answer.text.split("Needs a carrier")[1]
