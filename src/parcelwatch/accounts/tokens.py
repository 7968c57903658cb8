"""Personal API tokens: created for an account with a scope, shown once, kept only as a
SHA-256 hash, optionally expiring, revocable. `check_token` is what an API request calls
(`parcelwatch.api.auth`).

A token is `pwt_` followed by 43 URL-safe characters (256 random bits); its first 12
characters are kept as a prefix so that `tokens list` can show which one is which."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from parcelwatch.accounts.roles import Role, Scope
from parcelwatch.accounts.secrets import digest, new_secret
from parcelwatch.accounts.service import get_user
from parcelwatch.domain import utcnow
from parcelwatch.errors import InvalidInput, NotFound
from parcelwatch.models import ApiToken, User

__all__ = [
    "TOKEN_PREFIX",
    "IssuedToken",
    "check_token",
    "create_token",
    "list_tokens",
    "mark_token_used",
    "revoke_token",
]

TOKEN_PREFIX = "pwt_"
SHOWN_PREFIX = 12
MAX_NAME = 100


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown once, never stored


def create_token(
    session: Session,
    *,
    user_name: str,
    scope: Scope,
    name: str | None = None,
    expires_in: timedelta | None = None,
) -> IssuedToken:
    user = get_user(session, user_name)
    if scope is Scope.ADMIN and user.role is Role.MEMBER:
        raise InvalidInput(
            f"scope: {user.name!r} is a member; only the owner and admins get admin tokens"
        )
    if expires_in is not None and expires_in <= timedelta(0):
        raise InvalidInput("expires: must be in the future (for example 30d or 12h)")
    label = (name or f"{scope.value} token").strip()
    if not label or len(label) > MAX_NAME:
        raise InvalidInput(f"name: 1 to {MAX_NAME} characters")
    secret = new_secret(TOKEN_PREFIX)
    now = utcnow()
    token = ApiToken(
        user_id=user.id,
        name=label,
        scope=scope,
        token_hash=digest(secret),
        prefix=secret[:SHOWN_PREFIX],
        created_at=now,
        expires_at=now + expires_in if expires_in is not None else None,
    )
    session.add(token)
    session.flush()
    return IssuedToken(token=token, secret=secret)


def list_tokens(session: Session, *, user_name: str | None = None) -> list[ApiToken]:
    query = select(ApiToken).join(User).order_by(ApiToken.id)
    if user_name is not None:
        query = query.where(ApiToken.user_id == get_user(session, user_name).id)
    return list(session.scalars(query))


def revoke_token(session: Session, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id, with_for_update=True)
    if token is None:
        raise NotFound(f"no API token with id {token_id}: see `parcelwatch tokens list`")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
    return token


def check_token(session: Session, secret: str) -> ApiToken | None:
    """The live token `secret` is (not revoked, not expired), else None. The lookup is by
    hash, and the hash is compared in constant time. Nothing is written: `mark_token_used`
    records the use."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    wanted = digest(secret)
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == wanted))
    if token is None or not hmac.compare_digest(token.token_hash, wanted):
        return None
    if token.revoked_at is not None or (
        token.expires_at is not None and token.expires_at <= utcnow()
    ):
        return None
    return token


def mark_token_used(session: Session, token_id: int) -> None:
    session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=utcnow()))
