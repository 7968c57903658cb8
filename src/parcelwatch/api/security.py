"""Security headers on every answer, built with the `secure` package.

The dashboard runs no inline script and no inline style, so its Content-Security-Policy
allows only the server's own files: a script injected into a page (a description that slipped
past escaping, say) does not run, and `frame-ancestors 'none'` keeps the pages out of other
sites' frames (clickjacking). Swagger UI at `/docs` starts from an inline script and styles
itself inline, so its two pages get the same policy with inline allowed; they show no user
data. No `Strict-Transport-Security`: parcelwatch is often served over plain HTTP on a home
network, and the TLS-terminating proxy is the place to set it.
"""

from __future__ import annotations

from typing import Final

from secure import (
    ContentSecurityPolicy,
    CrossOriginOpenerPolicy,
    PermissionsPolicy,
    ReferrerPolicy,
    Secure,
    XContentTypeOptions,
    XFrameOptions,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parcelwatch.api.docs import DOCS_URL, OAUTH2_REDIRECT_URL

__all__ = ["SecurityHeaders", "content_security_policy", "security_headers"]

INLINE_PAGES = frozenset({DOCS_URL, OAUTH2_REDIRECT_URL})


def content_security_policy(*, inline: bool) -> str:
    return _policy(inline=inline).header_value


def _policy(*, inline: bool) -> ContentSecurityPolicy:
    own = ("'self'", "'unsafe-inline'") if inline else ("'self'",)
    return (
        ContentSecurityPolicy()
        .default_src("'self'")
        .script_src(*own)
        .style_src(*own)
        .img_src("'self'", "data:")
        .connect_src("'self'")
        .object_src("'none'")
        .base_uri("'self'")
        .form_action("'self'")
        .frame_ancestors("'none'")
    )


def security_headers(*, inline: bool, referrer: ReferrerPolicy | None = None) -> Secure:
    return Secure(
        csp=_policy(inline=inline),
        coop=CrossOriginOpenerPolicy().same_origin(),
        permissions=PermissionsPolicy().geolocation().microphone().camera(),
        referrer=referrer or ReferrerPolicy().strict_origin_when_cross_origin(),
        xcto=XContentTypeOptions().nosniff(),
        xfo=XFrameOptions().deny(),
    )


class SecurityHeaders:
    """Adds the headers to every HTTP answer; the Swagger UI pages get the inline policy, and
    share pages (`/t/<token>`) send no Referer at all, so the token never leaves in one.

    As `secure`'s own ASGI middleware does, a header the answer already has is replaced, and
    Content-Security-Policy (which may be sent more than once: each one applies) is added
    beside any the answer has. Unlike it, the headers are built once, here, not from the
    policy objects on every answer (130 Python calls an answer, bench/api_load.py)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.strict = _encoded(security_headers(inline=False))
        self.docs = _encoded(security_headers(inline=True))
        self.shared = _encoded(
            security_headers(inline=False, referrer=ReferrerPolicy().no_referrer())
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        if path in INLINE_PAGES:
            ours = self.docs
        elif path.startswith("/t/"):
            ours = self.shared
        else:
            ours = self.strict

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *(
                        (name, value)
                        for name, value in message.get("headers", ())
                        if name.lower() not in _REPLACED
                    ),
                    *ours,
                ]
            await send(message)

        await self.app(scope, receive, with_headers)


def _encoded(headers: Secure) -> tuple[tuple[bytes, bytes], ...]:
    return tuple(
        (name.encode("ascii"), value.encode("latin-1")) for name, value in headers.headers.items()
    )


# Every header `security_headers` sets, lower-cased, but the one an answer may carry several times.
_REPLACED: Final = frozenset(
    name.lower() for name, _ in _encoded(security_headers(inline=False))
) - {b"content-security-policy"}
