"""`serve --workers N`: N API processes answering on one listening socket, with the background
work (updater, notification dispatcher, in-server alerts) in the first of them only.

One Python process runs one request at a time (one interpreter lock), so on a machine of
several cores a busy API wants several processes. The supervisor (the `serve` process itself)
migrates the database, prepares the demo, binds the address once and starts the processes
with that socket; each new connection goes to the process holding the fewest
(`_TakingTurnsServer`). Process 0 gets the
settings as given; the others get `AUTO_UPDATE_ENABLED`, `NOTIFY_ENABLED` and
`ALERTS_IN_SERVER` off, so the updater polls once, as with one process (the pause and the
updater's status live in the database and read the same from every process). Every process
takes the same setup code, and the sign-in throttle (in memory without REDIS_URL) gives each
its share of the attempts. A sign-out or a revoked token is forgotten by every process at
once (a counter in shared memory), as in one process. Prometheus series are merged across
the processes through `PROMETHEUS_MULTIPROC_DIR` (a private temporary directory unless the
variable is set).

The supervisor serves nothing itself. SIGTERM or SIGINT stops every process gracefully (each
finishes its requests, process 0 stops its updater as one `serve` does) and exits 0; if one
process dies on its own, the others are stopped and `serve` exits 1, so that the service
manager restarts the whole (a half-served address is worse than a restart).
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING

import uvicorn

from parcelwatch.config import Settings
from parcelwatch.logs import get_logger

if TYPE_CHECKING:
    from collections.abc import MutableSequence

    from parcelwatch.api.auth import Counter

    Counts = MutableSequence[int]

__all__ = ["SHUTDOWN_SECONDS", "background_settings", "run_processes"]

log = get_logger(__name__)

SHUTDOWN_SECONDS = 60.0  # each process's graceful stop; then it is killed
YIELD_SECONDS = 0.02  # how long a process with more connections leaves the next to others


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
    settings: Settings,
    index: int,
    sock: socket.socket,
    setup_code: str,
    forgotten: Counter,
    counts: Counts,
) -> None:
    """One API process (the child's entry point): the app over `sock`, until SIGTERM/SIGINT.
    Every process takes the same setup code (a person may reach any of them); process 0
    alone announces it. `forgotten` counts the credentials any process forgot (a sign-out, a
    revoked token), so that all of them forget at once."""
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
    placeholder = bind("127.0.0.1", 0)  # what uvicorn listens on; `sock` is accepted below
    _TakingTurnsServer(config, sock, counts, index).run(sockets=[placeholder])


def _exit_cleanly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


class _TakingTurnsServer(uvicorn.Server):
    """uvicorn, with the connections of the shared socket shared out evenly.

    Left to the event loop, the shared socket wakes every process at once and the first awake
    accepts every connection waiting (libuv accepts until none is left): 18 connections opened
    together went 13 to one process and 5 to the other, 12 / 4 / 2 / 0 among four, and the
    busiest process set everyone's latency. Here a thread of each process accepts, with a
    blocking `accept()` (Linux wakes one waiting thread a connection), and a process holding
    more open connections than another leaves the next one to it (for up to
    `YIELD_SECONDS`, in case it is stuck): every process publishes its count in `counts`, in
    shared memory. The thread gives each connection to the event loop, which serves it as
    uvicorn serves its own (uvicorn itself listens on an unused loopback port, for its
    start-up and shutdown to run as usual)."""

    def __init__(
        self, config: uvicorn.Config, shared: socket.socket, counts: Counts, index: int
    ) -> None:
        super().__init__(config)
        self.shared = shared
        self.counts = counts
        self.index = index
        self.accepting = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.should_exit:
            return
        loop = asyncio.get_running_loop()
        config = self.config
        open_connections = self.server_state.connections
        counts, index = self.counts, self.index

        class Counted(config.http_protocol_class):  # type: ignore[name-defined,misc]
            """uvicorn's protocol, publishing this process's open connections."""

            def connection_lost(self, exc: Exception | None) -> None:
                super().connection_lost(exc)
                counts[index] = len(open_connections)

        def protocol() -> asyncio.Protocol:  # as uvicorn makes them for its own socket
            made: asyncio.Protocol = Counted(
                config=config, server_state=self.server_state, app_state=self.lifespan.state
            )
            return made

        def adopt(connection: socket.socket) -> None:
            loop.create_task(loop.connect_accepted_socket(protocol, connection))

        self.accepting.set()
        threading.Thread(
            target=self._accept_in_turn,
            args=(lambda connection: loop.call_soon_threadsafe(adopt, connection),),
            name="accept",
            daemon=True,  # blocked in accept() until the process ends
        ).start()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.accepting.clear()
        await super().shutdown(sockets=sockets)

    def _accept_in_turn(self, adopt: Callable[[socket.socket], object]) -> None:
        counts, index = self.counts, self.index
        while self.accepting.is_set():
            waited = 0.0
            while counts[index] > min(counts) and waited < YIELD_SECONDS:
                time.sleep(0.001)  # another process holds fewer: its turn
                waited += 0.001
            try:
                connection, _ = self.shared.accept()  # blocking: one waiting thread woken
            except OSError as error:  # out of file descriptors, say: try again shortly
                log.warning("accepting a connection failed", error=str(error))
                time.sleep(0.1)
                continue
            if not self.accepting.is_set():  # shutting down: the client will try again
                connection.close()
                return
            connection.setblocking(False)
            if connection.family != socket.AF_UNIX:  # as the event loop's own accepts do
                connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            counts[index] += 1  # now, not once the loop has it: the next turn must see it
            adopt(connection)


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
    counts = context.RawArray("i", workers)  # each process's open connections
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
                args=(settings, index, sock, setup_code, forgotten, counts),
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
