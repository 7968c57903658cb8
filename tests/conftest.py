"""Shared fixtures: a migrated database on SQLite (always) and PostgreSQL (when
PARCELWATCH_TEST_POSTGRES_URL is set), settings pointing at it, and the API app."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import structlog
from click.testing import Result
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, make_url, text
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from parcelwatch import logs
from parcelwatch.accounts.roles import Role, Scope
from parcelwatch.accounts.service import create_user, get_user
from parcelwatch.accounts.sessions import start_session
from parcelwatch.accounts.tokens import create_token
from parcelwatch.api.auth import CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE
from parcelwatch.cli.main import app
from parcelwatch.config import Settings, load_settings
from parcelwatch.db import Base, create_db_engine, make_session_factory, session_scope
from parcelwatch.emulator.server import run_in_thread
from parcelwatch.errors import NotFound
from parcelwatch.logs import flush_logs
from parcelwatch.migrate import upgrade

POSTGRES_URL = os.environ.get("PARCELWATCH_TEST_POSTGRES_URL")

# Never let a developer's .env or shell leak carrier credentials into tests.
CARRIER_VARIABLES = [
    name
    for name in os.environ
    if name.startswith(("USPS_", "UPS_", "FEDEX_", "DHL_", "SHIPENGINE_", "ALERT_", "AUTO_UPDATE"))
]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in CARRIER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("PUBLIC_URL", raising=False)
    # The test client sends `Host: testserver`; served tests use 127.0.0.1 (a default).
    monkeypatch.setenv("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1,::1")
    monkeypatch.chdir(tmp_path)  # so no .env file of the developer's is read


@dataclass
class Database:
    url: str
    engine: Engine
    sessions: sessionmaker[Session]

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file, copied for every test (migrating each time is slower)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = create_db_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@contextmanager
def scratch_postgres(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on the test server, dropped afterwards; its URL."""
    if not POSTGRES_URL:
        pytest.skip("PARCELWATCH_TEST_POSTGRES_URL is not set")
    server = make_url(POSTGRES_URL).set(drivername="postgresql+psycopg")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_db_engine(
        server.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated, dropped at the end."""
    with scratch_postgres("parcelwatch_test") as url:
        engine = create_db_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty database on each engine."""
    if request.param == "sqlite":
        path = tmp_path / "parcelwatch.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = create_db_engine(url)
    yield Database(url=url, engine=engine, sessions=make_session_factory(engine))
    if engine.dialect.name == "postgresql":
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        with engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database with no tables at all (the shared fixtures are migrated to head)."""
    if request.param == "sqlite":
        engine = create_db_engine(f"sqlite:///{tmp_path / 'old.db'}")
        yield engine
        engine.dispose()
        return
    with scratch_postgres("parcelwatch_old") as url:
        engine = create_db_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


@pytest.fixture
def settings(database: Database) -> Settings:
    """Settings on the test database with the updater and the notification dispatcher off
    (tests drive the engine; delivery tests start their own dispatcher)."""
    return load_settings(
        database_url=database.url.replace("postgresql+psycopg://", "postgresql://"),
        auto_update_enabled=False,
        notify_enabled=False,
        _env_file=None,
    )


def account_token(
    settings: Settings,
    *,
    name: str = "owner",
    role: Role = Role.OWNER,
    scope: Scope = Scope.ADMIN,
) -> dict[str, str]:
    """`Authorization` for a new personal token of account `name` (created with `role`, and
    no password, when it does not exist yet), made through the account services."""
    engine = create_db_engine(settings.sqlalchemy_url)
    try:
        with session_scope(make_session_factory(engine), write=True) as session:
            try:
                get_user(session, name)
            except NotFound:
                create_user(session, name=name, role=role, password=None)
            issued = create_token(session, user_name=name, scope=scope)
    finally:
        engine.dispose()
    return {"Authorization": f"Bearer {issued.secret}"}


@dataclass(frozen=True)
class BrowserSession:
    cookie: str  # the session cookie's value
    csrf_token: str


def browser_session(
    settings: Settings, *, name: str = "owner", role: Role = Role.OWNER
) -> BrowserSession:
    """A dashboard session of account `name` (created with `role`, and no password, when it
    does not exist yet), started through the session service as a sign-in would."""
    engine = create_db_engine(settings.sqlalchemy_url)
    try:
        with session_scope(make_session_factory(engine), write=True) as session:
            try:
                user = get_user(session, name)
            except NotFound:
                user = create_user(session, name=name, role=role, password=None)
            started = start_session(session, user, idle=settings.session_idle_timeout)
    finally:
        engine.dispose()
    return BrowserSession(cookie=started.secret, csrf_token=started.row.csrf_token)


class Browser(TestClient):
    """A test client signed in to the dashboard with a session cookie; `submit` sends a form
    as the dashboard's own page does (its CSRF token, a same-origin Origin)."""

    def __init__(self, app: FastAPI, signed_in: BrowserSession | None, **kwargs: object) -> None:
        super().__init__(app, **kwargs)  # type: ignore[arg-type]
        self.signed_in = signed_in
        if signed_in is not None:
            self.cookies.set(SESSION_COOKIE, signed_in.cookie)

    @property
    def csrf(self) -> dict[str, str]:
        """The header a signed-in page's scripts send with a change."""
        assert self.signed_in is not None
        return {CSRF_HEADER: self.signed_in.csrf_token}

    def submit(
        self,
        url: str,
        data: dict[str, str] | None = None,
        *,
        headers: dict[str, str] | None = None,
        **kwargs: object,
    ) -> httpx.Response:
        form = dict(data or {})
        if self.signed_in is not None:
            form.setdefault(CSRF_FIELD, self.signed_in.csrf_token)
        sent = {"Origin": str(self.base_url).rstrip("/"), **(headers or {})}
        return self.post(url, data=form, headers=sent, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def owner_auth(settings: Settings) -> dict[str, str]:
    """The owner's admin-scoped token, as headers."""
    return account_token(settings)


@pytest.fixture
def api(settings: Settings, owner_auth: dict[str, str]) -> Iterator[TestClient]:
    """The real app on the test database, served in-process, signed in as the owner (with an
    admin-scoped token)."""
    from parcelwatch.api.app import create_app

    with TestClient(create_app(settings), headers=owner_auth) as client:
        yield client


@pytest.fixture
def browser(settings: Settings) -> Iterator[Browser]:
    """The real app in a browser signed in to the dashboard as the owner."""
    from parcelwatch.api.app import create_app

    with Browser(create_app(settings), browser_session(settings)) as client:
        yield client


@pytest.fixture
def anonymous(settings: Settings) -> Iterator[TestClient]:
    """The real app, with no credentials."""
    from parcelwatch.api.app import create_app

    with TestClient(create_app(settings)) as client:
        yield client


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """The app under uvicorn on a free local port with its lifespan; yields its base URL."""
    with run_in_thread(app=app, lifespan="on", startup_timeout=20) as url:
        yield url


@pytest.fixture
def restored_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """For a test that configures logging: no registered secret leaks in from an earlier
    test, and the root logger, structlog and its context are as found afterwards."""
    monkeypatch.setattr(logs, "_secrets", ())
    yield
    flush_logs()
    logging.getLogger().handlers[:] = []
    logs.configure_safe_defaults()
    structlog.contextvars.clear_contextvars()


Invoke = Callable[..., Result]


@pytest.fixture
def run(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """`parcelwatch ARGS...` in this process, on the test database (`input` is its stdin)."""
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(app, list(args), input=input)

    return invoke


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ServeProcess:
    """A `parcelwatch serve` child: its URL; after it stopped, its output and exit status."""

    url: str
    output: str = ""
    returncode: int | None = None


@contextmanager
def serve_process(
    env: Mapping[str, str], *args: str, cwd: Path | None = None
) -> Iterator[ServeProcess]:
    """`python -m parcelwatch serve ARGS` on a free port, handed over once `/healthz` answers;
    stopped with SIGTERM on the way out."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "parcelwatch", "serve", *args, "--port", str(port)],
        env=os.environ | dict(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    served = ServeProcess(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{served.url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, "serve exited"
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.2)
        yield served
    finally:
        process.send_signal(signal.SIGTERM)
        served.output, _ = process.communicate(timeout=30)
        served.returncode = process.returncode
