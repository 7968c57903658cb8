"""Who a dashboard visitor is, and how they come to be signed in.

Pages want a person (`PersonDep`): a visitor with no session is sent to the sign-in page, or
to the first-start setup while the instance has no account. Forms also want the session's
CSRF token in their `csrf_token` field (`FormPersonDep`); the sign-in and setup forms, sent
before any session exists, carry a token that must equal their own cookie's (the
double-submit pattern).

Besides a password, a visitor is signed in
- by the reverse proxy in front (Authelia, authentik, oauth2-proxy): AUTH_PROXY_HEADER names
  them, believed only from a TRUSTED_PROXIES address; the account is made on first sight;
- in demo mode, from this machine: as the `demo` account, so `make run` shows the demo at once
  (made owner when it comes first, it steps aside for the first real owner).
Either way they get an ordinary server-side session, so CSRF tokens and sign-out work alike.
"""

from __future__ import annotations

import secrets
from ipaddress import ip_address
from typing import Annotated, Final
from urllib.parse import quote

import structlog
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from starlette.responses import RedirectResponse, Response

from parcelwatch.accounts.roles import Role
from parcelwatch.accounts.secrets import same_secret
from parcelwatch.accounts.service import DEMO_ACCOUNT, create_user, has_owner, normalize_name
from parcelwatch.accounts.sessions import end_session, start_session
from parcelwatch.api.auth import (
    CSRF_FIELD,
    SESSION_COOKIE,
    Principal,
    authenticator_of,
    csrf_matches,
)
from parcelwatch.api.deps import sessions_of, settings_of
from parcelwatch.api.proxies import peer_is_trusted_proxy
from parcelwatch.db import session_scope
from parcelwatch.errors import Conflict, InvalidInput
from parcelwatch.models import User

__all__ = [
    "DEMO_ACCOUNT",
    "FORM_COOKIE",
    "FormPersonDep",
    "PersonDep",
    "SignInFirst",
    "client_address",
    "form_token",
    "needs_owner",
    "announce_setup",
    "install_signin",
    "is_local_visitor",
    "new_setup_code",
    "sign_in",
    "sign_out",
]

log = structlog.get_logger(__name__)

FORM_COOKIE: Final = "parcelwatch_form"  # the sign-in and setup forms' double-submit token
_FORWARDING_HEADERS: Final = ("x-forwarded-for", "forwarded", "x-real-ip")


class SignInFirst(Exception):  # noqa: N818  # a redirect, not a failure
    """Raised by a page's dependency to send the visitor elsewhere first (303)."""

    def __init__(self, location: str, *, cookie: str | None = None) -> None:
        self.location = location
        self.cookie = cookie  # a session secret to set on the way


def install_signin(app: FastAPI) -> None:
    app.add_exception_handler(SignInFirst, _redirect)  # type: ignore[arg-type]
    app.state.setup_code = new_setup_code()


_CODE_ALPHABET: Final = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I


def new_setup_code() -> str:
    letters = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(12))
    return "-".join(letters[i : i + 4] for i in range(0, 12, 4))


def announce_setup(app: FastAPI) -> None:
    """At start-up without an owner: say how to create one, with this run's setup code (the
    setup page asks for it from any machine but this one). Under `serve --workers`, the
    first process alone says it (`app.state.announce_setup`)."""
    try:
        with sessions_of(app)() as session:
            if has_owner(session):
                app.state.has_owner = True
                return
    except SQLAlchemyError:
        return  # not migrated or unreachable: /readyz and the health report say so
    if not getattr(app.state, "announce_setup", True):
        return
    log.warning(
        "no owner account yet: open /setup in the dashboard to create it (from another "
        "machine it asks for this setup code), or run `parcelwatch users create NAME --role "
        "owner`",
        setup_code=app.state.setup_code,
    )


async def _redirect(request: Request, signal: SignInFirst) -> Response:
    response = RedirectResponse(signal.location, status_code=status.HTTP_303_SEE_OTHER)
    if signal.cookie is not None:
        set_session_cookie(request, response, signal.cookie)
    return response


def set_session_cookie(request: Request, response: Response, secret: str) -> None:
    """The session cookie: HttpOnly, SameSite=Lax, Secure when the page came over HTTPS (as
    the server saw it: X-Forwarded-Proto counts only from TRUSTED_PROXIES)."""
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def is_local_visitor(request: Request) -> bool:
    """A browser on this machine: a loopback address, and no sign of a proxy relaying
    someone else (a reverse proxy on this host would otherwise make everyone local)."""
    try:
        loopback = ip_address(client_address(request)).is_loopback
    except ValueError:
        return False
    return loopback and not any(name in request.headers for name in _FORWARDING_HEADERS)


def needs_owner(request: Request) -> bool:
    """Whether the instance still waits for its owner (then the setup page is open). Once
    there is one there always is: the owner cannot be deleted."""
    if getattr(request.app.state, "has_owner", False):
        return False
    with sessions_of(request.app)() as session:
        found = has_owner(session)
    request.app.state.has_owner = found
    return not found


def sign_in(request: Request, user: User) -> str:
    """Start a session for `user` (in its own transaction, on a worker thread); the cookie's
    secret."""
    with session_scope(sessions_of(request.app), write=True) as session:
        started = start_session(
            session,
            user,
            idle=settings_of(request.app).session_idle_timeout,
            user_agent=request.headers.get("user-agent", ""),
            address=client_address(request),
        )
    return started.secret


def sign_out(request: Request, principal: Principal) -> None:
    if principal.session_id is not None and principal.user_id is not None:
        with session_scope(sessions_of(request.app), write=True) as session:
            end_session(session, user_id=principal.user_id, session_id=principal.session_id)
    authenticator_of(request.app).forget()


def _account(request: Request, name: str, *, role: Role) -> User:
    """The account `name`, made with `role` (no password) when it does not exist yet; the
    first account is always the owner. Two first sign-ins at once (PostgreSQL lets both
    look): the one that loses the insert reads the winner's account."""
    try:
        return _account_once(request, name, role=role)
    except (IntegrityError, Conflict):
        return _account_once(request, name, role=role)


def _account_once(request: Request, name: str, *, role: Role) -> User:
    with session_scope(sessions_of(request.app), write=True) as session:
        user = session.scalar(select(User).where(User.name == name))
        if user is None:
            first = (session.scalar(select(func.count()).select_from(User)) or 0) == 0
            user = create_user(
                session, name=name, role=Role.OWNER if first else role, password=None
            )
            log.info("account created on first sign-in", account=name, role=user.role.value)
        session.expunge(user)
    return user


def _proxy_name(request: Request) -> str | None:
    header = settings_of(request.app).auth_proxy_header
    if header is None or not peer_is_trusted_proxy(request, settings_of(request.app)):
        return None
    sent = request.headers.get(header, "").strip()
    if not sent:
        return None
    try:
        return normalize_name(sent)
    except InvalidInput:
        log.warning("proxy sign-in refused: not a valid account name", header=header)
        return None


async def visitor(request: Request) -> Principal | None:
    """Who is visiting: their session, or one started now for the reverse proxy's user or,
    in demo mode, for a browser on this machine (then `SignInFirst` sets its cookie)."""
    principal = await authenticator_of(request.app).principal(request)
    proxied = _proxy_name(request)
    if proxied is not None and (principal is None or principal.name != proxied):
        if principal is not None:
            await run_in_threadpool(sign_out, request, principal)
        user = await run_in_threadpool(_account, request, proxied, role=Role.MEMBER)
        secret = await run_in_threadpool(sign_in, request, user)
        raise SignInFirst(_here(request), cookie=secret)
    settings = settings_of(request.app)
    if principal is None and settings.parcelwatch_demo and is_local_visitor(request):
        user = await run_in_threadpool(_account, request, DEMO_ACCOUNT, role=Role.MEMBER)
        secret = await run_in_threadpool(sign_in, request, user)
        raise SignInFirst(_here(request), cookie=secret)
    return principal


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


async def _person(request: Request) -> Principal:
    principal = await visitor(request)
    if principal is not None:
        return principal
    if await run_in_threadpool(needs_owner, request):
        raise SignInFirst("/setup")
    raise SignInFirst("/login?next=" + quote(_here(request), safe=""))


async def _form_person(request: Request) -> Principal:
    """The person sending a form: always an account's session (only sessions have a CSRF
    token, so a bearer token or ADMIN_API_KEY cannot send one)."""
    principal = await _person(request)
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    if not csrf_matches(principal, sent if isinstance(sent, str) else None):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "This form's security token is missing or out of date (it protects you against "
            "other sites sending forms in your name). Reload the page and send it again.",
        )
    return principal


def form_token(request: Request) -> str:
    """The sign-in and setup forms' token: their cookie's, or a new one to set."""
    return request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(32)


def form_token_matches(request: Request, sent: str) -> bool:
    return same_secret(request.cookies.get(FORM_COOKIE), sent)


PersonDep = Annotated[Principal, Depends(_person)]
FormPersonDep = Annotated[Principal, Depends(_form_person)]
