"""`serve --workers N`: N API processes answering on one listening socket, with the background
work (updater, notification dispatcher, in-server alerts) in the first of them only.

One Python process runs one request at a time (one interpreter lock), so on a machine of
several cores a busy API wants several processes. The supervisor (the `serve` process itself)
migrates the database, prepares the demo, binds the address once and starts the processes
with that socket; the kernel hands each new connection to one of them. Process 0 gets the
settings as given; the others get `AUTO_UPDATE_ENABLED`, `NOTIFY_ENABLED` and
`ALERTS_IN_SERVER` off, so the updater polls once, as with one process (the pause and the
updater's status live in the database and read the same from every process). Every process
takes the same setup code, and the sign-in throttle (in memory without REDIS_URL) gives each
its share of the attempts. A sign-out or a revoked token is forgotten by every process at
once (a counter in shared memory), as in one process. Prometheus
series are merged across the processes through `PROMETHEUS_MULTIPROC_DIR` (a private
temporary directory unless the variable is set).

The supervisor serves nothing itself. SIGTERM or SIGINT stops every process gracefully (each
finishes its requests, process 0 stops its updater as one `serve` does) and exits 0; if one
process dies on its own, the others are stopped and `serve` exits 1, so that the service
manager restarts the whole (a half-served address is worse than a restart).
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING

from parcelwatch.config import Settings
from parcelwatch.logs import get_logger

if TYPE_CHECKING:
    from parcelwatch.api.auth import Counter

__all__ = ["SHUTDOWN_SECONDS", "background_settings", "run_processes"]

log = get_logger(__name__)

SHUTDOWN_SECONDS = 60.0  # each process's graceful stop; then it is killed


def background_settings(settings: Settings, index: int) -> Settings:
    """The settings of API process `index`: the background work stays with process 0."""
    if index == 0:
        return settings
    return settings.model_copy(
        update={"auto_update_enabled": False, "notify_enabled": False, "alerts_in_server": False}
    )


def bind(host: str, port: int) -> socket.socket:
    """The listening socket every process accepts on (IPv6 when `host` is an IPv6 address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _serve_one(
    settings: Settings, index: int, sock: socket.socket, setup_code: str, forgotten: Counter
) -> None:
    """One API process (the child's entry point): the app over `sock`, until SIGTERM/SIGINT.
    Every process takes the same setup code (a person may reach any of them); process 0
    alone announces it. `forgotten` counts the credentials any process forgot (a sign-out, a
    revoked token), so that all of them forget at once."""
    import uvicorn

    from parcelwatch.api.app import create_app
    from parcelwatch.api.auth import authenticator_of
    from parcelwatch.logs import configure_logging, register_settings_secrets

    register_settings_secrets(settings)
    configure_logging(settings.log_level, settings.log_format, background=True)
    app = create_app(background_settings(settings, index))
    app.state.setup_code = setup_code
    app.state.announce_setup = index == 0
    authenticator_of(app).share_forgetting(forgotten)
    gc.collect()  # as one `serve` does: what lives as long as the process, frozen
    gc.freeze()
    # uvicorn stops gracefully on SIGTERM/SIGINT, then re-raises the signal under the
    # previous handler: make that a clean exit 0, as one `serve` does.
    for shutdown_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(shutdown_signal, _exit_cleanly)
    config = uvicorn.Config(app, log_config=None, access_log=False, proxy_headers=False)
    uvicorn.Server(config).run(sockets=[sock])


def _exit_cleanly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def run_processes(settings: Settings, *, host: str, port: int, workers: int) -> int:
    """Serve on `host:port` with `workers` processes until told to stop; the exit status."""
    own_metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own_metrics_dir = tempfile.mkdtemp(prefix="parcelwatch-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_metrics_dir
    from parcelwatch.web.signin import new_setup_code

    settings = settings.model_copy(update={"web_concurrency": workers})  # the throttle's share
    setup_code = new_setup_code()
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked threads
    forgotten = context.RawValue("q", 0)  # an aligned 64-bit word: read and written whole
    sock = bind(host, port)
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    processes: list[BaseProcess] = []
    try:
        for index in range(workers):
            process = context.Process(
                target=_serve_one,
                args=(settings, index, sock, setup_code, forgotten),
                name=f"parcelwatch-api-{index}",
                daemon=False,
            )
            process.start()
            processes.append(process)
        log.info("serving with several processes", processes=[p.pid for p in processes])
        status = _supervise(processes, lambda: stopping)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop_all(processes)
        sock.close()
        if own_metrics_dir is not None:
            shutil.rmtree(own_metrics_dir, ignore_errors=True)
    return status


def _supervise(processes: list[BaseProcess], stopping: Callable[[], bool]) -> int:
    while not stopping():
        for process in processes:
            if process.exitcode is not None:
                log.error(
                    "an API process ended on its own: stopping the others",
                    pid=process.pid,
                    exit_code=process.exitcode,
                )
                return 1
        time.sleep(0.2)
    return 0


def _stop_all(processes: list[BaseProcess]) -> None:
    for process in processes:
        if process.exitcode is None and process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + SHUTDOWN_SECONDS
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.exitcode is None:
            log.warning("an API process did not stop in time: killed", pid=process.pid)
            process.kill()
            process.join()
