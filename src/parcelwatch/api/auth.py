"""Who is asking: each request's credentials, resolved once into a `Principal`, and the scope
every route needs (`ReadDep`, `WriteDep`, `AdminDep`).

A request proves who it is with one of:
1. `Authorization: Bearer <token>`: a personal API token (`pwt_…`, see `accounts.tokens`), or
   ADMIN_API_KEY, which stays an admin-scoped token for deployments that scripted it;
2. the dashboard's session cookie (`accounts.sessions`). Cookies are sent by the browser on
   its own, so a write made with one must also carry the session's CSRF token: the
   `X-CSRF-Token` header (the dashboard's scripts) or the `csrf_token` form field (its forms).

A token's scope is capped by its owner's role (a demoted admin's admin token can no longer
pause anything); a session has everything its person's role allows.

Looking a credential up costs a database read on a worker thread; a busy script would pay it
on every request. So what a credential stands for is remembered for `CACHE_SECONDS`, and
forgotten at once when this server ends a session or revokes a token: in every process of a
`serve --workers N`, which share a counter of such changes (`share_forgetting`). Another
program's revocation (`parcelwatch tokens revoke`, another server) takes effect within
`CACHE_SECONDS`. The last use of a token or session is written
at most once a minute, in its own short transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Final, Protocol

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from parcelwatch.accounts.roles import Role, Scope
from parcelwatch.accounts.secrets import digest, same_secret
from parcelwatch.accounts.sessions import find_session, touch_session
from parcelwatch.accounts.tokens import check_token, mark_token_used
from parcelwatch.api.problems import MEANINGS, PROBLEM_JSON, extend_openapi
from parcelwatch.config import Settings
from parcelwatch.db import session_scope
from parcelwatch.domain import utcnow
from parcelwatch.models import User
from parcelwatch.shipments.trackers import Viewer

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "AdminDep",
    "Authenticator",
    "Needs",
    "Principal",
    "ReadDep",
    "Via",
    "WriteDep",
    "authenticator_of",
    "csrf_matches",
    "document_credentials",
    "required_scope",
    "scope_of_role",
]

SESSION_COOKIE: Final = "parcelwatch_session"
CSRF_HEADER: Final = "X-CSRF-Token"
CSRF_FIELD: Final = "csrf_token"
CACHE_SECONDS: Final = 5.0
CACHE_ENTRIES: Final = 10_000
TOUCH_EVERY: Final = timedelta(minutes=1)
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


_bearer = HTTPBearer(
    auto_error=False,
    description="A personal API token (`parcelwatch tokens create`) or the ADMIN_API_KEY value",
)
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


class Via(StrEnum):
    TOKEN = "token"
    ADMIN_KEY = "admin-key"
    SESSION = "session"


def scope_of_role(role: Role) -> Scope:
    """Everything a role may do, as a scope: members write their own, admins run the place."""
    return Scope.WRITE if role is Role.MEMBER else Scope.ADMIN


def _narrower(first: Scope, second: Scope) -> Scope:
    return first if second.covers(first) else second


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request is, and what its credential lets it do."""

    user_id: int | None  # None: ADMIN_API_KEY, which belongs to no account
    name: str
    role: Role
    scope: Scope
    via: Via
    session_id: int | None = None
    csrf_token: str | None = None  # sessions: what their writes must send back
    last_used: datetime | None = None

    @classmethod
    def of(cls, user: User, *, scope: Scope, via: Via, **details: Any) -> Principal:
        return cls(user_id=user.id, name=user.name, role=user.role, scope=scope, via=via, **details)

    def allows(self, needed: Scope) -> bool:
        return self.scope.covers(needed)

    @property
    def viewer(self) -> Viewer:
        """Whose shipments this principal sees: a member their own, others every one."""
        return Viewer.of(self.user_id, self.role)


_LookUp = Callable[[str], Principal | None]


class Counter(Protocol):
    value: int


class _LocalCounter:
    """A counter of this process alone (one `serve`, tests)."""

    def __init__(self) -> None:
        self.value = 0


ADMIN_KEY_PRINCIPAL: Final = Principal(
    user_id=None, name="ADMIN_API_KEY", role=Role.ADMIN, scope=Scope.ADMIN, via=Via.ADMIN_KEY
)

UNAUTHENTICATED = (
    "Authentication required: sign in to the dashboard, or send 'Authorization: Bearer "
    "<token>' with a personal API token (`parcelwatch tokens create`, or the account page)."
)


def _unauthorized(detail: str = UNAUTHENTICATED) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"}
    )


class Authenticator:
    """Resolves credentials to principals, remembering each for a few seconds."""

    def __init__(
        self, *, settings: Settings, sessions: sessionmaker[Session], database: Engine
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.writer = sessionmaker(
            bind=database.execution_options(sqlite_begin="IMMEDIATE"), expire_on_commit=False
        )
        self._known: dict[str, tuple[float, Principal | None]] = {}
        admin_key = settings.admin_api_key
        self._admin_key = admin_key.get_secret_value() if admin_key else None
        self._forgotten: Counter = _LocalCounter()
        self._seen_forgotten = 0

    def share_forgetting(self, counter: Counter) -> None:
        """Count `forget` calls in `counter`, shared with the other processes of this server
        (a `multiprocessing.RawValue`): one process's `forget` empties every one's memory."""
        self._forgotten = counter
        self._seen_forgotten = counter.value
        self._known.clear()

    def forget(self) -> None:
        """Drop every remembered credential: call after ending a session, revoking a token,
        changing a role or deleting an account."""
        self._known.clear()
        self._forgotten.value += 1  # a race between two processes still changes the value
        self._seen_forgotten = self._forgotten.value

    async def principal(self, request: Request) -> Principal | None:
        """Who `request` is (None: no credentials at all). A bearer token that is not valid
        is refused with 401 rather than treated as none."""
        cached: Principal | None = getattr(request.state, "principal", None)
        if cached is not None:
            return cached
        found = await self._resolve(request)
        request.state.principal = found
        return found

    async def _resolve(self, request: Request) -> Principal | None:
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, secret = header.partition(" ")
            secret = secret.strip()
            if scheme.lower() != "bearer" or not secret:
                raise _unauthorized(
                    "Unsupported Authorization header: send 'Authorization: Bearer <token>'."
                )
            if same_secret(self._admin_key, secret):
                return ADMIN_KEY_PRINCIPAL
            principal = await self._remembered("t:" + digest(secret), secret, self._token)
            if principal is None:
                raise _unauthorized(
                    "The API token is not valid: it may be mistyped, expired or revoked. "
                    "Create a new one with `parcelwatch tokens create` or on the account page."
                )
            return principal
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            return await self._remembered("s:" + digest(cookie), cookie, self._session)
        return None

    async def _remembered(self, key: str, secret: str, look_up: _LookUp) -> Principal | None:
        now = time.monotonic()
        if (forgotten := self._forgotten.value) != self._seen_forgotten:
            self._known.clear()  # another process forgot
            self._seen_forgotten = forgotten
        hit = self._known.get(key)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        try:
            principal = await run_in_threadpool(look_up, secret)
        except SQLAlchemyError:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "Cannot check the credentials: the database is unavailable. Try again shortly.",
            ) from None
        if len(self._known) >= CACHE_ENTRIES:
            self._known.clear()
        self._known[key] = (now, principal)
        return principal

    def _token(self, secret: str) -> Principal | None:
        with self.sessions() as session:
            token = check_token(session, secret)
            if token is None:
                return None
            principal = Principal.of(
                token.user,
                scope=_narrower(token.scope, scope_of_role(token.user.role)),
                via=Via.TOKEN,
                last_used=token.last_used_at,
            )
            token_id = token.id
        if _stale(principal.last_used):
            with session_scope(self.writer, write=True) as session:
                mark_token_used(session, token_id)
        return principal

    def _session(self, secret: str) -> Principal | None:
        idle = self.settings.session_idle_timeout
        with self.sessions() as session:
            row = find_session(session, secret)
            if row is None:
                return None
            principal = Principal.of(
                row.user,
                scope=scope_of_role(row.user.role),
                via=Via.SESSION,
                session_id=row.id,
                csrf_token=row.csrf_token,
                last_used=row.last_seen_at,
            )
        if _stale(principal.last_used) and principal.session_id is not None:
            with session_scope(self.writer, write=True) as session:
                touch_session(session, principal.session_id, idle=idle)
        return principal


def _stale(last_used: datetime | None) -> bool:
    return last_used is None or utcnow() - last_used >= TOUCH_EVERY


def authenticator_of(app: FastAPI) -> Authenticator:
    authenticator: Authenticator = app.state.authenticator
    return authenticator


def csrf_matches(principal: Principal, sent: str | None) -> bool:
    """True when `sent` is the session's CSRF token (compared in constant time)."""
    return same_secret(principal.csrf_token, sent)


class Needs:
    """The dependency of a route that wants `scope`: 401 without valid credentials, 403 when
    the credential's scope (or its person's role) does not reach it, and 403 for a session's
    write without its CSRF token."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    # `_bearer_credentials` is unused: it puts the bearer scheme in the OpenAPI document.
    async def __call__(self, request: Request, _bearer_credentials: BearerDep) -> Principal:
        principal = await authenticator_of(request.app).principal(request)
        if principal is None:
            raise _unauthorized()
        if not principal.allows(self.scope):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"Not allowed: this needs the '{self.scope}' scope, and this credential has "
                f"'{principal.scope}'"
                + (
                    " (members cannot run operations)."
                    if principal.role is Role.MEMBER and self.scope is Scope.ADMIN
                    else "; create a token with a wider --scope."
                ),
            )
        if (
            principal.via is Via.SESSION
            and request.method not in SAFE_METHODS
            and not csrf_matches(principal, request.headers.get(CSRF_HEADER))
        ):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"CSRF token missing or wrong: a signed-in browser's change must send the "
                f"{CSRF_HEADER} header of its page. Reload the page and try again.",
            )
        return principal


def required_scope(dependencies: object) -> Scope | None:
    """The scope a route's dependant (`route.dependant`) asks for through `Needs`, if any."""
    stack = [dependencies]
    while stack:
        dependant = stack.pop()
        call = getattr(dependant, "call", None)
        if isinstance(call, Needs):
            return call.scope
        stack.extend(getattr(dependant, "dependencies", ()))
    return None


def document_credentials(app: FastAPI) -> None:
    """Every operation that wants credentials (it names the bearer scheme) lists 401 and 403
    among its answers in the OpenAPI document, unless it describes them itself."""

    def add(_method: str, operation: dict[str, Any]) -> None:
        if operation.get("security"):
            for code in ("401", "403"):
                operation["responses"].setdefault(
                    code, {"description": MEANINGS[int(code)], "content": PROBLEM_JSON}
                )

    extend_openapi(app, add)


ReadDep = Annotated[Principal, Depends(Needs(Scope.READ))]
WriteDep = Annotated[Principal, Depends(Needs(Scope.WRITE))]
AdminDep = Annotated[Principal, Depends(Needs(Scope.ADMIN))]
