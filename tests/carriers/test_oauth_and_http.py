"""The token cache and the shared HTTP rules (Retry-After, URLs, time policy)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from parcelwatch.carriers.errors import AuthError, BadResponseError
from parcelwatch.carriers.http import api_url, parse_retry_after, retry_after_from_text
from parcelwatch.carriers.oauth import Token, TokenCache, parse_token
from parcelwatch.carriers.parsing import combine_local, parse_offset, resolve_time
from tests.carriers.conftest import utc


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def counting_fetch(lifetime: float = 3600, delay: float = 0.0) -> tuple[list[int], object]:
    calls: list[int] = []

    async def fetch() -> Token:
        calls.append(1)
        await asyncio.sleep(delay)
        return Token(value=f"token-{len(calls)}", expires_in=lifetime)

    return calls, fetch


@pytest.mark.anyio
async def test_many_waiting_coroutines_share_one_token_fetch() -> None:
    calls, fetch = counting_fetch(delay=0.01)
    cache = TokenCache(fetch)  # type: ignore[arg-type]

    tokens = await asyncio.gather(*(cache.get() for _ in range(50)))

    assert len(calls) == 1
    assert {t.value for t in tokens} == {"token-1"}


@pytest.mark.anyio
async def test_waiters_share_a_failed_fetch_instead_of_retrying_it_each() -> None:
    calls: list[int] = []

    async def refused() -> Token:
        calls.append(1)
        await asyncio.sleep(0.01)
        raise AuthError("token request refused", provider="usps")

    cache = TokenCache(refused)

    outcomes = await asyncio.gather(*(cache.get() for _ in range(20)), return_exceptions=True)

    assert all(isinstance(o, AuthError) for o in outcomes)
    assert len(calls) == 1
    with pytest.raises(AuthError):
        await cache.get()  # a later request tries again
    assert len(calls) == 2


@pytest.mark.anyio
async def test_token_is_renewed_shortly_before_it_expires() -> None:
    clock = Clock()
    calls, fetch = counting_fetch(lifetime=3600)
    cache = TokenCache(fetch, clock=clock)  # type: ignore[arg-type]

    await cache.get()
    clock.now += 3600 - 61  # still more than the 60 s margin left
    assert (await cache.get()).value == "token-1"
    clock.now += 2  # inside the margin
    assert (await cache.get()).value == "token-2"
    assert len(calls) == 2


@pytest.mark.anyio
async def test_short_lived_tokens_are_renewed_a_tenth_early() -> None:
    clock = Clock()
    _calls, fetch = counting_fetch(lifetime=100)
    cache = TokenCache(fetch, clock=clock)  # type: ignore[arg-type]

    await cache.get()
    clock.now += 89
    assert (await cache.get()).value == "token-1"
    clock.now += 2
    assert (await cache.get()).value == "token-2"


@pytest.mark.anyio
async def test_invalidating_an_already_renewed_token_keeps_the_new_one() -> None:
    calls, fetch = counting_fetch()
    cache = TokenCache(fetch)  # type: ignore[arg-type]
    old = await cache.get()
    cache.invalidate(old)
    new = await cache.get()

    cache.invalidate(old)  # a late 401 for the old token

    assert (await cache.get()) == new
    assert len(calls) == 2


def test_ups_string_expires_in_is_a_lifetime_in_seconds() -> None:
    token = parse_token({"access_token": "a", "expires_in": "14399"}, "ups")

    assert token.expires_in == 14399


def test_token_response_without_access_token_is_a_bad_response() -> None:
    with pytest.raises(BadResponseError):
        parse_token({"token_type": "Bearer"}, "fedex")


@pytest.mark.parametrize(
    ("header", "expected"),
    [("120", 120.0), ("0", 0.0), ("1.5", 1.5), (None, None), ("", None), ("soon", None)],
)
def test_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_retry_after_http_date_counts_from_now() -> None:
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

    assert parse_retry_after("Sun, 22 Nov 2026 12:01:30 GMT", now=now) == 90
    assert parse_retry_after("Sun, 22 Nov 2026 11:00:00 GMT", now=now) == 0


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Daily transaction quota exceeded. Retry after 12:00AM GMT", timedelta(hours=20)),
        ("rate limited (HTTP 429): retry after 12:00 AM GMT", timedelta(hours=20)),
        ("Try again after 06:30 UTC", timedelta(hours=2, minutes=30)),
        ("Retry after 5PM GMT", timedelta(hours=13)),
        ("Retry after 3:00 GMT", timedelta(hours=23)),  # passed today: tomorrow's
        ("Too many requests, please try again later.", None),
        ("Retry after 13:00PM GMT", None),
        ("Retry after 12:00", None),  # no zone: not a moment we can trust
    ],
)
def test_a_quota_message_naming_a_time_of_day_is_read_as_the_wait_until_then(
    message: str, expected: timedelta | None
) -> None:
    now = datetime(2026, 12, 4, 4, 0, tzinfo=UTC)
    wait = retry_after_from_text(message, now=now)
    assert wait == (expected.total_seconds() if expected is not None else None)


@pytest.mark.parametrize(
    ("base", "path", "url"),
    [
        ("https://apis.usps.com", "/oauth2/v3/token", "https://apis.usps.com/oauth2/v3/token"),
        (
            "http://127.0.0.1:9000/usps",
            "/oauth2/v3/token",
            "http://127.0.0.1:9000/usps/oauth2/v3/token",
        ),
        (
            "http://127.0.0.1:9000/ups/",
            "/api/track/v1/details/1Z",
            "http://127.0.0.1:9000/ups/api/track/v1/details/1Z",
        ),
    ],
)
def test_base_url_replaces_only_scheme_host_and_prefix(base: str, path: str, url: str) -> None:
    assert api_url(base, path) == url


def test_local_time_with_gmt_fields_uses_the_gmt_time_and_offset() -> None:
    local = datetime(2024, 11, 22, 13, 58)

    assert resolve_time(local, gmt=datetime(2024, 11, 22, 18, 58, 40), offset_minutes=None) == (
        utc(2024, 11, 22, 18, 58, 40),
        -300,
    )


def test_local_time_with_only_an_offset_is_shifted_to_utc() -> None:
    when = resolve_time(combine_local("20220126", "163000"), offset_minutes=parse_offset("-05:00"))

    assert when == (utc(2022, 1, 26, 21, 30), -300)


def test_an_unparseable_time_is_never_replaced_by_now() -> None:
    assert resolve_time(combine_local("string", "163000")) is None
    assert combine_local("20221399", "000000") is None


def test_offsets_parse_in_carrier_forms() -> None:
    assert parse_offset("-05:00") == -300
    assert parse_offset("+0530") == 330
    assert parse_offset("-5") == -300
    assert parse_offset("later") is None
    assert timedelta(minutes=parse_offset("+01:00") or 0) == timedelta(hours=1)
