"""The only place that decides what is retried: `retryable` carrier errors (rate limited,
unavailable, bad response), 3 retries, exponential back-off with full jitter (tenacity),
honouring a carrier's `Retry-After` when it is not too long to wait."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from parcelwatch.carriers.errors import CarrierError, RateLimitedError

__all__ = ["ProviderRetryPolicy", "call_with_retries", "is_retryable"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ProviderRetryPolicy:
    """How a provider call is retried (see the module docstring)."""

    retries: int = 3
    base: float = 0.5  # seconds; the first back-off is drawn from [0, base]
    cap: float = 10.0  # seconds; the longest back-off
    max_retry_after: float = 30.0  # a longer Retry-After is not waited for: the batch defers


def is_retryable(error: BaseException, *, max_retry_after: float) -> bool:
    """Retry what the error tree marks `retryable`, unless the carrier asked us to wait
    longer than `max_retry_after`."""
    if isinstance(error, RateLimitedError) and error.retry_after is not None:
        return error.retry_after <= max_retry_after
    return isinstance(error, CarrierError) and error.retryable


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    policy: ProviderRetryPolicy,
    on_retry: Callable[[BaseException], None] | None = None,
) -> T:
    """Await `call()` until it succeeds, raises a non-retryable error, or retries run out
    (the last error is raised)."""
    jitter = wait_random_exponential(multiplier=policy.base, max=policy.cap)

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RateLimitedError) and error.retry_after is not None:
            return min(error.retry_after, policy.max_retry_after)
        return float(jitter(state))

    def retryable(error: BaseException) -> bool:
        return is_retryable(error, max_retry_after=policy.max_retry_after)

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if on_retry is not None and error is not None:
            on_retry(error)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.retries + 1),
        wait=wait,
        retry=retry_if_exception(retryable),
        before_sleep=before_sleep,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover
