"""Run the emulator on a real port: in a background thread (tests, benchmarks) or in front."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import uvicorn
from starlette.applications import Starlette

from parcelwatch.emulator.app import create_emulator_app
from parcelwatch.emulator.config import EmulatorConfig
from parcelwatch.emulator.guard import EmulatedConnectionReset

__all__ = ["quiet_emulated_resets", "run_in_thread"]


class _DropEmulatedResets(logging.Filter):
    """uvicorn logs an app exception as an error; an injected reset is not one."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, EmulatedConnectionReset)


def quiet_emulated_resets() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DropEmulatedResets) for f in logger.filters):
        logger.addFilter(_DropEmulatedResets())


@contextmanager
def run_in_thread(
    config: EmulatorConfig | None = None,
    *,
    app: Starlette | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout: float = 10.0,
    lifespan: Literal["on", "off"] = "off",
) -> Iterator[str]:
    """Serve the emulator (`app`, or a new one from `config`) with uvicorn in a daemon
    thread; yield its base URL (`http://127.0.0.1:<port>`, port 0 picks a free one) and
    stop it on exit. Pass your own `app` to reach `emulator_state(app)` while it runs; tests
    serve parcelwatch itself this way too, with `lifespan="on"`."""
    quiet_emulated_resets()
    server = uvicorn.Server(
        uvicorn.Config(
            app or create_emulator_app(config),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan=lifespan,
            timeout_graceful_shutdown=1,  # do not wait out a `timeout` fault's hang
        )
    )
    thread = threading.Thread(target=server.run, name="parcelwatch-emulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the app did not start on {host}:{port}")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
