"""OAuth2 client-credentials tokens for USPS, UPS and FedEx: one cache per carrier.

A token is fetched once and reused until shortly before its `expires_in` (UPS sends that
as a string); however many coroutines need a token at once, one fetch is in flight. A 401
on a tracking call drops the token that was refused, fetches a new one once and repeats
the call; a second 401 becomes the caller's `TokenRejectedError` (an auth error for that
call). Only a refused token request is refused credentials (`AuthError`).
"""

from __future__ import annotations

import asyncio
import time
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx

from parcelwatch.carriers.base import Provider
from parcelwatch.carriers.errors import AuthError, BadResponseError
from parcelwatch.carriers.http import (
    api_url,
    decode_json,
    error_detail,
    raise_for_carrier_wide,
    send,
)
from parcelwatch.carriers.parsing import as_dict, text

__all__ = ["OAuthProvider", "Token", "TokenCache", "parse_token"]

DEFAULT_LIFETIME = 600.0  # seconds, when a token response has no usable `expires_in`
MAX_EARLY_REFRESH = 60.0  # refresh at most this many seconds before expiry


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    expires_in: float
    scope: str | None = None


class TokenCache:
    """Holds one carrier's bearer token; `fetch` gets a new one from the carrier.

    Coroutines that waited on a fetch that failed get that fetch's error instead of each
    trying again, so a refused secret costs one token request, not one per waiter."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[Token]],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._lock = asyncio.Lock()
        self._token: Token | None = None
        self._refresh_at = 0.0
        self.fetches = 0  # finished attempts, successful or not
        self._failure: tuple[int, BaseException] | None = None  # (attempt, its error)

    @property
    def token(self) -> Token | None:
        return self._token

    def _fresh(self) -> Token | None:
        if self._token is not None and self._clock() < self._refresh_at:
            return self._token
        return None

    async def get(self) -> Token:
        """A valid token, fetching one when there is none or it is about to expire."""
        token = self._fresh()
        if token is not None:
            return token
        attempts_before = self.fetches
        async with self._lock:
            token = self._fresh()  # another coroutine may have fetched it meanwhile
            if token is not None:
                return token
            if self._failure is not None and self._failure[0] > attempts_before:
                raise self._failure[1]  # the fetch we waited for failed: share its error
            try:
                token = await self._fetch()
            except Exception as error:
                self.fetches += 1
                self._failure = (self.fetches, error)
                raise
            self.fetches += 1
            self._failure = None
            margin = min(MAX_EARLY_REFRESH, token.expires_in * 0.1)
            self._token = token
            self._refresh_at = self._clock() + max(0.0, token.expires_in - margin)
            return token

    def invalidate(self, refused: Token) -> None:
        """Forget `refused` (only if it is still the cached one: a concurrent 401 for the
        same token must not throw away a token another coroutine already renewed)."""
        if self._token is not None and self._token.value == refused.value:
            self._token = None


def parse_token(payload: object, carrier: str) -> Token:
    """A token endpoint's JSON → `Token`; `expires_in` may be a number or a string."""
    body = as_dict(payload)
    value = text(body.get("access_token"))
    if value is None:
        raise BadResponseError("token response has no access_token", provider=carrier)
    raw_lifetime = body.get("expires_in")
    try:
        lifetime = float(raw_lifetime) if raw_lifetime is not None else DEFAULT_LIFETIME
    except (TypeError, ValueError):
        lifetime = DEFAULT_LIFETIME
    if lifetime <= 0:
        lifetime = DEFAULT_LIFETIME
    return Token(value=value, expires_in=lifetime, scope=text(body.get("scope")))


class OAuthProvider(Provider):
    """A carrier whose API takes an OAuth2 bearer token (USPS, UPS, FedEx)."""

    token_path: ClassVar[str]
    credential_names: ClassVar[str]  # for messages: "USPS_CLIENT_ID / USPS_CLIENT_SECRET"

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        base_url: str,
        client_id: str,
        client_secret: str,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(client=client, timeout=timeout)
        self.base_url = base_url
        self._client_id = client_id
        self._client_secret = client_secret
        self.tokens = TokenCache(self._fetch_token)

    def url(self, path: str) -> str:
        return api_url(self.base_url, path)

    @abstractmethod
    def token_request(self, client_id: str, client_secret: str) -> dict[str, Any]:
        """The keyword arguments (data, auth, headers) of this carrier's token POST."""

    async def _fetch_token(self) -> Token:
        request = self.token_request(self._client_id, self._client_secret)
        response = await send(
            self.client,
            self.code,
            "POST",
            self.url(self.token_path),
            time_limit=self.timeout,
            **request,
        )
        if response.status_code == 200:
            return parse_token(decode_json(response, self.code), self.code)
        detail = error_detail(response)
        raise_for_carrier_wide(response, self.code, detail)
        if response.status_code in (400, 401, 403):
            raise AuthError(
                f"token request refused (HTTP {response.status_code}"
                f"{': ' + detail if detail else ''}); check {self.credential_names}",
                provider=self.code,
                status_code=response.status_code,
            )
        raise BadResponseError(
            f"token request answered HTTP {response.status_code}",
            provider=self.code,
            status_code=response.status_code,
        )

    def request_headers(self) -> Mapping[str, str]:
        """Extra headers for one API call (UPS makes a new `transId` for each)."""
        return {}

    async def authorized(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Call the API with a bearer token; on a 401 renew the token once and repeat."""
        token = await self.tokens.get()
        response = await self._call(method, path, token, **kwargs)
        if response.status_code == 401:
            self.tokens.invalidate(token)
            token = await self.tokens.get()
            response = await self._call(method, path, token, **kwargs)
        return response

    async def _call(self, method: str, path: str, token: Token, **kwargs: Any) -> httpx.Response:
        headers = {
            "Authorization": f"Bearer {token.value}",
            "Accept": "application/json",
            **self.request_headers(),
        }
        return await send(
            self.client,
            self.code,
            method,
            self.url(path),
            time_limit=self.timeout,
            headers=headers,
            **kwargs,
        )

    async def check(self) -> None:
        """A token fetch proves the credentials (a cached token counts)."""
        await self.tokens.get()
