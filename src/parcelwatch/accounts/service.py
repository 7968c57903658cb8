"""Accounts: create, list, change the password of, delete, and check a sign-in.

Names are normalized (NFKC, lower case) so `Alice` and `alice` are one account. The first
account is the owner, and there is exactly one owner: it cannot be deleted nor a second one
created. Services only flush; the caller's transaction commits."""

from __future__ import annotations

import re
import unicodedata

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from parcelwatch.accounts.passwords import check_policy, hash_password, verify_password
from parcelwatch.accounts.roles import Role
from parcelwatch.accounts.sessions import end_sessions
from parcelwatch.domain import utcnow
from parcelwatch.errors import Conflict, InvalidInput, NotFound
from parcelwatch.models import User
from parcelwatch.shipments.trackers import adopt_untracked, check_owners, hand_over

__all__ = [
    "DEMO_ACCOUNT",
    "authenticate",
    "create_user",
    "delete_user",
    "ensure_demo_account",
    "get_user",
    "has_owner",
    "is_stand_in_owner",
    "list_users",
    "normalize_name",
    "set_password",
]

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._@+-]{0,63}")
NAME_RULE = (
    "1 to 64 letters, digits and . _ @ + - (an e-mail address works), starting with a letter "
    "or digit"
)


def normalize_name(name: str) -> str:
    """The stored form of an account name, or `InvalidInput` saying what is allowed."""
    normalized = unicodedata.normalize("NFKC", name).strip().lower()
    if not NAME_PATTERN.fullmatch(normalized):
        raise InvalidInput(f"name: {name!r} is not a valid account name: use {NAME_RULE}")
    return normalized


DEMO_ACCOUNT = "demo"


def is_stand_in_owner(user: User) -> bool:
    """The demo's account, made owner because it came first: it has no password, and gives
    the owner role up to the first real owner created (`users create --role owner`, or the
    setup page)."""
    return user.name == DEMO_ACCOUNT and user.password_hash is None and user.role is Role.OWNER


def has_owner(session: Session) -> bool:
    """Whether the instance has its real owner (the demo's stand-in does not count)."""
    owner = session.scalar(select(User).where(User.role == Role.OWNER))
    return owner is not None and not is_stand_in_owner(owner)


def get_user(session: Session, name: str, *, for_update: bool = False) -> User:
    query = select(User).where(User.name == normalize_name(name))
    if for_update:
        query = query.with_for_update()
    user = session.scalar(query)
    if user is None:
        raise NotFound(f"no account named {normalize_name(name)!r}: see `parcelwatch users list`")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)))


def create_user(session: Session, *, name: str, role: Role, password: str | None) -> User:
    """A new account. The first one must be the owner; `password` None makes an account that
    can only sign in through the reverse proxy."""
    normalized = normalize_name(name)
    if password is not None:
        check_policy(password, name=normalized)
    existing = session.scalar(select(func.count()).select_from(User)) or 0
    if existing == 0 and role is not Role.OWNER:
        raise InvalidInput(
            f"role: the first account must be the owner: "
            f"parcelwatch users create {normalized} --role owner"
        )
    stand_in = None
    if role is Role.OWNER and existing:
        owner = session.scalar(select(User).where(User.role == Role.OWNER))
        if owner is not None and is_stand_in_owner(owner):
            stand_in = owner
            owner.role = Role.MEMBER  # the demo steps aside for the real owner
        elif owner is not None:
            raise Conflict(f"role: {owner.name!r} is already the owner; there is one owner")
    if session.scalar(select(User.id).where(User.name == normalized)) is not None:
        raise Conflict(f"name: an account named {normalized!r} exists already")
    now = utcnow()
    user = User(
        name=normalized,
        role=role,
        password_hash=hash_password(password) if password is not None else None,
        password_changed_at=now if password is not None else None,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    session.flush()
    if role is Role.OWNER:
        if stand_in is not None:
            hand_over(session, giver=stand_in, taker=user)
        adopt_untracked(session, user)  # shipments from before any account was made
    return user


def set_password(
    session: Session, name: str, password: str, *, keep_session: int | None = None
) -> User:
    """A new password; every dashboard session of the account ends but `keep_session` (the
    browser that changed it)."""
    user = get_user(session, name, for_update=True)
    check_policy(password, name=user.name)
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    end_sessions(session, user_id=user.id, keep=keep_session)
    session.flush()
    return user


def ensure_demo_account(session: Session) -> None:
    """The demo's account, made the stand-in owner when the instance has no account yet."""
    if session.scalar(select(func.count()).select_from(User)):
        return
    create_user(session, name=DEMO_ACCOUNT, role=Role.OWNER, password=None)


def delete_user(session: Session, name: str) -> None:
    user = get_user(session, name, for_update=True)
    if user.role is Role.OWNER:
        raise Conflict(
            f"{user.name!r} is the owner and cannot be deleted (the owner holds the instance)"
        )
    session.delete(user)
    session.flush()
    check_owners(session, counted_for=user.id)  # their trackers went with them


def authenticate(session: Session, name: str, password: str) -> User | None:
    """The account when `password` is its password, else None; the same work and the same
    answer whether or not the name exists."""
    try:
        normalized = normalize_name(name)
    except InvalidInput:
        normalized = None
    user = None
    if normalized is not None:
        user = session.scalar(select(User).where(User.name == normalized))
    if not verify_password(password, user.password_hash if user else None) or user is None:
        return None
    user.last_login_at = utcnow()
    session.flush()
    return user
