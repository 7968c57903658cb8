"""Carrier failures, one tree. Only the sync engine's retry policy decides what is retried.

    CarrierError
    ├── CarrierWideError            the carrier as a whole failed; never counted against a shipment
    │   ├── AuthError               credentials refused: the token endpoint (or an API key) said no
    │   │   └── TokenRejectedError  a tracking call refused a bearer token right after its renewal
    │   ├── RateLimitedError        429; `retry_after` seconds when the carrier said
    │   ├── UnavailableError        5xx, timeout, connection refused or reset
    │   └── FailurePatternError     most answers of a pass failed the same way (malformed...)
    ├── BadResponseError            a body we cannot understand (malformed JSON, wrong shape)
    ├── BatchRefusedError           a request for several numbers refused for one of them
    └── NumberError                 about one tracking number only
        └── InvalidNumberError      the carrier rejects the number's format

A `BatchRefusedError` is never retried as it is: the sync engine tracks the batch's numbers
one by one, each within the budget, so the bad number fails alone.

Only refused credentials suspend a carrier at once (`AuthError.credentials_refused`): an
OAuth token refused by a tracking call even after one renewal (expired again at once, or
issued without a scope) is an auth error for that call, counted like an outage.

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
    "FailurePatternError",
    "InvalidNumberError",
    "NumberError",
    "RateLimitedError",
    "TokenRejectedError",
    "UnavailableError",
]


class CarrierError(Exception):
    """Base of every carrier failure; `provider` is the code of the provider API that failed
    (`shipengine` for a Canada Post parcel tracked through ShipEngine)."""

    retryable: bool = False

    def __init__(self, message: str, *, provider: str = "", status_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status_code = status_code

    def __str__(self) -> str:
        prefix = f"{self.provider}: " if self.provider else ""
        return f"{prefix}{self.message}"


class CarrierWideError(CarrierError):
    """The carrier itself failed; shipments are deferred, not failed."""


class AuthError(CarrierWideError):
    """The carrier refused to authenticate us."""

    credentials_refused: bool = True  # the secret itself was refused: it will not heal soon


class TokenRejectedError(AuthError):
    """A tracking call answered 401 to a bearer token even after one renewal: an auth error
    for that call (the token expired again, was revoked, or lacks a scope), not proof that
    the client id and secret are wrong; the token endpoint accepted them moments ago."""

    credentials_refused = False


class RateLimitedError(CarrierWideError):
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status_code: int | None = 429,
        retry_after: float | None = None,
    ):
        super().__init__(message, provider=provider, status_code=status_code)
        self.retry_after = retry_after


class UnavailableError(CarrierWideError):
    retryable = True


class FailurePatternError(CarrierWideError):
    """Most of a provider's answers in a pass failed the same way (malformed bodies, say):
    found by the sync engine, not raised by a provider. The carrier is failing, not its
    shipments; they are deferred as in an outage."""


class BadResponseError(CarrierError):
    retryable = True


class BatchRefusedError(CarrierError):
    """The carrier refused a multi-number request because of its content (FedEx answers one
    empty number with a 400 for the whole request): no number was answered."""


class NumberError(CarrierError):
    """A failure that concerns one tracking number and counts against that shipment."""


class InvalidNumberError(NumberError):
    pass
