"""Signing in to the dashboard: first-start setup, password sign-in and its throttle, sessions
that end, CSRF on every form and on a browser's API writes, proxy and demo sign-in."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from parcelwatch.accounts.roles import Role
from parcelwatch.accounts.service import create_user, get_user
from parcelwatch.api.app import create_app
from parcelwatch.api.auth import SESSION_COOKIE
from parcelwatch.config import Settings
from parcelwatch.domain import utcnow
from parcelwatch.models import ApiToken, Shipment, User, UserSession
from tests.accounts.conftest import GOOD, OTHER
from tests.conftest import Database, account_token

UPS = "1Z5R89390357567127"
LAN = ("192.168.1.20", 50000)
TOKEN_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def _client(settings: Settings, *, client: tuple[str, int] = LAN) -> TestClient:
    return TestClient(
        create_app(settings), client=client, follow_redirects=False, base_url="http://localhost"
    )


def _make_owner(database: Database, name: str = "alice", password: str = GOOD) -> None:
    with database.sessions.begin() as session:
        create_user(session, name=name, role=Role.OWNER, password=password)


def _form_token(page_html: str) -> str:
    found = TOKEN_FIELD.search(page_html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def _post(client: TestClient, url: str, data: dict[str, str]) -> object:
    return client.post(url, data=data, headers={"Origin": "http://localhost"})


def sign_in(client: TestClient, name: str = "alice", password: str = GOOD) -> object:
    token = _form_token(client.get("/login").text)
    return _post(client, "/login", {"name": name, "password": password, "csrf_token": token})


@pytest.fixture
def owner(database: Database) -> str:
    _make_owner(database)
    return "alice"


@pytest.fixture
def browser(settings: Settings) -> Iterator[TestClient]:
    with _client(settings) as client:
        yield client


# ---- first start ----


def test_without_an_account_every_page_leads_to_the_setup(browser: TestClient) -> None:
    for path in ("/", "/shipments", "/account", "/login"):
        answer = browser.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == "/setup", path


def test_setup_from_another_machine_needs_the_setup_code(
    browser: TestClient, database: Database
) -> None:
    page = browser.get("/setup")
    assert 'name="setup_code"' in page.text
    form = {
        "name": "alice",
        "password": GOOD,
        "confirm": GOOD,
        "csrf_token": _form_token(page.text),
    }
    wrong = _post(browser, "/setup", {**form, "setup_code": "AAAA-BBBB-CCCC"})
    assert wrong.status_code == 403  # type: ignore[attr-defined]
    assert "setup code is not right" in wrong.text  # type: ignore[attr-defined]
    code = browser.app.state.setup_code  # type: ignore[attr-defined]
    made = _post(browser, "/setup", {**form, "setup_code": code.lower()})
    assert made.status_code == 303  # type: ignore[attr-defined]
    assert browser.get("/").status_code == 200  # signed in as the new owner
    with database.sessions() as session:
        assert get_user(session, "alice").role is Role.OWNER
    assert browser.get("/setup").headers["location"] == "/login"  # once only


def test_setup_on_the_servers_own_machine_needs_no_code(settings: Settings) -> None:
    with _client(settings, client=("127.0.0.1", 40000)) as local:
        page = local.get("/setup")
        assert 'name="setup_code"' not in page.text
        form = {"name": "alice", "password": GOOD, "confirm": GOOD}
        made = _post(local, "/setup", {**form, "csrf_token": _form_token(page.text)})
        assert made.status_code == 303  # type: ignore[attr-defined]


def test_a_proxied_request_from_loopback_is_not_the_servers_own_machine(
    settings: Settings,
) -> None:
    with _client(settings, client=("127.0.0.1", 40000)) as proxied:
        page = proxied.get("/setup", headers={"X-Forwarded-For": "203.0.113.9"})
    assert 'name="setup_code"' in page.text


def test_setup_refuses_a_weak_or_mistyped_password_and_creates_nothing(
    browser: TestClient, database: Database
) -> None:
    code = browser.app.state.setup_code  # type: ignore[attr-defined]
    token = _form_token(browser.get("/setup").text)
    base = {"name": "alice", "setup_code": code, "csrf_token": token}
    weak = _post(browser, "/setup", {**base, "password": "password1234", "confirm": "password1234"})
    differ = _post(browser, "/setup", {**base, "password": GOOD, "confirm": OTHER})
    assert weak.status_code == 422  # type: ignore[attr-defined]
    assert "most common passwords" in weak.text  # type: ignore[attr-defined]
    assert differ.status_code == 422  # type: ignore[attr-defined]
    with database.sessions() as session:
        assert session.scalars(select(User)).all() == []


# ---- signing in ----


@pytest.mark.usefixtures("owner")
def test_a_page_sends_a_visitor_to_sign_in_and_back(browser: TestClient) -> None:
    answer = browser.get("/shipments?view=all")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fshipments%3Fview%3Dall"
    token = _form_token(browser.get(answer.headers["location"]).text)
    signed = _post(
        browser,
        "/login",
        {"name": "Alice", "password": GOOD, "csrf_token": token, "next": "/shipments?view=all"},
    )
    assert signed.status_code == 303  # type: ignore[attr-defined]
    assert signed.headers["location"] == "/shipments?view=all"  # type: ignore[attr-defined]
    cookie = signed.headers["set-cookie"]  # type: ignore[attr-defined]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "samesite=lax" in cookie.lower()
    assert "Secure" not in cookie  # plain http here
    page = browser.get("/shipments?view=all")
    assert page.status_code == 200
    assert 'id="account-link"' in page.text
    assert ">alice<" in page.text


@pytest.mark.usefixtures("owner")
def test_a_wrong_password_and_an_unknown_name_get_the_same_answer(browser: TestClient) -> None:
    wrong = sign_in(browser, password=OTHER)
    unknown = sign_in(browser, name="mallory", password=OTHER)
    for answer in (wrong, unknown):
        assert answer.status_code == 401  # type: ignore[attr-defined]
        assert "Wrong account name or password." in answer.text  # type: ignore[attr-defined]
    assert SESSION_COOKIE not in browser.cookies


@pytest.mark.usefixtures("owner")
def test_sign_in_never_sends_a_visitor_to_another_site(browser: TestClient) -> None:
    token = _form_token(browser.get("/login").text)
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        browser.cookies.clear()
        token = _form_token(browser.get("/login").text)
        answer = _post(
            browser,
            "/login",
            {"name": "alice", "password": GOOD, "csrf_token": token, "next": target},
        )
        assert answer.headers["location"] == "/", target  # type: ignore[attr-defined]


@pytest.mark.usefixtures("owner")
def test_failed_sign_ins_are_throttled_per_account_whether_or_not_it_exists(
    browser: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(5):
        assert sign_in(browser, password=OTHER).status_code == 401  # type: ignore[attr-defined]
        assert sign_in(browser, name="nobody", password=OTHER).status_code == 401  # type: ignore[attr-defined]
    refused = sign_in(browser)  # the right password, too late
    ghost = sign_in(browser, name="nobody", password=OTHER)
    for answer in (refused, ghost):
        assert answer.status_code == 429  # type: ignore[attr-defined]
        assert "Too many failed sign-ins. Try again in 15 minutes." in answer.text  # type: ignore[attr-defined]
    assert SESSION_COOKIE not in browser.cookies


@pytest.mark.usefixtures("owner")
def test_failed_sign_ins_are_throttled_per_address_across_accounts(browser: TestClient) -> None:
    for index in range(20):
        sign_in(browser, name=f"guess{index}", password=OTHER)
    assert sign_in(browser).status_code == 429  # type: ignore[attr-defined]
    with _client(browser.app.state.settings, client=("192.168.1.21", 1)) as other:  # type: ignore[attr-defined]
        assert sign_in(other).status_code == 303  # type: ignore[attr-defined]


@pytest.mark.usefixtures("owner")
def test_the_sign_in_form_without_its_token_is_refused(browser: TestClient) -> None:
    browser.get("/login")
    answer = _post(browser, "/login", {"name": "alice", "password": GOOD, "csrf_token": "forged"})
    assert answer.status_code == 403  # type: ignore[attr-defined]
    assert SESSION_COOKIE not in browser.cookies


# ---- sessions ----


@pytest.mark.usefixtures("owner")
def test_every_form_without_the_session_csrf_token_is_refused(
    browser: TestClient, database: Database
) -> None:
    sign_in(browser)
    refused = _post(browser, "/add", {"tracking_number": UPS})
    forged = _post(browser, "/add", {"tracking_number": UPS, "csrf_token": "x" * 43})
    for answer in (refused, forged):
        assert answer.status_code == 403  # type: ignore[attr-defined]
    with database.sessions() as session:
        assert session.scalars(select(Shipment)).all() == []
    token = _form_token(browser.get("/add").text)
    assert _post(browser, "/add", {"tracking_number": UPS, "csrf_token": token}).status_code == 303  # type: ignore[attr-defined]


@pytest.mark.usefixtures("owner")
def test_a_signed_in_browsers_api_write_needs_the_csrf_header(browser: TestClient) -> None:
    sign_in(browser)
    assert browser.get("/api/shipments").status_code == 200
    refused = browser.post("/api/shipments", json={"tracking_number": UPS})
    assert refused.status_code == 403
    assert "X-CSRF-Token" in refused.json()["detail"]
    token = _form_token(browser.get("/add").text)
    made = browser.post(
        "/api/shipments", json={"tracking_number": UPS}, headers={"X-CSRF-Token": token}
    )
    assert made.status_code == 201


@pytest.mark.usefixtures("owner")
def test_signing_out_ends_the_session_on_the_server(browser: TestClient) -> None:
    sign_in(browser)
    cookie = browser.cookies[SESSION_COOKIE]
    token = _form_token(browser.get("/").text)
    out = _post(browser, "/logout", {"csrf_token": token})
    assert out.headers["location"] == "/login?notice=signed_out"  # type: ignore[attr-defined]
    browser.cookies.set(SESSION_COOKIE, cookie)  # a copy of the old cookie is worth nothing
    assert browser.get("/").status_code == 303
    assert browser.get("/api/shipments").status_code == 401


@pytest.mark.usefixtures("owner")
def test_a_session_unused_for_the_idle_timeout_ends(
    browser: TestClient, database: Database
) -> None:
    sign_in(browser)
    with database.sessions.begin() as session:
        session.execute(update(UserSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    browser.app.state.authenticator.forget()  # type: ignore[attr-defined]
    assert browser.get("/").headers["location"].startswith("/login")


@pytest.mark.usefixtures("owner")
def test_the_account_page_lists_sessions_and_ends_another(
    settings: Settings, browser: TestClient
) -> None:
    sign_in(browser)
    with _client(settings, client=("192.168.1.30", 1)) as laptop:
        sign_in(laptop)
        page = browser.get("/account")
        assert page.text.count('/end"') == 2  # this browser and the laptop
        laptop_id = max(int(i) for i in re.findall(r"/account/sessions/(\d+)/end", page.text))
        ended = _post(
            browser, f"/account/sessions/{laptop_id}/end", {"csrf_token": _form_token(page.text)}
        )
        assert ended.headers["location"] == "/account?notice=session_ended"  # type: ignore[attr-defined]
        assert laptop.get("/").status_code == 303


@pytest.mark.usefixtures("owner")
def test_changing_the_password_signs_out_the_other_browsers(
    settings: Settings, browser: TestClient, database: Database
) -> None:
    sign_in(browser)
    with _client(settings, client=("192.168.1.30", 1)) as laptop:
        sign_in(laptop)
        token = _form_token(browser.get("/account").text)
        wrong = _post(
            browser,
            "/account/password",
            {"current": OTHER, "password": OTHER, "confirm": OTHER, "csrf_token": token},
        )
        assert wrong.status_code == 422  # type: ignore[attr-defined]
        changed = _post(
            browser,
            "/account/password",
            {"current": GOOD, "password": OTHER, "confirm": OTHER, "csrf_token": token},
        )
        assert changed.headers["location"] == "/account?notice=password_changed"  # type: ignore[attr-defined]
        assert browser.get("/").status_code == 200  # this browser stays signed in
        assert laptop.get("/").status_code == 303
    browser.cookies.clear()
    assert sign_in(browser, password=OTHER).status_code == 303  # type: ignore[attr-defined]


# ---- tokens on the account page ----


@pytest.mark.usefixtures("owner")
def test_a_token_made_on_the_account_page_is_shown_once_and_works_until_revoked(
    settings: Settings, browser: TestClient, database: Database
) -> None:
    sign_in(browser)
    token = _form_token(browser.get("/account").text)
    made = _post(
        browser, "/account/tokens", {"name": "Home Assistant", "scope": "read", "csrf_token": token}
    )
    assert made.status_code == 200  # type: ignore[attr-defined]
    assert made.headers["cache-control"] == "no-store"  # type: ignore[attr-defined]
    secret = re.search(r'id="new-token-value">(pwt_[\w-]+)<', made.text).group(1)  # type: ignore[union-attr,attr-defined]
    assert secret not in browser.get("/account").text  # shown once
    with TestClient(create_app(settings)) as script:
        auth = {"Authorization": f"Bearer {secret}"}
        assert script.get("/api/shipments", headers=auth).status_code == 200
        assert (
            script.post("/api/shipments", json={"tracking_number": UPS}, headers=auth).status_code
            == 403
        )
        with database.sessions() as session:
            row = session.scalars(select(ApiToken)).one()
            assert row.last_used_at is not None  # the use is recorded
        page = browser.get("/account").text
        revoked = _post(
            browser, f"/account/tokens/{row.id}/revoke", {"csrf_token": _form_token(page)}
        )
        assert revoked.headers["location"] == "/account?notice=token_revoked"  # type: ignore[attr-defined]
        script.app.state.authenticator.forget()  # type: ignore[attr-defined]  # another process
        answer = script.get("/api/shipments", headers=auth)
    assert answer.status_code == 401
    assert "expired or revoked" in answer.json()["detail"]


def test_a_member_cannot_make_an_admin_token_nor_revoke_anothers(
    settings: Settings, database: Database
) -> None:
    _make_owner(database)
    with database.sessions.begin() as session:
        create_user(session, name="sam", role=Role.MEMBER, password=GOOD)
    account_token(settings, name="alice")  # the owner's token, id 1
    with _client(settings) as sam:
        sign_in(sam, name="sam")
        page = sam.get("/account").text
        assert '<option value="admin">' not in page
        token = _form_token(page)
        refused = _post(sam, "/account/tokens", {"scope": "admin", "csrf_token": token})
        assert refused.status_code == 422  # type: ignore[attr-defined]
        assert "only the owner and admins get admin tokens" in refused.text  # type: ignore[attr-defined]
        theirs = _post(sam, "/account/tokens/1/revoke", {"csrf_token": token})
        assert theirs.headers["location"] == "/account?notice=token_gone"  # type: ignore[attr-defined]
    with database.sessions() as session:
        assert session.get(ApiToken, 1).revoked_at is None  # type: ignore[union-attr]


# ---- proxy and demo ----


def test_a_trusted_proxys_user_header_signs_in_and_creates_the_account(
    database: Database, settings: Settings
) -> None:
    _make_owner(database)
    proxied = settings.model_copy(
        update={"auth_proxy_header": "Remote-User", "trusted_proxies": ["10.0.0.0/8"]}
    )
    with _client(proxied, client=("10.1.2.3", 1)) as via_proxy:
        first = via_proxy.get("/shipments", headers={"Remote-User": "Bob"})
        assert first.status_code == 303
        assert first.headers["location"] == "/shipments"
        assert via_proxy.get("/shipments", headers={"Remote-User": "Bob"}).status_code == 200
    with database.sessions() as session:
        assert get_user(session, "bob").role is Role.MEMBER
    with _client(proxied, client=("192.168.1.50", 1)) as direct:  # not through the proxy
        assert (
            direct.get("/", headers={"Remote-User": "alice"})
            .headers["location"]
            .startswith("/login")
        )


def test_demo_mode_signs_in_a_browser_on_this_machine_only(
    settings: Settings, database: Database
) -> None:
    demo = settings.model_copy(update={"parcelwatch_demo": True})
    with _client(demo, client=("127.0.0.1", 1)) as local:
        first = local.get("/")
        assert first.status_code == 303
        assert local.get("/").status_code == 200
    with _client(demo) as remote:
        assert remote.get("/").headers["location"] == "/setup"  # the demo is no owner of theirs
    with database.sessions() as session:
        demo_user = get_user(session, "demo")
        assert demo_user.role is Role.OWNER
        assert demo_user.password_hash is None
    with database.sessions.begin() as session:  # the real owner arrives
        create_user(session, name="alice", role=Role.OWNER, password=GOOD)
    with database.sessions() as session:
        assert get_user(session, "demo").role is Role.MEMBER


def test_behind_a_trusted_tls_proxy_the_cookie_is_secure_and_the_user_header_believed(
    database: Database, settings: Settings
) -> None:
    _make_owner(database)
    proxied = settings.model_copy(
        update={"auth_proxy_header": "Remote-User", "trusted_proxies": ["10.0.0.5"]}
    )
    forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    with _client(proxied, client=("10.0.0.5", 1)) as via_proxy:
        first = via_proxy.get("/", headers={**forwarded, "Remote-User": "carol"})
    assert first.status_code == 303
    assert "Secure" in first.headers["set-cookie"]
    with _client(proxied, client=("10.0.0.6", 1)) as spoofed:  # claims to be a proxy, is not
        answer = spoofed.get("/", headers={**forwarded, "Remote-User": "alice"})
    assert answer.headers["location"].startswith("/login")
    assert "set-cookie" not in answer.headers
