"""Structured logs: JSON lines on standard error, context carried, credentials never shown."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from parcelwatch.logs import configure_logging, get_logger


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    yield
    logging.getLogger().handlers[:] = []
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


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
