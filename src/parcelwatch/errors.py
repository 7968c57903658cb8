"""Errors that service functions raise; the API turns them into JSON, the CLI into a message."""

from __future__ import annotations

__all__ = [
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "ServiceError",
    "TooManyRequests",
]


class ServiceError(Exception):
    """A request that cannot be carried out, with a message a person can act on."""

    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(ServiceError):
    status_code = 404


class Forbidden(ServiceError):
    """Allowed to the person's role or scope only in part (an admin's option of a route)."""

    status_code = 403


class InvalidInput(ServiceError):
    status_code = 422


class Conflict(ServiceError):
    status_code = 409


class TooManyRequests(ServiceError):
    status_code = 429

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
