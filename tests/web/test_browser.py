"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright, against
the real app served by uvicorn with the updater on, its carriers pointed at the emulator."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from starlette.applications import Starlette

from parcelwatch.config import load_settings
from parcelwatch.demo import demo_settings
from parcelwatch.emulator import EmulatorConfig, create_emulator_app, emulator_state
from parcelwatch.emulator.config import Pin
from parcelwatch.emulator.server import run_in_thread
from parcelwatch.emulator.storylines import Storyline
from tests.conftest import serving

# `make test` sets PARCELWATCH_REQUIRE_BROWSER=1: there a missing browser fails the run
# instead of quietly skipping the dashboard's end-to-end tests.
REQUIRED = os.environ.get("PARCELWATCH_REQUIRE_BROWSER") == "1"
if REQUIRED:
    import playwright.sync_api as playwright_api
else:
    playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ADMIN_TOKEN = "browser-test-token"
UPS = "1Z999AA10123456784"
FEDEX = "771000000002"
EMAIL = f"""Hi Sam, your order #1042 shipped in two boxes.
Box 1 - UPS: {UPS}
Box 2 - FedEx tracking no. {FEDEX}
"""
WAIT = 45_000  # ms: the updater polls every second, the pages every five


@dataclass
class Live:
    url: str
    emulator: Starlette


@pytest.fixture(scope="module")
def live(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The app and the emulator on free local ports; the emulator's clock stands still
    until a test moves it."""
    if not CHROMIUM.exists():
        missing = "Debian's chromium is not installed: `make test` installs it"
        if REQUIRED:
            pytest.fail(missing)
        pytest.skip(missing)
    path = tmp_path_factory.mktemp("browser") / "parcelwatch.db"
    shutil.copy(sqlite_template, path)
    pins = {
        number: Pin(storyline=Storyline.NORMAL, age=timedelta(hours=30)) for number in (UPS, FEDEX)
    }
    emulator = create_emulator_app(EmulatorConfig(speed=0, seed=7, pins=pins))
    from parcelwatch.api.app import create_app

    with run_in_thread(app=emulator) as emulator_url:
        base = load_settings(
            database_url=f"sqlite:///{path}",
            admin_api_key=ADMIN_TOKEN,
            auto_update_enabled=True,
            update_interval="1s",
            _env_file=None,
        )
        app = create_app(demo_settings(base, emulator_url))
        with serving(app) as url:
            yield Live(url, emulator)


@pytest.fixture(scope="module")
def browser_context() -> Iterator[object]:
    with playwright_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tempfile.mkdtemp(prefix="parcelwatch-chromium-"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
            timezone_id="Europe/Berlin",
            locale="en-GB",
        )
        try:
            yield context
        finally:
            context.close()


def _shot(page: object, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def test_a_person_pastes_an_email_and_watches_the_parcels_arrive(
    live: Live, browser_context: object
) -> None:
    expect = playwright_api.expect
    page = browser_context.new_page()  # type: ignore[attr-defined]

    page.goto(f"{live.url}/add")
    page.get_by_label("Email or any text with tracking numbers").fill(EMAIL)
    expect(page.locator("#found")).to_contain_text("Found 2 tracking numbers")
    page.get_by_label("Description for all of them").fill("Order 1042")
    _shot(page, "add")
    page.get_by_role("button", name="Find and track all numbers").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("2 shipments added")
    _shot(page, "added")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Shipments").click()
    rows = page.locator("table.shipments tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("#list")).to_contain_text(UPS)
    expect(page.locator("#list")).to_contain_text(FEDEX)
    # The updater asks the emulator on its own; the open page updates itself.
    expect(page.locator("#list .badge", has_text="In transit")).to_have_count(2, timeout=WAIT)
    _shot(page, "shipments")

    page.locator("table.shipments tr", has_text=UPS).get_by_role("link").click()
    expect(page.locator("#tracking-number")).to_have_text(UPS)
    expect(page.locator("#summary")).to_contain_text("In transit")
    expect(page.locator("#timeline time").first).not_to_contain_text("UTC")  # local time
    page.get_by_role("button", name="Refresh now").click()
    expect(page.locator("#refresh-message")).to_contain_text(
        "You can refresh again at", timeout=WAIT
    )
    expect(page.get_by_role("button", name="Refresh now")).to_be_disabled()
    _shot(page, "shipment-refreshed")

    # Six emulated days later the FedEx parcel has been delivered.
    emulator_state(live.emulator).clock.advance(timedelta(days=6))
    page.goto(f"{live.url}/shipments")
    page.locator("table.shipments tr", has_text=FEDEX).get_by_role("link").click()
    expect(page.locator("#summary")).to_contain_text("Delivered", timeout=WAIT)
    expect(page.locator("#timeline")).to_contain_text("Delivered")
    expect(page.locator("#refresh-message")).not_to_be_empty()
    _shot(page, "shipment-delivered")

    page.goto(live.url)
    expect(page.locator("#counts")).to_contain_text("Delivered this week")
    _shot(page, "overview")
    page.close()


def test_the_owner_pauses_and_resumes_the_updater_from_the_operations_page(
    live: Live, browser_context: object
) -> None:
    expect = playwright_api.expect
    page = browser_context.new_page()  # type: ignore[attr-defined]
    page.goto(f"{live.url}/operations")  # signed in as the demo's stand-in owner

    page.get_by_role("button", name="Pause updates").click()
    expect(page.locator("#admin-message")).to_contain_text("paused")
    expect(page.locator("#updater-state")).to_contain_text("Paused", timeout=WAIT)
    _shot(page, "operations-paused")

    page.get_by_role("button", name="Resume updates").click()
    expect(page.locator("#admin-message")).to_contain_text("running")
    expect(page.locator("#updater-state")).not_to_contain_text("Paused", timeout=WAIT)
    _shot(page, "operations")
    page.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_fits_a_phone_screen(live: Live, browser_context: object, scheme: str) -> None:
    page = browser_context.new_page()  # type: ignore[attr-defined]
    page.set_viewport_size({"width": 390, "height": 844})
    page.emulate_media(color_scheme=scheme)
    for name, path in [
        ("overview", "/"),
        ("shipments", "/shipments"),
        ("shipment", "/shipments/1"),
        ("add", "/add"),
        ("notifications", "/notifications"),
        ("operations", "/operations"),
    ]:
        page.goto(live.url + path)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px on a phone"
        _shot(page, f"phone-{scheme}-{name}")
    page.close()


def _offline(page: object) -> list[str]:
    """Refuse every request that would leave this host, as an air-gapped network would, and
    return the list of those that were tried."""
    tried: list[str] = []

    def guard(route: object) -> None:
        url = route.request.url  # type: ignore[attr-defined]
        if urlsplit(url).scheme in ("http", "https") and urlsplit(url).hostname != "127.0.0.1":
            tried.append(url)
            route.abort()  # type: ignore[attr-defined]
        else:
            route.continue_()  # type: ignore[attr-defined]

    page.route("**/*", guard)  # type: ignore[attr-defined]
    return tried


def test_the_footer_api_link_shows_the_operations_with_no_request_off_this_host(
    live: Live, browser_context: object
) -> None:
    expect = playwright_api.expect
    page = browser_context.new_page()  # type: ignore[attr-defined]
    tried = _offline(page)
    page.goto(live.url)
    page.get_by_role("contentinfo").get_by_role("link", name="API").click()
    expect(page).to_have_url(f"{live.url}/docs")
    refresh = "/api/shipments/{shipment_id}/refresh"
    operations = page.locator(".opblock-post .opblock-summary-path")
    expect(operations.filter(has_text=refresh)).to_have_count(1)
    allowed = page.locator(".opblock-options .opblock-summary-path")  # OPTIONS, on every path
    expect(allowed.filter(has_text=refresh)).to_have_count(1)
    expect(page.locator(".opblock-tag").first).to_be_visible()
    page.locator(".opblock-summary", has_text="/api/health").first.click()
    expect(page.get_by_role("button", name="Try it out")).to_be_visible()
    _shot(page, "api-docs")
    assert tried == []
    page.close()


def test_no_page_breaks_its_content_security_policy(live: Live, browser_context: object) -> None:
    """Every page, the live updates of the shipments list and the API docs run under the
    policy the server sends: the browser reports no violation."""
    expect = playwright_api.expect
    page = browser_context.new_page()  # type: ignore[attr-defined]
    violations: list[str] = []
    page.on(  # type: ignore[attr-defined]
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    for path in ("/", "/shipments", "/shipments/1", "/add", "/operations", "/docs"):
        response = page.goto(live.url + path)
        assert "content-security-policy" in response.headers
    expect(page.locator(".opblock-tag").first).to_be_visible()
    page.goto(live.url + "/add")
    page.get_by_label("Email or any text with tracking numbers").fill(EMAIL)
    expect(page.locator("#found")).to_contain_text("Found 2 tracking numbers")
    assert violations == []
    page.close()


def test_a_person_typing_a_number_two_carriers_fit_is_asked_to_choose(
    live: Live, browser_context: object
) -> None:
    # Purolator's published 287809468872 satisfies FedEx's 12-digit check digit too.
    expect = playwright_api.expect
    page = browser_context.new_page()  # type: ignore[attr-defined]

    page.goto(f"{live.url}/add")
    page.get_by_role("textbox", name="Tracking number", exact=True).fill("2878 0946 8872")
    expect(page.locator("#detected")).to_contain_text("Fits several carriers: FedEx or Purolator")
    page.get_by_role("button", name="Track this shipment").click()
    expect(page.get_by_role("group")).to_contain_text("which one is it?")
    _shot(page, "add-choose-carrier")
    page.get_by_role("radio", name="Purolator").check()
    page.get_by_role("button", name="Track this shipment").click()
    expect(page.locator("#tracking-number")).to_have_text("287809468872")
    page.close()
