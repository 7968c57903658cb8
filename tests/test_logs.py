"""Structured logs: JSON lines on standard error, context carried, credentials never shown."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import threading

import pytest
import structlog

from parcelwatch.config import load_settings
from parcelwatch.logs import (
    REDACTED,
    configure_logging,
    flush_logs,
    get_logger,
    register_secrets,
    register_settings_secrets,
)

pytestmark = pytest.mark.usefixtures("restored_logging")


def _lines(captured: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in captured.strip().splitlines()]


def test_json_lines_carry_the_bound_shipment_and_carrier(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info", "json")
    with structlog.contextvars.bound_contextvars(shipment_id=7, carrier="ups", run_id=3):
        get_logger("test").info("shipment updated", status="in_transit")
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = _lines(captured.err)
    assert line["event"] == "shipment updated"
    assert (line["shipment_id"], line["carrier"], line["run_id"]) == (7, "ups", 3)
    assert line["level"] == "info"


def test_credentials_are_redacted_by_key_and_inside_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info", "json")
    get_logger("test").warning(
        "token call failed",
        client_secret="s3cr3t-value",
        detail="sent Authorization: Bearer abc.def.ghi and client_secret=hunter22",
    )
    err = capsys.readouterr().err
    for secret in ("s3cr3t-value", "abc.def.ghi", "hunter22"):
        assert secret not in err
    assert "[redacted]" in err


def test_standard_library_loggers_use_the_same_format(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    logging.getLogger("uvicorn.error").info("Application startup complete.")
    (line,) = _lines(capsys.readouterr().err)
    assert line["event"] == "Application startup complete."


def _raise_with(header_value: str) -> None:
    headers = {"authorization": f"Bearer {header_value}"}  # a local no traceback may show
    raise RuntimeError(f"the carrier refused {len(headers)} header(s)")


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_tracebacks_show_no_local_variables(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", fmt)
    try:
        _raise_with("-".join(["planted", "header", "token", "0123"]))  # not in the source
    except RuntimeError:
        get_logger("test").exception("request failed")
    err = capsys.readouterr().err
    assert "the carrier refused 1 header(s)" in err  # the traceback is there...
    assert "_raise_with" in err
    assert "planted-header-token-0123" not in err  # ...without the frame's locals


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_registered_secrets_are_redacted_everywhere_in_a_line(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    register_secrets(["Adm1n-planted-key", "smtp-planted-pw"])
    configure_logging("info", fmt)
    get_logger("test").info("connecting", target="user:smtp-planted-pw@mail.local")
    logging.getLogger("uvicorn.error").warning("bad token Adm1n-planted-key given")
    try:
        raise ValueError("key was Adm1n-planted-key")
    except ValueError:
        get_logger("test").exception("failed")
    err = capsys.readouterr().err
    assert "Adm1n-planted-key" not in err
    assert "smtp-planted-pw" not in err
    assert err.count(REDACTED) >= 3


def test_settings_secrets_and_url_passwords_are_registered(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = load_settings(
        admin_api_key="planted-admin-key-42",
        database_url="postgresql://app:planted-db-pw@127.0.0.1:5432/test",
        redis_url="redis://:planted-redis-pw@127.0.0.1:6379/0",
        _env_file=None,
    )
    register_settings_secrets(settings)
    configure_logging("info", "json")
    get_logger("test").info(
        "dump", a="planted-admin-key-42", b="planted-db-pw", c="planted-redis-pw"
    )
    err = capsys.readouterr().err
    for secret in ("planted-admin-key-42", "planted-db-pw", "planted-redis-pw"):
        assert secret not in err


class _StuckStream(io.StringIO):
    """A terminal that does not take output until released."""

    def __init__(self) -> None:
        super().__init__()
        self.released = threading.Event()

    def write(self, text: str) -> int:
        self.released.wait(timeout=10)
        return super().write(text)


def test_background_logging_never_waits_for_the_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = _StuckStream()
    monkeypatch.setattr(sys, "stderr", stream)
    configure_logging("info", "json", background=True)
    returned = threading.Event()

    def log_many() -> None:
        for number in range(20):
            get_logger("test").info("line", number=number)
        returned.set()

    threading.Thread(target=log_many, daemon=True).start()
    assert returned.wait(timeout=5), "a log call waited for the terminal"
    stream.released.set()
    flush_logs()
    numbers = [json.loads(line)["number"] for line in stream.getvalue().splitlines()]
    assert numbers == list(range(20))


def test_before_logging_is_configured_tracebacks_still_show_no_local_variables() -> None:
    """A bare `uvicorn --factory parcelwatch.api.app:create_app` never calls
    `configure_logging`: what is logged then still carries no frame's locals and no
    registered secret."""
    script = (
        "from parcelwatch.logs import get_logger, register_secrets\n"
        "register_secrets(['registered-secret-4711'])\n"
        "def fail(header):\n"
        "    raise RuntimeError('the carrier refused a header')\n"
        "try:\n"
        "    fail('-'.join(['planted', 'local', 'secret']))\n"
        "except RuntimeError:\n"
        "    get_logger('x').exception('request failed', token='registered-secret-4711')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    output = done.stdout + done.stderr
    assert "the carrier refused a header" in output
    assert "planted-local-secret" not in output
    assert "registered-secret-4711" not in output


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_a_notification_channels_secrets_are_redacted_once_it_was_used(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The dispatcher registers each channel's secrets before its first send: the webhook
    signing secrets, and the token-like parts of a URL (an Apprise token, a password)."""
    from parcelwatch.notifications.senders import ChannelTarget, channel_secrets

    webhook = ChannelTarget(
        id=1,
        user_id=1,
        kind="webhook",
        name="hook",
        target="https://hooks.example/in/planted0hook0token?sig=planted1query1token",
        secret="whsec_cGxhbnRlZC13ZWJob29rLXNlY3JldA==",
        previous_secret="whsec_cGxhbnRlZC1wcmV2aW91cy1zZWNyZXQ=",
    )
    apprise = ChannelTarget(
        id=2,
        user_id=1,
        kind="apprise",
        name="phone",
        target="tgram://123456789:AAHplanted-telegram-token/987654",
    )
    register_secrets(channel_secrets(webhook) + channel_secrets(apprise))
    configure_logging("info", fmt)
    get_logger("test").warning(
        "sending",
        detail=f"{webhook.target} {webhook.secret} {webhook.previous_secret} {apprise.target}",
    )
    err = capsys.readouterr().err
    for secret in (
        "planted0hook0token",
        "planted1query1token",
        "cGxhbnRlZC13ZWJob29rLXNlY3JldA",
        "cGxhbnRlZC1wcmV2aW91cy1zZWNyZXQ",
        "AAHplanted-telegram-token",
    ):
        assert secret not in err
    assert "hooks.example" in err  # the host is not a secret
