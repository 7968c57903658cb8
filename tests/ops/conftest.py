"""Fixtures for the operations tests: shipments made through the service, sync runs as the
engine records them, a carrier emulator on a real port, and local alert receivers."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from parcelwatch.domain import utcnow
from parcelwatch.models import Shipment, SyncRun
from parcelwatch.ops.health_carriers import CARRIER_CACHE
from parcelwatch.shipments.service import register_shipment
from tests.conftest import Database
from tests.sync.conftest import Emulator, running_emulator


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _fresh_carrier_cache() -> Iterator[None]:
    CARRIER_CACHE.clear()
    yield
    CARRIER_CACHE.clear()


ShipmentFactory = Callable[..., Shipment]
RunFactory = Callable[..., SyncRun]


@pytest.fixture
def add_shipment(database: Database) -> ShipmentFactory:
    """Register a shipment through the service, then set any field directly."""
    counter = iter(range(1, 1_000_000))

    def add(carrier: str = "ups", **fields: object) -> Shipment:
        number = fields.pop("tracking_number", None) or f"1Z{carrier.upper()}{next(counter):010d}"
        with database.sessions.begin() as session:
            shipment, _ = register_shipment(session, tracking_number=str(number), carrier=carrier)
            for name, value in fields.items():
                setattr(shipment, name, value)
        return shipment

    return add


@pytest.fixture
def add_run(database: Database) -> RunFactory:
    """A finished sync run, `minutes_ago` minutes old, as the engine records it."""

    def add(minutes_ago: float = 5, outcome: str = "ok", **fields: Any) -> SyncRun:
        started = utcnow() - timedelta(minutes=minutes_ago)
        values: dict[str, Any] = {
            "trigger": "sync",
            "started_at": started,
            "finished_at": started + timedelta(seconds=3),
            "outcome": outcome,
            "checked": 10,
            "updated": 4,
            "unchanged": 6,
            "failed": 0,
            "errors": [],
        }
        with database.sessions.begin() as session:
            run = SyncRun(**(values | fields))
            session.add(run)
        return run

    return add


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """The carrier emulator on a real port, numbers two days into their storylines."""
    with running_emulator(head_start=timedelta(days=2)) as running:
        yield running


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 recording every POST; it answers `status`, or 500 to
    paths under `/fail`."""

    url: str
    requests: list[Received] = field(default_factory=list)
    status: int = 200

    def at(self, path: str) -> list[Received]:
        return [request for request in self.requests if request.path == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            state.requests.append(Received(self.path, dict(self.headers.items()), body))
            self.send_response(500 if self.path.startswith("/fail") else state.status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class Mailbox:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that requires login as alerts/s3cret-smtp."""

    port: int
    messages: list[Any] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    logins_over_tls: list[bool] = field(default_factory=list)  # one per login


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve_mailbox(**controller_options: Any) -> Iterator[Mailbox]:
    """Run the SMTP server for one test; `controller_options` go to aiosmtpd's Controller
    (e.g. `tls_context=…, require_starttls=True, auth_require_tls=True`)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    box = Mailbox(port=free_port())

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            box.messages.append(envelope)
            return "250 Message accepted for delivery"

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        ok = isinstance(data, LoginPassword) and data.password == b"s3cret-smtp"
        if ok:
            box.logins.append(data.login.decode())
            box.logins_over_tls.append(session.ssl is not None)
        return AuthResult(success=ok, handled=False)

    options = {"auth_require_tls": False, **controller_options}
    controller = Controller(
        Handler(), hostname="127.0.0.1", port=box.port, authenticator=authenticator, **options
    )
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with serve_mailbox() as box:
        yield box
