"""Calling a carrier for one batch: budget, retries, breaker, batch timeout, the number-by-
number fallback, and turning `TrackResult`s into per-shipment results for the writer.

A provider out of budget (`OutOfBudget`: its quota spent, or a 429 asking to wait past what
the retries wait) defers the batch to the moment it may be called again. Times come from the
provider budget's clock (the engine's), so a simulated week schedules in simulated time."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from parcelwatch.carriers.base import Provider, TrackOutcome, TrackResult
from parcelwatch.carriers.errors import (
    CarrierError,
    CarrierWideError,
    FailurePatternError,
    NumberError,
    RateLimitedError,
    UnavailableError,
)
from parcelwatch.logs import get_logger
from parcelwatch.ops.metrics import CARRIER_API_RETRIES
from parcelwatch.sync.circuit import CircuitBreaker, CircuitState
from parcelwatch.sync.claims import ClaimedShipment
from parcelwatch.sync.limits import Budget, OutOfBudget
from parcelwatch.sync.patterns import HeldFailures
from parcelwatch.sync.retry import ProviderRetryPolicy, call_with_retries
from parcelwatch.sync.writer import ShipmentResult, ShipmentResultKind

__all__ = ["Abandoned", "CallStats", "CarrierGroup", "call_batch", "judge_held", "pattern_of"]

log = get_logger(__name__)

MIN_DEFER = timedelta(minutes=1)
SAME_IN_BATCH = 3  # numbers of a split batch failing alike, none answered: stop splitting
MayStart = Callable[[], bool]


class Abandoned(Exception):  # noqa: N818 - a signal, not an error
    """The engine is stopping (or paused before the batch began): drop the batch unwritten."""


class Suspended(Exception):  # noqa: N818 - a signal, not an error
    """The breaker opened while this request waited for its budget slot: defer, do not call."""


@dataclass(slots=True)
class CallStats:
    api_calls: int = 0
    retries: int = 0
    carrier_successes: set[str] = field(default_factory=set)
    carrier_failures: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class CarrierGroup:
    """The shipments of one parcel carrier and the provider that tracks them."""

    carrier: str
    provider: Provider
    budget: Budget
    breaker: CircuitBreaker
    batch_size: int
    queued: int = 0
    exhausted: bool = False
    cursor: int = 0
    held: HeldFailures = field(default_factory=HeldFailures)  # one per provider and pass


async def _request(
    group: CarrierGroup,
    numbers: Sequence[str],
    *,
    seconds: float,
    stats: CallStats,
    may_start: MayStart | None,
) -> list[TrackResult]:
    async with group.budget.slot():
        if may_start is not None and not may_start():
            raise Abandoned
        if group.breaker.state is CircuitState.OPEN:  # opened by another batch meanwhile
            raise Suspended
        stats.api_calls += 1
        try:
            async with asyncio.timeout(seconds):
                return await group.provider.track(numbers, carrier=group.carrier)
        except TimeoutError:
            raise UnavailableError(
                f"no answer within {seconds:g}s", provider=group.provider.code
            ) from None
        except RateLimitedError as error:
            stop = await group.budget.rate_limited(error)
            if stop is not None:  # not before a moment the retries would not wait for
                raise stop from error
            raise


async def _track(
    group: CarrierGroup,
    numbers: Sequence[str],
    *,
    retry: ProviderRetryPolicy,
    request_timeout: float,
    stats: CallStats,
    may_start: MayStart,
    first_only: bool,
) -> list[TrackResult]:
    """`may_start` is asked before the first request (`first_only`) or before every one."""
    provider = group.provider.code
    first = True

    async def attempt() -> list[TrackResult]:
        nonlocal first
        check = may_start if first or not first_only else None
        first = False
        return await _request(group, numbers, seconds=request_timeout, stats=stats, may_start=check)

    def on_retry(error: BaseException) -> None:
        stats.retries += 1
        CARRIER_API_RETRIES.labels(provider=provider).inc()
        log.debug("carrier call retried", carrier=provider, error=str(error))

    return await call_with_retries(
        attempt,
        policy=retry,
        on_retry=on_retry,
    )


def _deferred(
    batch: Sequence[ClaimedShipment],
    group: CarrierGroup,
    message: str,
    now: datetime,
    until: datetime | None = None,
) -> list[ShipmentResult]:
    """Deferred to `until` when given (the provider's budget: waiting, not failing), else
    until the breaker lets calls through."""
    waiting = until is not None
    until = until or now + max(MIN_DEFER, timedelta(seconds=group.breaker.retry_in()))
    kind, provider = ShipmentResultKind.DEFERRED, group.provider.code
    return [
        ShipmentResult(s, kind, provider, message=message, defer_until=until, waiting=waiting)
        for s in batch
    ]


def pattern_of(error: BaseException | None) -> str | None:
    """The kind of a failure that may be carrier-wide when most answers share it; `None` for
    a number's own failure (the carrier refused that number) and a carrier-wide error."""
    if error is None:
        return "no answer"
    if isinstance(error, NumberError | CarrierWideError):
        return None
    if isinstance(error, CarrierError):
        return type(error).__name__
    return "carrier module error"


def _own_failure(
    shipment: ClaimedShipment, provider: str, message: str, error: BaseException | None
) -> ShipmentResult:
    return ShipmentResult(
        shipment, ShipmentResultKind.FAILED, provider, message=message, pattern=pattern_of(error)
    )


def _to_result(
    shipment: ClaimedShipment, answer: TrackResult | None, group: CarrierGroup, now: datetime
) -> ShipmentResult:
    provider = group.provider.code
    if answer is None:
        return _own_failure(shipment, provider, "the carrier gave no answer", None)
    if answer.outcome is TrackOutcome.FOUND and answer.info is not None:
        return ShipmentResult(shipment, ShipmentResultKind.FOUND, provider, info=answer.info)
    if answer.outcome is TrackOutcome.NOT_FOUND:
        return ShipmentResult(
            shipment, ShipmentResultKind.NOT_FOUND, provider, message=answer.message
        )
    error = answer.error
    if isinstance(error, CarrierWideError):
        return _deferred([shipment], group, str(error), now)[0]
    message = answer.message or str(error) or "error"
    return _own_failure(shipment, provider, message, error or CarrierError(message))


def _results_for_answers(
    batch: Sequence[ClaimedShipment], answers: Sequence[TrackResult], group: CarrierGroup
) -> list[ShipmentResult]:
    now = group.budget.now()
    by_number = {answer.tracking_number: answer for answer in answers}
    if len(by_number) < len(answers) or any(s.tracking_number not in by_number for s in batch):
        # Carriers answer in order; fall back to position when numbers were reformatted.
        if len(answers) == len(batch):
            return [_to_result(s, a, group, now) for s, a in zip(batch, answers, strict=True)]
    return [_to_result(s, by_number.get(s.tracking_number), group, now) for s in batch]


async def call_batch(
    group: CarrierGroup,
    batch: Sequence[ClaimedShipment],
    *,
    retry: ProviderRetryPolicy,
    batch_timeout: float,
    request_timeout: float,
    stats: CallStats,
    may_start: MayStart,
    may_continue: MayStart,
) -> list[ShipmentResult]:
    """Track one batch and return one result per shipment. Never raises a carrier error:
    carrier-wide failures and an open breaker defer the shipments; a batch that fails
    otherwise is retried number by number, and a single number's failure is its own."""
    provider = group.provider.code
    stopped = group.budget.stopped()
    if stopped is not None:  # its budget is spent, or it asked to wait
        return _out_of_budget(group, batch, stopped, stats)
    if not group.breaker.allow():
        message = f"{provider} suspended after repeated failures: {group.breaker.last_error}"
        return _deferred(batch, group, message, group.budget.now())
    numbers = [s.tracking_number for s in batch]
    deadline = asyncio.get_running_loop().time() + batch_timeout
    try:
        async with asyncio.timeout(batch_timeout):
            answers = await _track(
                group,
                numbers,
                retry=retry,
                request_timeout=request_timeout,
                stats=stats,
                may_start=may_start,
                first_only=True,
            )
            group.breaker.record_success()
            stats.carrier_successes.add(provider)
            return _results_for_answers(batch, answers, group)
    except TimeoutError:
        error: CarrierWideError = UnavailableError(
            f"batch not done within {batch_timeout:g}s", provider=provider
        )
        return _carrier_down(group, batch, error, stats)
    except CarrierWideError as wide:
        return _carrier_down(group, batch, wide, stats)
    except Suspended:
        message = f"{provider} suspended after repeated failures: {group.breaker.last_error}"
        return _deferred(batch, group, message, group.budget.now())
    except OutOfBudget as out:  # neither the breaker's failure nor a shipment's
        return _out_of_budget(group, batch, out, stats)
    except CarrierError as failure:
        # Not a success for the breaker: a carrier answering only garbage is failing too
        # (`judge_held` tells it apart from a few bad numbers).
        return await _one_by_one(
            group, batch, failure, retry, request_timeout, stats, may_continue, deadline
        )
    except Abandoned:
        raise
    except Exception as bug:  # a carrier module bug must not stop the pass
        log.exception("carrier module raised", carrier=provider)
        message = f"{provider}: unexpected {type(bug).__name__}: {bug}"
        return [_own_failure(s, provider, message, bug) for s in batch]
    finally:
        group.breaker.release_probe()


def _out_of_budget(
    group: CarrierGroup, batch: Sequence[ClaimedShipment], out: OutOfBudget, stats: CallStats
) -> list[ShipmentResult]:
    """Deferred to when the provider may be called again. Its counted quota spent: the
    shipments wait, which is no failure of the pass. The carrier asked (429): deferred as in
    an outage, the provider down for the pass, the breaker held open till then."""
    now = group.budget.now()
    if isinstance(out.__cause__, RateLimitedError):
        group.breaker.hold((out.until - now).total_seconds(), str(out))
    if not out.carrier_asked:
        return _deferred(batch, group, str(out), now, until=out.until)
    stats.carrier_failures[group.provider.code] = str(out)
    deferred = _deferred(batch, group, str(out), now, until=out.until)
    return [replace(result, waiting=False) for result in deferred]


def _carrier_down(
    group: CarrierGroup, batch: Sequence[ClaimedShipment], error: CarrierWideError, stats: CallStats
) -> list[ShipmentResult]:
    group.breaker.record_failure(error)
    stats.carrier_failures[group.provider.code] = str(error)
    log.warning(
        "carrier call failed, shipments deferred", carrier=group.provider.code, error=str(error)
    )
    return _deferred(batch, group, str(error), group.budget.now())


async def _one_by_one(
    group: CarrierGroup,
    batch: Sequence[ClaimedShipment],
    failure: CarrierError,
    retry: ProviderRetryPolicy,
    request_timeout: float,
    stats: CallStats,
    may_continue: MayStart,
    deadline: float,
) -> list[ShipmentResult]:
    """Each number on its own, until the batch's time is up (the rest is deferred), or until
    `SAME_IN_BATCH` numbers failed the same way and none was answered: a carrier-wide pattern
    (the rest is deferred; `judge_held` decides about those that failed)."""
    provider = group.provider.code
    if len(batch) == 1:
        if isinstance(failure, CarrierWideError):  # pragma: no cover - deferred by the caller
            deferred = ShipmentResultKind.DEFERRED
            return [ShipmentResult(batch[0], deferred, provider, message=str(failure))]
        return [_own_failure(batch[0], provider, str(failure), failure)]
    results: list[ShipmentResult] = []
    kinds: Counter[str] = Counter()
    for index, shipment in enumerate(batch):
        same = kinds.most_common(1)
        if same and same[0][1] >= SAME_IN_BATCH and sum(kinds.values()) == index:
            message = (
                f"{provider}: the batch's first {index} numbers failed the same way "
                f"({same[0][0]}); the rest deferred"
            )
            results.extend(_deferred(batch[index:], group, message, group.budget.now()))
            break
        if group.breaker.state is not CircuitState.CLOSED:
            message = f"{provider} suspended: {group.breaker.last_error}"
            results.extend(_deferred(batch[index:], group, message, group.budget.now()))
            break
        if asyncio.get_running_loop().time() >= deadline:
            message = f"{provider}: batch time used up retrying number by number"
            results.extend(_deferred(batch[index:], group, message, group.budget.now()))
            break
        try:
            answers = await _track(
                group,
                [shipment.tracking_number],
                retry=retry,
                request_timeout=request_timeout,
                stats=stats,
                may_start=may_continue,
                first_only=False,
            )
            answered = _results_for_answers([shipment], answers, group)
        except CarrierWideError as wide:
            answered = _carrier_down(group, [shipment], wide, stats)
        except Suspended:
            message = f"{provider} suspended: {group.breaker.last_error}"
            results.extend(_deferred(batch[index:], group, message, group.budget.now()))
            break
        except OutOfBudget as out:
            results.extend(_out_of_budget(group, batch[index:], out, stats))
            break
        except CarrierError as own:
            answered = [_own_failure(shipment, provider, str(own), own)]
        results.extend(answered)
        kinds.update(r.pattern for r in answered if r.pattern is not None)
    return results


def judge_held(
    group: CarrierGroup, results: Sequence[ShipmentResult], stats: CallStats
) -> list[ShipmentResult]:
    """A held batch's results once its provider's pattern can be judged: failures of a kind
    most recent answers share become a carrier-wide failure (deferred, counted by the breaker
    once per batch); the others stay the shipments' own."""
    pattern = group.held.pattern
    wide = [r for r in results if r.pattern is not None and pattern.carrier_wide(r.pattern)]
    if not wide:
        return list(results)
    kind = wide[0].pattern or ""
    error = FailurePatternError(
        f"carrier-wide failure: {pattern.describe(kind)}; last: {wide[0].message}",
        provider=group.provider.code,
    )
    deferred = _carrier_down(group, [r.shipment for r in wide], error, stats)
    instead = {id(r): d for r, d in zip(wide, deferred, strict=True)}
    return [instead.get(id(r), r) for r in results]
