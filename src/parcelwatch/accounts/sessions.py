"""Dashboard sessions, kept on the server: started at sign-in, found by the cookie's secret,
kept alive by use (they expire after `idle` without any), listed on the account page, ended
one by one or all together (a password change ends the others).

The cookie carries a random secret; the database keeps only its SHA-256, so a copy of the
database signs nobody in. Services only flush; the caller's transaction commits."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from parcelwatch.accounts.secrets import digest, new_secret
from parcelwatch.domain import utcnow
from parcelwatch.errors import NotFound
from parcelwatch.models import User, UserSession

__all__ = [
    "StartedSession",
    "end_session",
    "end_sessions",
    "find_session",
    "list_sessions",
    "start_session",
    "touch_session",
]

MAX_USER_AGENT = 200
MAX_ADDRESS = 64


@dataclass(frozen=True, slots=True)
class StartedSession:
    row: UserSession
    secret: str  # for the cookie; never stored


def start_session(
    session: Session, user: User, *, idle: timedelta, user_agent: str = "", address: str = ""
) -> StartedSession:
    secret = new_secret()
    now = utcnow()
    row = UserSession(
        user_id=user.id,
        token_hash=digest(secret),
        csrf_token=new_secret(),
        created_at=now,
        last_seen_at=now,
        expires_at=now + idle,
        user_agent=user_agent[:MAX_USER_AGENT],
        address=address[:MAX_ADDRESS],
    )
    session.add(row)
    session.flush()
    return StartedSession(row=row, secret=secret)


def find_session(session: Session, secret: str) -> UserSession | None:
    """The live session the cookie `secret` stands for (not ended, not expired), else None;
    nothing is written (`touch_session` records the use)."""
    wanted = digest(secret)
    row = session.scalar(select(UserSession).where(UserSession.token_hash == wanted))
    if row is None or not hmac.compare_digest(row.token_hash, wanted):
        return None
    if row.revoked_at is not None or row.expires_at <= utcnow():
        return None
    return row


def touch_session(session: Session, session_id: int, *, idle: timedelta) -> None:
    now = utcnow()
    session.execute(
        update(UserSession)
        .where(UserSession.id == session_id, UserSession.revoked_at.is_(None))
        .values(last_seen_at=now, expires_at=now + idle)
    )


def list_sessions(session: Session, user_id: int) -> list[UserSession]:
    """A person's live sessions, the most recently used first."""
    return list(
        session.scalars(
            select(UserSession)
            .where(
                UserSession.user_id == user_id,
                UserSession.revoked_at.is_(None),
                UserSession.expires_at > utcnow(),
            )
            .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc())
        )
    )


def end_session(session: Session, *, user_id: int, session_id: int) -> None:
    """Sign out one of `user_id`'s sessions; another person's is as unknown as a missing one."""
    ended = session.execute(
        update(UserSession)
        .where(
            UserSession.id == session_id,
            UserSession.user_id == user_id,
            UserSession.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
    )
    if not ended.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"no session with id {session_id}")


def end_sessions(session: Session, *, user_id: int, keep: int | None = None) -> int:
    """Sign out every session of `user_id` but `keep`; how many were ended."""
    query = update(UserSession).where(
        UserSession.user_id == user_id, UserSession.revoked_at.is_(None)
    )
    if keep is not None:
        query = query.where(UserSession.id != keep)
    ended = session.execute(query.values(revoked_at=utcnow()))
    return int(ended.rowcount)  # type: ignore[attr-defined]
