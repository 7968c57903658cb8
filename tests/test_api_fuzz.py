"""Schemathesis over every operation of the OpenAPI document, with no credentials, a wrong token,
the admin key, and the owner's and a member's personal tokens, on SQLite and PostgreSQL: no
server error, no response outside the documented statuses and schemas. Every log line the run
writes, in both log formats, is scanned for the secrets the settings and the tokens hold.

`make fuzz` runs the same with many more examples (`PARCELWATCH_FUZZ_EXAMPLES`).
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, seed
from hypothesis import settings as hypothesis_settings
from schemathesis import checks

from parcelwatch.accounts.roles import Role, Scope
from parcelwatch.api.app import create_app
from parcelwatch.config import Settings, load_settings
from parcelwatch.logs import configure_logging, flush_logs, register_settings_secrets
from tests.conftest import Database, account_token

pytestmark = pytest.mark.usefixtures("restored_logging")

EXAMPLES = int(os.environ.get("PARCELWATCH_FUZZ_EXAMPLES", "25"))


def no_undocumented_server_error(ctx: Any, response: Any, case: Any) -> None:
    """A 5xx is a failure unless the operation documents it: `/api/health` answers 503 when
    critical, refresh 503 before the sync engine runs. A 500 is never documented."""
    documented = case.operation.definition.raw.get("responses", {})
    if response.status_code >= 500 and str(response.status_code) not in documented:
        raise AssertionError(
            f"{case.operation.label} answered {response.status_code}: {response.text[:300]}"
        )


CHECKS = [
    no_undocumented_server_error,
    checks.status_code_conformance,
    checks.response_schema_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
]
CLOSED = "http://127.0.0.1:9"  # nothing listens: a carrier call fails at once, off the network

SECRETS = {
    "admin_api_key": "planted-admin-key-7c1f",
    "usps_client_secret": "planted-usps-secret-2b",
    "ups_client_secret": "planted-ups-secret-9d",
    "fedex_secret_key": "planted-fedex-secret-4e",
    "dhl_api_key": "planted-dhl-key-61",
    "shipengine_api_key": "planted-shipengine-key-08",
    "shipengine_webhook_secret": "planted-webhook-secret-3a",
    "alert_smtp_pass": "planted-smtp-pass-5f",
    "alert_webhook_secret": "planted-alert-secret-77",
}
DB_PASSWORD = "planted-db-password-1e"


def _planted_settings(database: Database) -> Settings:
    url = database.url.replace("postgresql+psycopg://", "postgresql://")
    if url.startswith("postgresql://") and "@" in url:  # trust auth takes any password
        user, rest = url.removeprefix("postgresql://").split("@", 1)
        url = f"postgresql://{user.split(':')[0]}:{DB_PASSWORD}@{rest}"
    return load_settings(
        database_url=url,
        auto_update_enabled=False,
        # No dispatcher: a channel the fuzzer makes must never be called. Private targets
        # allowed, so a generated host name is never looked up in DNS when a channel is saved.
        notify_enabled=False,
        notify_allow_private_networks=True,
        usps_client_id="planted-usps-id",
        ups_client_id="planted-ups-id",
        fedex_api_key="planted-fedex-id",
        alert_smtp_host="127.0.0.1",
        alert_smtp_port=9,
        alert_email_recipients="ops@example.test",
        alert_webhook_url=f"{CLOSED}/hook",
        shipengine_jwks_url=f"{CLOSED}/jwks",
        **{f"{code}_base_url": CLOSED for code in ("usps", "ups", "fedex", "dhl", "shipengine")},
        **SECRETS,
        _env_file=None,
    )


@pytest.mark.parametrize("log_format", ["console", "json"])
@pytest.mark.timeout(600)
def test_every_operation_answers_as_documented_and_logs_no_secret(
    database: Database, log_format: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _planted_settings(database)
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    register_settings_secrets(settings)
    configure_logging("debug", log_format)
    owner = account_token(settings)["Authorization"].removeprefix("Bearer ")
    member = account_token(settings, name="sam", role=Role.MEMBER, scope=Scope.WRITE)
    personal = {"owner_token": owner, "member_token": member["Authorization"][7:]}
    app = create_app(settings)
    failures: list[str] = []
    with TestClient(app):  # the lifespan: sync engines, so refresh is really attempted
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        for result in schema.get_all_operations():
            operation = result.ok()
            for token in (None, SECRETS["admin_api_key"], "wrong-token", *personal.values()):
                headers = {"Authorization": f"Bearer {token}"} if token else {}

                call = _fuzzer(operation, headers)
                try:
                    call()
                except BaseException as failure:  # schemathesis raises an ExceptionGroup
                    if isinstance(failure, KeyboardInterrupt):
                        raise
                    failures.append(_describe(operation.label, token, failure))
    flush_logs()
    written = stream.getvalue()
    assert not failures, "\n\n".join(failures)
    assert written, "the run wrote no log line: the scan below would prove nothing"
    planted = {**SECRETS, **personal, "db": DB_PASSWORD}
    leaked = [name for name, value in planted.items() if value in written]
    assert not leaked, f"secrets in the logs: {leaked}"


def _fuzzer(operation: Any, headers: dict[str, str]) -> Callable[[], None]:
    """Hypothesis over one operation's generated requests, sent with `headers`."""

    @seed(1)
    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(operation.as_strategy())
    def call(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    return call  # type: ignore[no-any-return]


def _describe(label: str, token: str | None, failure: BaseException) -> str:
    who = "admin" if token == SECRETS["admin_api_key"] else ("wrong token" if token else "anon")
    parts = getattr(failure, "exceptions", None) or [failure]
    lines = [" ".join(str(part).split())[:500] for part in parts]
    return f"{label} ({who}):\n  " + "\n  ".join(lines)
