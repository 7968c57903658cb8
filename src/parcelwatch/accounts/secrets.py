"""The random secrets that stand for a sign-in (API tokens, session cookies, share links):
made here, and kept in the database only as their SHA-256 (256 random bits need no slow hash,
and a lookup stays one indexed read)."""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["digest", "new_secret"]


def new_secret(prefix: str = "") -> str:
    """`prefix` followed by 43 URL-safe characters: 256 random bits."""
    return prefix + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
