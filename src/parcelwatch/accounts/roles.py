"""The roles an account can have (stored as their string value)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Role"]


class Role(StrEnum):
    OWNER = "owner"  # the first account: everything
    ADMIN = "admin"  # users, operations, every tracker
    MEMBER = "member"  # their own trackers
