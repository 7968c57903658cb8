"""Builds the FastAPI app: database, routers, error handlers, body limit, and what runs beside
the server (the lifespan below lists all of it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import SingletonThreadPool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parcelwatch import __version__
from parcelwatch.api.auth import Authenticator, document_credentials
from parcelwatch.api.deps import transaction_gate_for
from parcelwatch.api.docs import install_api_docs
from parcelwatch.api.guards import AllowedHosts, CrossSiteWrites, cors_origins, public_origins
from parcelwatch.api.methods import AnswerOptions, document_options
from parcelwatch.api.problems import document_unavailable
from parcelwatch.api.proxies import install_proxies
from parcelwatch.api.security import SecurityHeaders
from parcelwatch.carriers.router import router as carriers_router
from parcelwatch.config import Settings, get_settings
from parcelwatch.db import create_db_engine, for_reading, make_session_factory
from parcelwatch.errors import ServiceError, TooManyRequests
from parcelwatch.logs import get_logger
from parcelwatch.notifications.dispatcher import dispatch_lifespan
from parcelwatch.notifications.router import router as notifications_router
from parcelwatch.ops.alerts.server import alerts_lifespan
from parcelwatch.ops.router import install_ops
from parcelwatch.shipments.router import router as shipments_router
from parcelwatch.sync.router import router as sync_router
from parcelwatch.sync.updater import sync_lifespan
from parcelwatch.web.router import install_dashboard
from parcelwatch.web.signin import announce_setup
from parcelwatch.webhooks.router import jwks_lifespan
from parcelwatch.webhooks.router import router as webhooks_router

__all__ = ["MAX_BODY_BYTES", "create_app"]

MAX_BODY_BYTES = 1_000_000
DATABASE_RETRY_AFTER_S = 2

log = get_logger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    database = create_db_engine(settings.sqlalchemy_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """What runs beside the server, started in this order and stopped in reverse."""
        async with AsyncExitStack() as stack:
            # The sync engines and, when AUTO_UPDATE_ENABLED, the background updater.
            await stack.enter_async_context(sync_lifespan(app))
            # The notification dispatcher, when NOTIFY_ENABLED.
            await stack.enter_async_context(dispatch_lifespan(app))
            # The health check and alerts on a timer, when ALERTS_IN_SERVER.
            await stack.enter_async_context(alerts_lifespan(app))
            # ShipEngine's webhook signing keys, fetched and refreshed on demand.
            await stack.enter_async_context(jwks_lifespan(app))
            # No owner yet: the log says how to create one, with the setup code.
            await run_in_threadpool(announce_setup, app)
            yield
        database.dispose()
        if loop_database is not None:
            loop_database.dispose()

    app = FastAPI(
        title="parcelwatch",
        version=__version__,
        summary="Self-hosted shipment tracking that keeps itself current.",
        lifespan=lifespan,
        docs_url=None,  # /docs comes from parcelwatch.api.docs, with no CDN; no /redoc
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.sessions = make_session_factory(database)
    app.state.read_sessions = make_session_factory(for_reading(database))
    # SQLite: short reads run on the event loop over a connection of its own (`short_read`).
    loop_database = (
        create_db_engine(settings.sqlalchemy_url, poolclass=SingletonThreadPool)
        if database.dialect.name == "sqlite"
        else None
    )
    app.state.loop_reads = make_session_factory(loop_database) if loop_database else None
    app.state.transaction_gate = transaction_gate_for()
    app.state.authenticator = Authenticator(
        settings=settings, sessions=app.state.read_sessions, database=database
    )
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(AnswerOptions, routes=lambda: app.router.routes)
    if settings.cors_origins:  # else closed: browsers keep other sites' pages out
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],  # tokens only: no cookies
            max_age=600,
        )
    # Added later, run earlier: a wrong Host is refused before anything else looks at it...
    app.add_middleware(
        CrossSiteWrites,
        prefix="/api/",
        origins=public_origins(settings),
        cors=cors_origins(settings),
    )
    app.add_middleware(AllowedHosts, hosts=settings.trusted_hosts)
    # ... and every answer, refusals included, carries the security headers.
    app.add_middleware(SecurityHeaders)  # CSP, nosniff, no framing, Referrer-Policy
    # ... after X-Forwarded-* of TRUSTED_PROXIES are applied (the connecting address is kept).
    install_proxies(app, settings)
    app.add_exception_handler(ServiceError, _service_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(OperationalError, _database_unavailable)  # type: ignore[arg-type]
    app.add_exception_handler(PoolTimeout, _database_unavailable)  # type: ignore[arg-type]
    app.include_router(shipments_router, prefix="/api")
    app.include_router(sync_router, prefix="/api")
    app.include_router(carriers_router, prefix="/api")
    app.include_router(webhooks_router, prefix="/api")
    app.include_router(notifications_router, prefix="/api")
    install_ops(app)  # /metrics, /healthz, /readyz, /api/health and the HTTP metrics
    install_dashboard(app)  # pages at /, assets at /static
    install_api_docs(app)  # /docs, its assets at /docs/assets (no CDN)
    document_options(app)  # OPTIONS on every path: 204 with Allow
    document_credentials(app)  # 401 and 403 wherever a scope is needed
    document_unavailable(app)  # 503 everywhere: the database may be unreachable
    return app


async def _invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
    """422 with one readable `detail` naming each field and what is wrong with it, and the
    problems as a list for programs; the input itself is never echoed back (a 501-item bulk
    body would otherwise come back whole)."""
    problems = [
        {"loc": [str(part) for part in item["loc"]], "msg": str(item["msg"])}
        for item in error.errors()
    ]
    described = [
        f"{'.'.join(p['loc'][1:] if p['loc'][:1] == ['body'] else p['loc']) or 'body'}: {p['msg']}"
        for p in problems[:MAX_DESCRIBED_PROBLEMS]
    ]
    more = len(problems) - len(described)
    detail = "Invalid request: " + "; ".join(described) + (f"; and {more} more" if more else "")
    return JSONResponse({"detail": detail, "errors": problems}, status_code=422)


async def _database_unavailable(
    _request: Request, error: OperationalError | PoolTimeout
) -> JSONResponse:
    """503 for a database that did not answer, refused the connection, dropped it, or gave
    up on a lock or a deadlock: all passing, so the client is told to try again. The
    database's own message stays out of the answer and the log (it may name hosts or
    values); the log gets its kind."""
    cause = error.orig if isinstance(error, OperationalError) else error
    log.warning("database_unavailable", error=type(cause).__name__)
    return JSONResponse(
        {"detail": "The database is not answering: try again in a few seconds."},
        status_code=503,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )


async def _service_error(_request: Request, error: ServiceError) -> JSONResponse:
    headers = (
        {"Retry-After": str(error.retry_after)} if isinstance(error, TooManyRequests) else None
    )
    return JSONResponse({"detail": error.detail}, status_code=error.status_code, headers=headers)


MAX_DESCRIBED_PROBLEMS = 5


class BodySizeLimit:
    """Answers 413 to a body over `max_bytes`, declared or streamed, before a route sees it."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, receive, send)
            return
        if declared is None and scope.get("method") in ("POST", "PUT", "PATCH"):
            await self._buffered(scope, receive, send)
            return
        await self.app(scope, receive, send)  # the server holds a body to its Content-Length

    async def _buffered(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A streamed (chunked) body: read it up to the limit here, then hand it on whole.
        Raising from inside the app's `receive` would not do: FastAPI turns any error while
        reading a body into a 400."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await self._reject(scope, receive, send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        whole: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()  # a disconnect, when the client goes away
            delivered = True
            return whole

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"Request body too large: the limit is {self.max_bytes} bytes."},
            status_code=413,
        )
        await response(scope, receive, send)
