"""The random secrets that stand for a sign-in (API tokens, session cookies, share links):
made here, and kept in the database only as their SHA-256 (256 random bits need no slow hash,
and a lookup stays one indexed read)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["digest", "new_secret", "same_secret"]


def new_secret(prefix: str = "") -> str:
    """`prefix` followed by 43 URL-safe characters: 256 random bits."""
    return prefix + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def same_secret(expected: str | None, sent: str | None) -> bool:
    """Whether `sent` is `expected`, compared in constant time; never when either is empty."""
    if not expected or not sent:
        return False
    return hmac.compare_digest(expected.encode(), sent.encode())
