"""Structured logging with structlog: JSON or console lines on standard error, secrets redacted.

Bind `shipment_id`, `carrier` and `run_id` with `structlog.contextvars.bound_contextvars`
so every line about a shipment carries them.

What no line may carry: a traceback is plain text (the frames and source lines, never local
variables, so never a request's headers), and the whole rendered line, traceback included,
passes `redact`: credentials by key name and by pattern, and every value `register_secrets`
was given (the configured keys, tokens and passwords, wherever they appear). With
`background=True` (the server) a log call only queues the record; a thread renders and
writes it, so a slow terminal or a long traceback never holds up the event loop.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import re
import sys
import threading
from collections.abc import Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

import structlog
from pydantic import SecretStr

__all__ = [
    "configure_logging",
    "configure_safe_defaults",
    "flush_logs",
    "get_logger",
    "redact",
    "register_secrets",
    "register_settings_secrets",
]

_SECRET_KEY = re.compile(r"(secret|passw|token|api_key|apikey|authorization|credential)", re.I)
_SECRET_IN_TEXT = re.compile(
    r"(?i)(bearer\s+|basic\s+|(?:client_secret|api[-_]?key|password|access_token)[=:]\s*)"
    r"[A-Za-z0-9._~+/=-]{4,}"
)
REDACTED = "[redacted]"


_secrets_lock = threading.Lock()
_secrets: tuple[str, ...] = ()  # longest first, so a secret holding another goes whole
MIN_SECRET_LENGTH = 4  # shorter values would redact ordinary words


def register_secrets(values: Iterable[str | None]) -> None:
    """Redact these exact values wherever they appear in a log line from now on."""
    global _secrets
    with _secrets_lock:
        known = set(_secrets) | {v for v in values if v and len(v) >= MIN_SECRET_LENGTH}
        _secrets = tuple(sorted(known, key=len, reverse=True))


def register_settings_secrets(settings: object) -> None:
    """Every secret the settings hold: each `SecretStr` field, and the password of each URL
    field (`DATABASE_URL`, `REDIS_URL`)."""
    values: list[str | None] = []
    for name in type(settings).model_fields:  # type: ignore[attr-defined]  # a BaseSettings
        value = getattr(settings, name, None)
        if isinstance(value, SecretStr):
            values.append(value.get_secret_value())
        elif isinstance(value, str) and name.endswith("_url") and "@" in value:
            try:
                values.append(urlsplit(value).password)
            except ValueError:
                continue
    register_secrets(values)


def redact(text: str) -> str:
    """Remove credentials that may have slipped into a message (URLs, headers, bodies)."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _SECRET_IN_TEXT.sub(lambda m: m.group(1) + REDACTED, text)


def _redact_processor(
    _logger: object, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        if _SECRET_KEY.search(key) and value is not None:
            event_dict[key] = REDACTED
        elif isinstance(value, str):
            event_dict[key] = redact(value)
    return event_dict


class _RedactingFormatter(structlog.stdlib.ProcessorFormatter):
    """The last word on a line: whatever the renderer produced, traceback included."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _StandardError(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is when a line is written, not the stream it was when
    logging was configured (a command run by a test runner, or under a redirected stderr,
    would otherwise write to a closed stream)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


class _QueueHandler(logging.handlers.QueueHandler):
    """Queues the record as it is: the listener's handler renders it (the stock `prepare`
    would render here, in the caller's thread)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


_listener: logging.handlers.QueueListener | None = None


def flush_logs() -> None:
    """Write out every queued line (at exit, and before a test reads the output)."""
    global _listener
    if _listener is not None:
        _listener.stop()  # drains the queue, then joins the thread
        _listener = None


atexit.register(flush_logs)


def configure_logging(
    level: str = "info", fmt: str = "console", *, background: bool = False
) -> None:
    """Send structlog and the standard library's loggers to standard error; with
    `background`, rendered and written on a thread of their own."""
    global _listener
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_processor,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = _StandardError()
    handler.setFormatter(
        _RedactingFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info if fmt == "json" else _identity,
                renderer,
            ],
        )
    )
    flush_logs()
    root = logging.getLogger()
    if background:
        lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        _listener = logging.handlers.QueueListener(lines, handler, respect_handler_level=False)
        _listener.start()
        root.handlers[:] = [_QueueHandler(lines)]
    else:
        root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn may have set its own handlers and levels (an embedded server did); follow ours.
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).setLevel(logging.NOTSET)
        logging.getLogger(name).propagate = True
    # httpx logs every request URL at INFO; keep it at DEBUG detail only.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))


def _identity(
    _logger: object, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    return event_dict


def configure_safe_defaults() -> None:
    """How parcelwatch logs until `configure_logging` runs (a bare `uvicorn --factory
    parcelwatch.api.app:create_app`, a test, a library caller): structlog's own defaults, but
    with the redaction and plain tracebacks. structlog's default renderer draws rich tracebacks
    with every frame's local variables, and those hold secrets (headers, settings)."""
    structlog.reset_defaults()
    *processors, _renderer = structlog.get_config()["processors"]
    structlog.configure(
        processors=[
            *processors,
            _redact_processor,
            structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback),
        ]
    )


configure_safe_defaults()


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
