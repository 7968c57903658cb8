"""Password hashing (Argon2id through `pwdlib`) and the policy a new password must meet.

The policy follows NIST SP 800-63B: a minimum length, no composition rules, and a check against
passwords known to be common (zxcvbn's list of the 30,000 most used ones, shipped with the
`zxcvbn` package, so no network is needed). A password never appears in a message, a log line
or an exception."""

from __future__ import annotations

import unicodedata
from functools import cache

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from parcelwatch.errors import InvalidInput

__all__ = ["MAX_LENGTH", "MIN_LENGTH", "check_policy", "hash_password", "verify_password"]

MIN_LENGTH = 12
MAX_LENGTH = 256

_HASHER = PasswordHash((Argon2Hasher(),))
# Verifying against this when there is no such account costs as long as a real check, so the
# answer's timing does not tell whether a name exists.
_DUMMY_HASH = _HASHER.hash("parcelwatch: no such account")


@cache
def _common() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # type: ignore[import-untyped]

    return frozenset(FREQUENCY_LISTS["passwords"])


def _normalized(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def check_policy(password: str, *, name: str) -> None:
    """Raise `InvalidInput` saying what is wrong (never echoing the password)."""
    password = _normalized(password)
    if len(password) < MIN_LENGTH:
        raise InvalidInput(
            f"password: too short ({len(password)} characters); use at least {MIN_LENGTH}, "
            "for example four or five unrelated words"
        )
    if len(password) > MAX_LENGTH:
        raise InvalidInput(f"password: longer than {MAX_LENGTH} characters")
    if any(unicodedata.category(c) == "Cc" for c in password):
        raise InvalidInput("password: control characters are not allowed")
    folded = password.casefold()
    if folded in _common() or len(set(folded)) <= 2:
        raise InvalidInput("password: this is one of the most common passwords; choose another")
    if name and name.casefold() in folded:
        raise InvalidInput("password: must not contain the account name")


def hash_password(password: str) -> str:
    return _HASHER.hash(_normalized(password))


def verify_password(password: str, password_hash: str | None) -> bool:
    """Whether `password` matches; with no hash (no account, or a proxy-only account) it
    still takes as long as a real check, and answers False."""
    if password_hash is None:
        _HASHER.verify(_normalized(password), _DUMMY_HASH)
        return False
    try:
        return bool(_HASHER.verify(_normalized(password), password_hash))
    except Exception:  # a malformed stored hash is a failed check, never an error page
        return False
