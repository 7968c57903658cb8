"""OAuth token expiry against the carrier emulator (USPS, UPS, FedEx): an expired token is
renewed and the call repeated once; a 401 that persists right after a renewal is an auth error
for that call, not refused credentials; only a refused token request is."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from parcelwatch.carriers.base import TrackOutcome
from parcelwatch.carriers.errors import AuthError
from parcelwatch.carriers.oauth import OAuthProvider
from parcelwatch.carriers.registry import ProviderRegistry
from parcelwatch.emulator import EmulatorConfig, create_emulator_app
from parcelwatch.emulator.app import emulator_state
from parcelwatch.sync.circuit import BreakerPolicy, CircuitBreaker, CircuitState
from tests.carriers.test_against_emulator import OAUTH, START, number, pins, settings_for

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def oauth_carrier(provider: str, **config: Any) -> AsyncIterator[tuple[OAuthProvider, Any]]:
    app = create_emulator_app(
        EmulatorConfig(**{"speed": 0, "start": START, "pins": pins("30d"), **config})
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
        registry = ProviderRegistry(settings_for("http://emulator"), client)
        carrier = registry.providers[provider]
        assert isinstance(carrier, OAuthProvider)
        yield carrier, emulator_state(app)


def tracking_requests(state: Any, provider: str) -> int:
    return int(state.stats.requests[provider] - state.stats.tokens_issued[provider])


@pytest.mark.parametrize("provider", OAUTH)
async def test_an_expired_token_is_renewed_and_the_call_repeated_once(provider: str) -> None:
    async with oauth_carrier(provider) as (carrier, state):
        await carrier.track([number(provider, "normal")], carrier=provider)
        state.tokens.expire(provider)
        [result] = await carrier.track([number(provider, "normal")], carrier=provider)

    assert result.outcome is TrackOutcome.FOUND
    assert carrier.tokens.fetches == 2
    assert tracking_requests(state, provider) == 3  # first call, the 401, the repeat


@pytest.mark.parametrize("provider", OAUTH)
async def test_a_token_expiring_again_right_after_renewal_is_not_refused_credentials(
    provider: str,
) -> None:
    """Every tracking request meets an expired token: one renewal, one repeat, then an auth
    error for that call that a breaker counts like an outage, not like a refused secret."""
    async with oauth_carrier(provider, faults={"token_expiry": 1.0}) as (carrier, state):
        with pytest.raises(AuthError) as caught:
            await carrier.track([number(provider, "normal")], carrier=provider)

    assert carrier.tokens.fetches == 2
    assert tracking_requests(state, provider) == 2
    error = caught.value
    assert not error.credentials_refused
    assert "expired" in str(error).lower()
    assert "scope" not in str(error)  # the USPS scope hint is for a fresh token refused
    breaker = CircuitBreaker(provider, BreakerPolicy(failure_threshold=3, auth_cooldown=900))
    breaker.record_failure(error)
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.parametrize("provider", OAUTH)
async def test_a_refused_token_request_is_refused_credentials(provider: str) -> None:
    async with oauth_carrier(provider, reject_credentials=True) as (carrier, state):
        with pytest.raises(AuthError) as caught:
            await carrier.track([number(provider, "normal")], carrier=provider)

    assert state.stats.requests[provider] == 1  # the token request only
    assert caught.value.credentials_refused
    breaker = CircuitBreaker(provider, BreakerPolicy(failure_threshold=3, auth_cooldown=900))
    breaker.record_failure(caught.value)
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_in() > 800
