"""Dashboard pages and forms of people: sign in, sign out, first-start setup of the owner, and
the account page (password, sessions, API tokens).

Failed sign-ins are throttled and logged; the answer to a wrong name is the answer to a wrong
password. A new API token is shown once, in the answer to the form that made it, never in a
URL or a log."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Final

import structlog
from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from parcelwatch.accounts.passwords import MIN_LENGTH, verify_password
from parcelwatch.accounts.roles import Role, Scope
from parcelwatch.accounts.secrets import same_secret
from parcelwatch.accounts.service import authenticate, create_user, get_user, set_password
from parcelwatch.accounts.sessions import end_session, list_sessions
from parcelwatch.accounts.throttle import LoginThrottle
from parcelwatch.accounts.tokens import create_token, list_tokens, revoke_token
from parcelwatch.api.auth import SESSION_COOKIE, Principal, authenticator_of, scope_of_role
from parcelwatch.api.deps import sessions_of, settings_of
from parcelwatch.config import parse_duration
from parcelwatch.db import session_scope
from parcelwatch.errors import InvalidInput, NotFound, ServiceError
from parcelwatch.models import User
from parcelwatch.ops.metrics import LOGIN_FAILURES
from parcelwatch.web.signin import (
    FORM_COOKIE,
    FormPersonDep,
    PersonDep,
    client_address,
    form_token,
    form_token_matches,
    is_local_visitor,
    needs_owner,
    set_session_cookie,
    sign_in,
    sign_out,
    visitor,
)
from parcelwatch.web.templating import SameOriginDep, render

__all__ = ["router", "throttle_of"]

log = structlog.get_logger(__name__)

router = APIRouter(include_in_schema=False)

WRONG: Final = "Wrong account name or password."
FORM_EXPIRED: Final = (
    "This form's security token is missing or out of date. Reload the page and send it again."
)
NO_STORE: Final = {"Cache-Control": "no-store"}


def throttle_of(request: Request) -> LoginThrottle:
    throttle: LoginThrottle | None = getattr(request.app.state, "login_throttle", None)
    if throttle is None:
        settings = settings_of(request.app)
        throttle = LoginThrottle(settings.redis_url, processes=settings.web_concurrency)
        request.app.state.login_throttle = throttle
    return throttle


def _safe_next(target: str) -> str:
    """Only a path of this site: never `//elsewhere` or `https://elsewhere`."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _form_page(
    request: Request, template: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    """A page with a pre-session form, and the cookie its token must match."""
    token = form_token(request)
    response = render(request, template, {"form_token": token, **context}, status_code=status_code)
    response.set_cookie(
        FORM_COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    return response


def _signed_in(request: Request, user: User, target: str) -> Response:
    secret = sign_in(request, user)
    response = RedirectResponse(_safe_next(target), status_code=303)
    set_session_cookie(request, response, secret)
    response.delete_cookie(FORM_COOKIE)
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str = "/") -> Response:  # noqa: A002
    if await visitor(request) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    if await run_in_threadpool(needs_owner, request):
        return RedirectResponse("/setup", status_code=303)
    return _form_page(request, "login.html", {"next": _safe_next(next), "name": ""})


@router.post("/login")
async def login(
    request: Request,
    _origin: SameOriginDep,
    name: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",  # noqa: A002
) -> Response:
    shown = {"next": _safe_next(next), "name": name}
    if not form_token_matches(request, csrf_token):
        return _form_page(request, "login.html", {**shown, "error": FORM_EXPIRED}, status_code=403)
    account = name.strip().lower()
    address = client_address(request)
    throttle = throttle_of(request)
    wait = throttle.wait_seconds(account, address)
    if wait:
        log.warning("sign-in throttled", account=account, address=address)
        minutes = max(1, round(wait / 60))
        error = f"Too many failed sign-ins. Try again in {minutes} minute{'s' * (minutes != 1)}."
        return _form_page(request, "login.html", {**shown, "error": error}, status_code=429)
    user = await run_in_threadpool(_authenticate, request, name, password)
    if user is None:
        throttle.failed(account, address)
        LOGIN_FAILURES.inc()
        log.warning("sign-in failed", account=account, address=address)
        return _form_page(request, "login.html", {**shown, "error": WRONG}, status_code=401)
    throttle.succeeded(account)
    log.info("signed in", account=user.name, address=address)
    return await run_in_threadpool(_signed_in, request, user, next)


def _authenticate(request: Request, name: str, password: str) -> User | None:
    with session_scope(sessions_of(request.app), write=True) as session:
        user = authenticate(session, name, password)
        if user is not None:
            session.expunge(user)
        return user


@router.post("/logout")
async def logout(request: Request, person: FormPersonDep) -> Response:
    await run_in_threadpool(sign_out, request, person)
    response = RedirectResponse("/login?notice=signed_out", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/setup", response_class=HTMLResponse)
async def setup_page(request: Request) -> Response:
    if not await run_in_threadpool(needs_owner, request):
        return RedirectResponse("/login", status_code=303)
    return _form_page(request, "setup.html", _setup_context(request, name=""))


def _setup_context(request: Request, **values: Any) -> dict[str, Any]:
    return {"local": is_local_visitor(request), "min_length": MIN_LENGTH, **values}


@router.post("/setup")
async def setup(
    request: Request,
    _origin: SameOriginDep,
    name: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    confirm: Annotated[str, Form(max_length=1000)] = "",
    setup_code: Annotated[str, Form(max_length=100)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    if not await run_in_threadpool(needs_owner, request):
        return RedirectResponse("/login", status_code=303)

    def again(error: str, status_code: int) -> HTMLResponse:
        context = _setup_context(request, name=name, error=error)
        return _form_page(request, "setup.html", context, status_code=status_code)

    if not form_token_matches(request, csrf_token):
        return again(FORM_EXPIRED, 403)
    if not is_local_visitor(request) and not _setup_code_matches(request, setup_code):
        log.warning("setup refused: wrong setup code", address=client_address(request))
        return again(
            "That setup code is not right. It is printed in the server's log when it starts "
            "without an owner; or open this page on the server's own machine.",
            403,
        )
    if password != confirm:
        return again("The two passwords differ; type the same password twice.", 422)
    try:
        user = await run_in_threadpool(_create_owner, request, name, password)
    except ServiceError as error:
        return again(error.detail, 422)
    request.app.state.has_owner = True
    log.info("owner account created", account=user.name, address=client_address(request))
    return await run_in_threadpool(_signed_in, request, user, "/")


def _setup_code_matches(request: Request, sent: str) -> bool:
    code: str | None = getattr(request.app.state, "setup_code", None)
    return same_secret(code, sent.strip().upper())


def _create_owner(request: Request, name: str, password: str) -> User:
    with session_scope(sessions_of(request.app), write=True) as session:
        user = create_user(session, name=name, role=Role.OWNER, password=password)
        session.expunge(user)
        return user


# ---- the account page ----


def _account_context(request: Request, person: Principal, **values: Any) -> dict[str, Any]:
    if person.user_id is None:
        return {"nav": "account", "person": person, "sessions": [], "tokens": [], **values}
    with sessions_of(request.app)() as session:
        sessions = list_sessions(session, person.user_id)
        tokens = [
            token
            for token in list_tokens(session, user_name=person.name)
            if token.revoked_at is None
        ]
    scopes = [scope for scope in Scope if scope_of_role(person.role).covers(scope)]
    return {
        "nav": "account",
        "person": person,
        "sessions": sessions,
        "tokens": tokens,
        "scopes": scopes,
        "min_length": MIN_LENGTH,
        **values,
    }


@router.get("/account", response_class=HTMLResponse)
async def account_page(request: Request, person: PersonDep) -> HTMLResponse:
    context = await run_in_threadpool(_account_context, request, person)
    return render(request, "account.html", context)


async def _account_again(
    request: Request, person: Principal, status_code: int, **values: Any
) -> HTMLResponse:
    context = await run_in_threadpool(_account_context, request, person, **values)
    return render(request, "account.html", context, status_code=status_code)


@router.post("/account/password")
async def change_password(
    request: Request,
    person: FormPersonDep,
    current: Annotated[str, Form(max_length=1000)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    confirm: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    if password != confirm:
        return await _account_again(
            request, person, 422, password_error="The two new passwords differ."
        )
    try:
        await run_in_threadpool(_change_password, request, person, current, password)
    except ServiceError as error:
        return await _account_again(request, person, 422, password_error=error.detail)
    log.info("password changed", account=person.name)
    return RedirectResponse("/account?notice=password_changed", status_code=303)


def _change_password(request: Request, person: Principal, current: str, password: str) -> None:
    with session_scope(sessions_of(request.app), write=True) as session:
        user = get_user(session, person.name, for_update=True)
        if user.password_hash is not None and not verify_password(current, user.password_hash):
            raise InvalidInput("current password: that is not your current password")
        set_password(session, person.name, password, keep_session=person.session_id)
    authenticator_of(request.app).forget()


@router.post("/account/sessions/{session_id}/end")
async def end_one_session(request: Request, session_id: int, person: FormPersonDep) -> Response:
    def end() -> None:
        assert person.user_id is not None
        with session_scope(sessions_of(request.app), write=True) as session:
            end_session(session, user_id=person.user_id, session_id=session_id)
        authenticator_of(request.app).forget()

    try:
        await run_in_threadpool(end)
    except NotFound:
        return RedirectResponse("/account?notice=session_gone", status_code=303)
    if session_id == person.session_id:
        response = RedirectResponse("/login?notice=signed_out", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response
    return RedirectResponse("/account?notice=session_ended", status_code=303)


@router.post("/account/tokens")
async def new_token(
    request: Request,
    person: FormPersonDep,
    name: Annotated[str, Form(max_length=200)] = "",
    scope: Annotated[str, Form(max_length=16)] = "read",
    expires: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    if scope not in set(Scope):
        return await _account_again(
            request, person, 422, token_error="scope: choose read, write or admin"
        )
    try:
        expires_in = parse_duration(expires) if expires.strip() else None
    except ValueError as error:
        return await _account_again(request, person, 422, token_error=f"expires: {error}")
    try:
        secret, shown = await run_in_threadpool(
            _create_token, request, person, Scope(scope), name, expires_in
        )
    except ServiceError as error:
        return await _account_again(request, person, 422, token_error=error.detail)
    log.info("API token created", account=person.name, token=shown["prefix"])
    context = await run_in_threadpool(
        _account_context, request, person, new_token=secret, new_token_info=shown
    )
    return render(request, "account.html", context, headers=NO_STORE)


def _create_token(
    request: Request,
    person: Principal,
    scope: Scope,
    name: str,
    expires_in: timedelta | None,
) -> tuple[str, dict[str, Any]]:
    with session_scope(sessions_of(request.app), write=True) as session:
        issued = create_token(
            session, user_name=person.name, scope=scope, name=name or None, expires_in=expires_in
        )
        token = issued.token
        return issued.secret, {
            "name": token.name,
            "scope": token.scope.value,
            "prefix": token.prefix,
            "expires_at": token.expires_at,
        }


@router.post("/account/tokens/{token_id}/revoke")
async def revoke_own_token(request: Request, token_id: int, person: FormPersonDep) -> Response:
    def revoke() -> bool:
        with session_scope(sessions_of(request.app), write=True) as session:
            mine = {token.id for token in list_tokens(session, user_name=person.name)}
            if token_id not in mine:
                return False
            revoke_token(session, token_id)
        authenticator_of(request.app).forget()
        return True

    if not await run_in_threadpool(revoke):
        return RedirectResponse("/account?notice=token_gone", status_code=303)
    log.info("API token revoked", account=person.name, token_id=token_id)
    return RedirectResponse("/account?notice=token_revoked", status_code=303)
