"""FastAPI dependencies as `Annotated` aliases: `SessionDep`, `SettingsDep`, `AdminDep`."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from parcelwatch.config import Settings
from parcelwatch.db import session_scope

__all__ = ["AdminDep", "SessionDep", "SettingsDep", "is_admin"]

_bearer = HTTPBearer(auto_error=False, description="The ADMIN_API_KEY value")


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the route returns, rolled back on error."""
    with session_scope(request.app.state.sessions) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def is_admin(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> bool:
    """True when the bearer token equals ADMIN_API_KEY (compared in constant time)."""
    if settings.admin_api_key is None or credentials is None:
        return False
    expected = settings.admin_api_key.get_secret_value().encode()
    return hmac.compare_digest(credentials.credentials.encode(), expected)


def require_admin(settings: SettingsDep, credentials: BearerDep) -> None:
    if settings.admin_api_key is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "The admin API is disabled: set ADMIN_API_KEY to enable it, then send "
            "'Authorization: Bearer <ADMIN_API_KEY>'.",
        )
    if not is_admin(settings, credentials):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "A valid admin token is required: send 'Authorization: Bearer <ADMIN_API_KEY>'.",
            headers={"WWW-Authenticate": "Bearer"},
        )


AdminDep = Annotated[None, Depends(require_admin)]
