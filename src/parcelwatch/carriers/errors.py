"""Carrier failures, one tree. Only the sync engine's retry policy decides what is retried.

    CarrierError
    ├── CarrierWideError            the carrier as a whole failed; never counted against a shipment
    │   ├── AuthError               credentials refused (after one token refresh), missing scope
    │   ├── RateLimitedError        429; `retry_after` seconds when the carrier said
    │   └── UnavailableError        5xx, timeout, connection refused or reset
    ├── BadResponseError            a body we cannot understand (malformed JSON, wrong shape)
    ├── BatchRefusedError           a request for several numbers refused for one of them
    └── NumberError                 about one tracking number only
        └── InvalidNumberError      the carrier rejects the number's format

A `BatchRefusedError` is never retried as it is: the sync engine tracks the batch's numbers
one by one, each within the budget, so the bad number fails alone.

A number the carrier does not know is not an error: it is a `TrackResult` with outcome
`NOT_FOUND`.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "BadResponseError",
    "BatchRefusedError",
    "CarrierError",
    "CarrierWideError",
    "InvalidNumberError",
    "NumberError",
    "RateLimitedError",
    "UnavailableError",
]


class CarrierError(Exception):
    """Base of every carrier failure; `carrier` is the provider code that failed."""

    retryable: bool = False

    def __init__(self, message: str, *, carrier: str = "", status_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.carrier = carrier
        self.status_code = status_code

    def __str__(self) -> str:
        prefix = f"{self.carrier}: " if self.carrier else ""
        return f"{prefix}{self.message}"


class CarrierWideError(CarrierError):
    """The carrier itself failed; shipments are deferred, not failed."""


class AuthError(CarrierWideError):
    pass


class RateLimitedError(CarrierWideError):
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        carrier: str = "",
        status_code: int | None = 429,
        retry_after: float | None = None,
    ):
        super().__init__(message, carrier=carrier, status_code=status_code)
        self.retry_after = retry_after


class UnavailableError(CarrierWideError):
    retryable = True


class BadResponseError(CarrierError):
    retryable = True


class BatchRefusedError(CarrierError):
    """The carrier refused a multi-number request because of its content (FedEx answers one
    empty number with a 400 for the whole request): no number was answered."""


class NumberError(CarrierError):
    """A failure that concerns one tracking number and counts against that shipment."""


class InvalidNumberError(NumberError):
    pass
