"""Full-width numbers are the ASCII ones (NFKC), control characters are refused at every input,
and the terminal never receives a control character from stored data."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

import pytest
from click.testing import Result
from fastapi.testclient import TestClient
from sqlalchemy import update
from typer.testing import CliRunner

from parcelwatch.cli.main import app
from parcelwatch.config import Settings
from parcelwatch.domain import ShipmentStatus, TrackEvent, TrackInfo, utcnow
from parcelwatch.models import Shipment
from parcelwatch.shipments.service import register_shipment
from parcelwatch.sync.writer import apply_track_info
from tests.conftest import Browser, Database

Invoke = Callable[..., Result]

UPS_NUMBER = "1Z5R89390357567127"
FULL_WIDTH = "".join(chr(ord(c) + 0xFEE0) for c in UPS_NUMBER)  # １Ｚ５Ｒ８９…
# C0 (NUL, BEL, ESC...), DEL, and C1 (CSI U+009B, which some terminals obey as ESC [).
CONTROLS = ["\x00", "\x07", "\x1b", "\x7f", "\x9b", "\x85"]
CSI_ATTACK = "\x1b]0;owned\x07\x1b[2J\x1b[31mred"


def test_full_width_text_is_what_the_test_means() -> None:
    assert unicodedata.normalize("NFKC", FULL_WIDTH) == UPS_NUMBER
    assert FULL_WIDTH != UPS_NUMBER


def test_a_full_width_number_registers_the_same_shipment(api: TestClient) -> None:
    first = api.post("/api/shipments", json={"tracking_number": UPS_NUMBER})
    again = api.post("/api/shipments", json={"tracking_number": FULL_WIDTH})
    assert first.status_code == 201
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["tracking_number"] == UPS_NUMBER
    assert len(api.get("/api/shipments").json()["items"]) == 1


def test_a_full_width_number_alone_is_detected_and_stored_as_ascii(api: TestClient) -> None:
    created = api.post("/api/shipments", json={"tracking_number": f"１ｚ５ｒ {FULL_WIDTH[4:]}"})
    assert created.status_code == 201, created.text
    assert created.json()["tracking_number"] == UPS_NUMBER
    assert created.json()["carrier"] == "ups"


def test_bulk_with_full_width_and_ascii_creates_one_shipment(api: TestClient) -> None:
    items = [{"tracking_number": UPS_NUMBER}, {"tracking_number": FULL_WIDTH}]
    body = api.post("/api/shipments/bulk", json={"items": items}).json()
    assert (body["created"], body["existing"]) == (1, 1)


def test_full_width_digits_are_found_in_pasted_text(api: TestClient) -> None:
    found = api.post("/api/detect", json={"text": f"Your parcel: {FULL_WIDTH}."}).json()
    assert [(n["tracking_number"], n["carrier"]) for n in found["numbers"]] == [(UPS_NUMBER, "ups")]


def test_a_full_width_carrier_code_and_search_find_the_ascii_ones(api: TestClient) -> None:
    created = api.post("/api/shipments", json={"tracking_number": UPS_NUMBER, "carrier": "ＵＰＳ"})
    assert created.status_code == 201, created.text
    assert created.json()["carrier"] == "ups"
    listed = api.get("/api/shipments", params={"q": FULL_WIDTH[:8], "carrier": "ＵＰＳ"}).json()
    assert [item["id"] for item in listed["items"]] == [created.json()["id"]]


def test_letters_beyond_ascii_are_not_a_tracking_number(api: TestClient) -> None:
    answer = api.post("/api/shipments", json={"tracking_number": "1Z5R8939035756712é"})
    assert answer.status_code == 422


@pytest.mark.parametrize("character", CONTROLS)
@pytest.mark.parametrize("field", ["tracking_number", "carrier"])
def test_a_control_character_in_the_number_or_carrier_is_a_422_naming_the_field(
    api: TestClient, character: str, field: str
) -> None:
    body = {
        "tracking_number": UPS_NUMBER,
        field: f"{'1Z5R8939' if field == 'tracking_number' else 'ups'}{character}",
    }
    answer = api.post("/api/shipments", json=body)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert f"{field.replace('_', ' ')} contains a control character" in detail
    assert character not in detail  # never echoed back
    assert api.get("/api/shipments").json()["items"] == []


@pytest.mark.parametrize("character", ["\x7f", "\x9b", "\x85"])
def test_del_and_c1_characters_in_a_description_are_refused(
    api: TestClient, character: str
) -> None:
    created = api.post(
        "/api/shipments", json={"tracking_number": UPS_NUMBER, "description": f"a{character}"}
    )
    assert created.status_code == 422
    assert "description contains a control character" in created.json()["detail"]


def test_a_tab_or_line_break_in_a_description_is_accepted_as_a_space(api: TestClient) -> None:
    created = api.post(
        "/api/shipments", json={"tracking_number": UPS_NUMBER, "description": "a\tb\nc"}
    )
    assert created.status_code == 201
    assert created.json()["description"] == "a b c"


def test_bulk_reports_a_control_character_per_item_and_adds_nothing_for_it(
    api: TestClient,
) -> None:
    items = [{"tracking_number": UPS_NUMBER, "description": CSI_ATTACK}]
    body = api.post("/api/shipments/bulk", json={"items": items}).json()
    assert body["errors"] == 1
    assert "description contains a control character" in body["items"][0]["error"]
    assert api.get("/api/shipments").json()["items"] == []


@pytest.mark.parametrize("character", ["\x00", "\x1b"])
def test_a_control_character_in_text_to_detect_is_a_422(api: TestClient, character: str) -> None:
    answer = api.post("/api/detect", json={"text": f"{UPS_NUMBER}{character}"})
    assert answer.status_code == 422
    assert "text contains a control character" in answer.json()["detail"]


# -- the dashboard's forms ------------------------------------------------------------------


def test_the_add_form_takes_a_full_width_number_as_the_ascii_one(browser: Browser) -> None:
    browser.submit("/add", data={"tracking_number": UPS_NUMBER})
    added = browser.submit("/add", data={"tracking_number": FULL_WIDTH}, follow_redirects=False)
    assert added.status_code == 303
    assert "notice=existing" in added.headers["location"]


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/add", {"tracking_number": UPS_NUMBER, "description": CSI_ATTACK}),
        ("/add", {"tracking_number": f"1Z5R\x1b{UPS_NUMBER[4:]}"}),
        ("/add/text", {"text": UPS_NUMBER, "description": CSI_ATTACK}),
        ("/add/text", {"text": f"{UPS_NUMBER}\x1b[2J"}),
    ],
)
def test_the_add_forms_refuse_control_characters_with_422(
    browser: Browser, path: str, form: dict[str, str]
) -> None:
    answer = browser.submit(path, data=form, follow_redirects=False)
    assert answer.status_code == 422
    assert "contains a control character" in answer.text
    assert browser.get("/api/shipments").json()["items"] == []


def test_the_description_form_refuses_a_control_character(browser: Browser) -> None:
    shipment = browser.post(
        "/api/shipments", json={"tracking_number": UPS_NUMBER}, headers=browser.csrf
    ).json()
    answer = browser.submit(
        f"/shipments/{shipment['id']}/description", data={"description": "\x9b2J"}
    )
    assert answer.status_code == 422
    assert "description contains a control character" in answer.text


def test_the_add_from_text_form_finds_full_width_numbers(browser: Browser) -> None:
    added = browser.submit(
        "/add/text", data={"text": f"parcel {FULL_WIDTH}"}, follow_redirects=False
    )
    assert added.status_code == 303
    items = browser.get("/api/shipments").json()["items"]
    assert [item["tracking_number"] for item in items] == [UPS_NUMBER]


# -- the command line -----------------------------------------------------------------------


@pytest.fixture
def run(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, list(args), env={"COLUMNS": "120"})

    return invoke


def _stored_with_controls(database: Database) -> int:
    """A shipment whose description and event text hold terminal sequences, as data stored
    before input was checked (or a carrier's text) would."""
    with database.sessions.begin() as session:
        shipment, _ = register_shipment(session, tracking_number=UPS_NUMBER)
        shipment_id = shipment.id
        info = TrackInfo(
            status=ShipmentStatus.IN_TRANSIT,
            status_detail=f"Detail {CSI_ATTACK}",
            events=(
                TrackEvent(
                    occurred_at=utcnow(),
                    status=ShipmentStatus.IN_TRANSIT,
                    description=f"Scan {CSI_ATTACK} [bold]x[/bold]",
                ),
            ),
        )
        apply_track_info(session, shipment_id, info, "ups")
        session.execute(
            update(Shipment)
            .where(Shipment.id == shipment_id)
            .values(description=f"Shoes {CSI_ATTACK}\x9b[1m [link=http://evil]click[/link]")
        )
    return shipment_id


def _no_control_characters(text: str) -> None:
    bad = sorted({f"U+{ord(c):04X}" for c in text if unicodedata.category(c) == "Cc" and c != "\n"})
    assert not bad, f"control characters reached the terminal: {bad}"


@pytest.mark.parametrize("command", [["list"], ["show", "1"], ["events", "1"]])
def test_show_list_and_events_print_no_control_character_from_stored_data(
    run: Invoke, database: Database, command: list[str]
) -> None:
    assert _stored_with_controls(database) == 1
    result = run("shipments", *command)
    assert result.exit_code == 0, result.output
    _no_control_characters(result.output)
    assert "\\x1b" in result.output  # shown, visibly, instead


def test_show_prints_rich_markup_in_stored_text_as_written(run: Invoke, database: Database) -> None:
    _stored_with_controls(database)
    result = run("shipments", "show", "1")
    assert "[link=http://evil]click[/link]" in result.output


def test_cli_add_refuses_control_characters_naming_the_field(run: Invoke) -> None:
    result = run("shipments", "add", UPS_NUMBER, "--description", CSI_ATTACK)
    assert result.exit_code == 1
    assert "description contains a control character" in result.output
    _no_control_characters(result.output)
    bad_number = run("shipments", "add", f"1Z5R\x1b[2J{UPS_NUMBER[4:]}")
    assert bad_number.exit_code == 1
    assert "tracking number contains a control character" in bad_number.output
    _no_control_characters(bad_number.output)


def test_cli_update_refuses_a_control_character(run: Invoke) -> None:
    assert run("shipments", "add", UPS_NUMBER).exit_code == 0
    result = run("shipments", "update", "1", "--description", "\x1b[2J")
    assert result.exit_code == 1
    assert "description contains a control character" in result.output


def test_cli_show_finds_a_full_width_number(run: Invoke) -> None:
    assert run("shipments", "add", UPS_NUMBER).exit_code == 0
    result = run("shipments", "show", FULL_WIDTH)
    assert result.exit_code == 0, result.output
    assert UPS_NUMBER in result.output


def test_cli_show_of_a_huge_id_is_not_found_not_a_crash(run: Invoke) -> None:
    result = run("shipments", "show", "9223372036854775808")
    assert result.exit_code == 1
    assert "No shipment" in result.output
