"""People in a real browser (headless Chromium): creating the owner on first start, signing
out and in (and mistyping), a forged form refused, and an API token shown once. Each test has
its own server, database and browser context (no cookie carries over)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from parcelwatch.accounts.roles import Role
from parcelwatch.accounts.service import create_user
from parcelwatch.config import load_settings
from parcelwatch.db import create_db_engine, make_session_factory, session_scope
from tests.conftest import serving
from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS, REQUIRED, _shot, playwright_api

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

PASSWORD = "maple syrup on a tuesday"
UPS = "1Z5R89390357567127"


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
def page(chromium: object) -> Iterator[object]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def database_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "parcelwatch.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def server(database_url: str) -> Iterator[str]:
    """The app (no demo, no carrier) on a free local port."""
    from parcelwatch.api.app import create_app

    settings = load_settings(
        database_url=database_url, auto_update_enabled=False, parcelwatch_demo=False, _env_file=None
    )
    with serving(create_app(settings)) as url:
        yield url


@pytest.fixture
def owner(database_url: str) -> str:
    engine = create_db_engine(database_url)
    with session_scope(make_session_factory(engine), write=True) as session:
        create_user(session, name="alice", role=Role.OWNER, password=PASSWORD)
    engine.dispose()
    return "alice"


def _sign_in(page: object, server: str, name: str, password: str) -> None:
    page.goto(f"{server}/login")  # type: ignore[attr-defined]
    page.get_by_label("Account name").fill(name)  # type: ignore[attr-defined]
    page.get_by_label("Password").fill(password)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Sign in").click()  # type: ignore[attr-defined]


def test_a_newcomer_creates_the_owner_then_signs_out_mistypes_and_signs_in(
    page: object, server: str
) -> None:
    expect = playwright_api.expect
    page.goto(server)  # type: ignore[attr-defined]
    expect(page).to_have_url(f"{server}/setup")
    expect(page.get_by_role("heading", level=1)).to_have_text("Create the owner account")
    expect(page.get_by_label("Setup code")).to_have_count(0)  # this machine needs none
    page.get_by_label("Account name").fill("Alice")  # type: ignore[attr-defined]
    page.get_by_label("Password", exact=True).fill(PASSWORD)  # type: ignore[attr-defined]
    page.get_by_label("Password again").fill(PASSWORD)  # type: ignore[attr-defined]
    _shot(page, "setup")
    page.get_by_role("button", name="Create the owner account").click()  # type: ignore[attr-defined]
    expect(page).to_have_url(f"{server}/")
    expect(page.locator("#account-link")).to_have_text("alice")

    page.get_by_role("button", name="Sign out").click()  # type: ignore[attr-defined]
    expect(page).to_have_url(f"{server}/login?notice=signed_out")
    expect(page.locator(".notice")).to_contain_text("You are signed out.")
    page.goto(f"{server}/shipments")  # type: ignore[attr-defined]
    expect(page).to_have_url(f"{server}/login?next=%2Fshipments")

    page.get_by_label("Account name").fill("alice")  # type: ignore[attr-defined]
    page.get_by_label("Password").fill("not the password at all")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Sign in").click()  # type: ignore[attr-defined]
    expect(page.locator("#login-error")).to_have_text("Wrong account name or password.")
    _shot(page, "login-wrong-password")
    page.get_by_label("Password").fill(PASSWORD)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Sign in").click()  # type: ignore[attr-defined]
    expect(page).to_have_url(f"{server}/shipments")  # back where they were going
    expect(page.locator("#account-link")).to_have_text("alice")


@pytest.mark.usefixtures("owner")
def test_a_form_with_a_forged_csrf_token_is_refused_and_adds_nothing(
    page: object, server: str
) -> None:
    expect = playwright_api.expect
    _sign_in(page, server, "alice", PASSWORD)
    page.goto(f"{server}/add")  # type: ignore[attr-defined]
    page.evaluate(  # type: ignore[attr-defined]
        "document.querySelector('#add-one input[name=csrf_token]').value = 'forged'"
    )
    page.locator("#tracking_number").fill(UPS)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Track this shipment").click()  # type: ignore[attr-defined]
    expect(page.locator("main")).to_contain_text("security token is missing or out of date")
    _shot(page, "csrf-refused")
    page.goto(f"{server}/shipments?view=all")  # type: ignore[attr-defined]
    expect(page.locator("main")).not_to_contain_text(UPS)


@pytest.mark.usefixtures("owner")
def test_a_new_api_token_is_shown_once_and_works(page: object, server: str) -> None:
    expect = playwright_api.expect
    _sign_in(page, server, "alice", PASSWORD)
    page.locator("#account-link").click()  # type: ignore[attr-defined]
    expect(page.get_by_role("heading", level=1)).to_have_text("alice")
    page.get_by_label("Name").fill("Home Assistant")  # type: ignore[attr-defined]
    page.get_by_label("Scope").select_option("read")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Create token").click()  # type: ignore[attr-defined]
    shown = page.locator("#new-token-value")  # type: ignore[attr-defined]
    expect(shown).to_contain_text("pwt_")
    token = shown.inner_text()
    _shot(page, "token-created")
    answer = httpx.get(f"{server}/api/shipments", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    page.goto(f"{server}/account")  # type: ignore[attr-defined]
    expect(page.locator("#new-token-value")).to_have_count(0)
    expect(page.locator("#tokens")).to_contain_text("Home Assistant")
    assert token not in page.content()  # type: ignore[attr-defined]
