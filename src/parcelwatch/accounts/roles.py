"""The roles an account can have (stored as their string value)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Role", "Scope"]


class Role(StrEnum):
    OWNER = "owner"  # the first account: everything
    ADMIN = "admin"  # users, operations, every tracker
    MEMBER = "member"  # their own trackers


class Scope(StrEnum):
    """What an API token may do."""

    READ = "read"  # GET only
    WRITE = "write"  # and register, edit, delete, refresh
    ADMIN = "admin"  # and operations (pause, resume, users); owners and admins only

    def covers(self, other: Scope) -> bool:
        """Whether this scope allows everything `other` does (read < write < admin)."""
        order = list(Scope)
        return order.index(self) >= order.index(other)
