"""Notifications in a real browser (headless Chromium): a webhook added and its secret seen
once, a test sent and watched in the delivery log (the test plays the dispatcher, which is
not running), a replay, quiet hours saved, a shipment muted."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from parcelwatch.accounts.roles import Role
from parcelwatch.accounts.service import create_user
from parcelwatch.config import load_settings
from parcelwatch.db import create_db_engine, make_session_factory, session_scope
from parcelwatch.models import NotificationDelivery
from tests.conftest import Database, serving
from tests.notifications.conftest import record_attempt
from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS, REQUIRED, _shot, playwright_api

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

PASSWORD = "maple syrup on a tuesday"
UPS = "1Z5R89390357567127"
HOOK = "http://127.0.0.1:9/home-assistant/hook"  # nothing listens; nothing is sent anyway


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    if not CHROMIUM.exists():
        missing = "Debian's chromium is not installed: `make test` installs it"
        if REQUIRED:
            pytest.fail(missing)
        pytest.skip(missing)
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def db(sqlite_template: Path, tmp_path: Path) -> Iterator[Database]:
    path = tmp_path / "parcelwatch.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    engine = create_db_engine(url)
    with session_scope(make_session_factory(engine), write=True) as session:
        create_user(session, name="alice", role=Role.OWNER, password=PASSWORD)
    yield Database(url=url, engine=engine, sessions=make_session_factory(engine))
    engine.dispose()


@pytest.fixture
def server(db: Database) -> Iterator[str]:
    """The app on a free local port: no dispatcher (the test plays it), LAN targets allowed."""
    from parcelwatch.api.app import create_app

    settings = load_settings(
        database_url=db.url,
        auto_update_enabled=False,
        parcelwatch_demo=False,
        notify_enabled=False,
        notify_allow_private_networks=True,
        _env_file=None,
    )
    with serving(create_app(settings)) as url:
        yield url


@pytest.fixture
def page(chromium: object, server: str) -> Iterator[object]:
    """A browser page signed in as alice."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    try:
        signed_in = context.new_page()
        signed_in.goto(f"{server}/login")
        signed_in.get_by_label("Account name").fill("alice")
        signed_in.get_by_label("Password").fill(PASSWORD)
        signed_in.get_by_role("button", name="Sign in").click()
        playwright_api.expect(signed_in.locator("#account-link")).to_have_text("alice")
        yield signed_in
    finally:
        context.close()


def _add_webhook(page: object, server: str) -> None:
    page.get_by_role("link", name="Notifications").click()  # type: ignore[attr-defined]
    page.get_by_label("Kind").select_option("webhook")  # type: ignore[attr-defined]
    page.get_by_label("Address or URL").fill(HOOK)  # type: ignore[attr-defined]
    page.get_by_label("Name").fill("Home Assistant")  # type: ignore[attr-defined]
    page.get_by_label("late").check()  # type: ignore[attr-defined]
    page.get_by_role("button", name="Add channel").click()  # type: ignore[attr-defined]


def test_a_webhook_is_added_and_its_secret_shown_only_once(page: object, server: str) -> None:
    expect = playwright_api.expect
    _add_webhook(page, server)
    shown = page.locator("#new-secret-value")  # type: ignore[attr-defined]
    expect(shown).to_contain_text("whsec_")
    secret = shown.inner_text()
    expect(page.locator("#channels")).to_contain_text("Home Assistant")  # type: ignore[attr-defined]
    expect(page.locator("#channels")).to_contain_text("late")  # type: ignore[attr-defined]
    _shot(page, "notifications-secret")
    page.goto(f"{server}/notifications")  # type: ignore[attr-defined]
    expect(page.locator("#new-secret-value")).to_have_count(0)  # type: ignore[attr-defined]
    assert secret not in page.content()  # type: ignore[attr-defined]


def test_a_test_is_sent_seen_in_the_log_and_replayed(
    page: object, server: str, db: Database
) -> None:
    expect = playwright_api.expect
    _add_webhook(page, server)
    page.get_by_role("button", name="Send a test").click()  # type: ignore[attr-defined]
    expect(page.locator(".notice")).to_contain_text("Test queued")  # type: ignore[attr-defined]
    row = page.locator("#deliveries tbody tr").first  # type: ignore[attr-defined]
    expect(row).to_contain_text("notification.test")
    expect(row.locator(".delivery-status")).to_contain_text("pending")
    with db.sessions() as session:
        delivery_id = session.scalars(select(NotificationDelivery.id)).one()
    # The dispatcher (another part of parcelwatch, not running here) fails, then gives up:
    record_attempt(db, delivery_id, outcome="dead", status_code=410, error="HTTP 410 Gone")
    expect(row.locator(".delivery-status")).to_contain_text("dead", timeout=15_000)  # polls
    expect(row).to_contain_text("HTTP 410 Gone")
    expect(row).to_contain_text("410")
    _shot(page, "notifications-log")
    row.get_by_role("button", name="Replay").click()
    expect(page.locator(".notice")).to_contain_text("queued again")  # type: ignore[attr-defined]
    expect(page.locator("#deliveries tbody tr").first.locator(".delivery-status")).to_contain_text(  # type: ignore[attr-defined]
        "pending"
    )
    record_attempt(db, delivery_id, outcome="delivered", status_code=204)
    expect(page.locator("#deliveries tbody tr").first.locator(".delivery-status")).to_contain_text(  # type: ignore[attr-defined]
        "delivered", timeout=15_000
    )


def test_quiet_hours_are_saved(page: object, server: str) -> None:
    expect = playwright_api.expect
    page.goto(f"{server}/notifications")  # type: ignore[attr-defined]
    page.get_by_label("Time zone").fill("Europe/Berlin")  # type: ignore[attr-defined]
    page.locator("#quiet-start").fill("22:00")  # type: ignore[attr-defined]
    page.locator("#quiet-end").fill("07:00")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Save quiet hours").click()  # type: ignore[attr-defined]
    expect(page.locator(".notice")).to_contain_text("quiet hours saved")  # type: ignore[attr-defined]
    expect(page.get_by_label("Time zone")).to_have_value("Europe/Berlin")  # type: ignore[attr-defined]
    expect(page.locator("#quiet-start")).to_have_value("22:00")  # type: ignore[attr-defined]
    expect(page.locator("#quiet-end")).to_have_value("07:00")  # type: ignore[attr-defined]


def test_a_shipment_is_muted_on_its_page(page: object, server: str) -> None:
    expect = playwright_api.expect
    page.goto(f"{server}/add")  # type: ignore[attr-defined]
    page.locator("#tracking_number").fill(UPS)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Track this shipment").click()  # type: ignore[attr-defined]
    expect(page.locator("#tracking-number")).to_have_text(UPS)  # type: ignore[attr-defined]
    page.get_by_label("Tell me about this shipment").select_option("muted")  # type: ignore[attr-defined]
    page.locator("#notify-form").get_by_role("button", name="Save").click()  # type: ignore[attr-defined]
    expect(page.locator(".notice")).to_contain_text("notifications of this shipment")  # type: ignore[attr-defined]
    expect(page.get_by_label("Tell me about this shipment")).to_have_value("muted")  # type: ignore[attr-defined]
    _shot(page, "shipment-muted")
