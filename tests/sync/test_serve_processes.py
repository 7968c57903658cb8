"""`parcelwatch serve --workers N`: several API processes answer on one address, the updater
polls in exactly one of them, credentials forgotten by one are forgotten by all, and the whole
stops together (exit 0 on SIGTERM, exit 1 when a process dies on its own)."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from parcelwatch.accounts.throttle import LoginThrottle
from parcelwatch.api.app import create_app
from parcelwatch.cli.processes import background_settings
from parcelwatch.config import Settings
from parcelwatch.models import EngineHeartbeat, Shipment, SyncRun
from tests.conftest import Database, account_token, free_port
from tests.sync.conftest import Emulator, ShipmentFactory

PARCELWATCH = str(Path(sys.executable).with_name("parcelwatch"))


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append(int(entry.name))
    return found


def api_children(pid: int) -> list[int]:
    """The API processes of a `serve` (not multiprocessing's resource tracker)."""
    return [
        child
        for child in children_of(pid)
        if "resource_tracker" not in Path(f"/proc/{child}/cmdline").read_text()
    ]


def start_serve(env: dict[str, str], port: int, workers: int) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [PARCELWATCH, "serve", "--port", str(port), "--workers", str(workers)],
        env=os.environ | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(process.communicate()[0])
        time.sleep(0.2)


def stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output


def test_only_the_first_process_runs_the_background_work(settings: Settings) -> None:
    on = settings.model_copy(
        update={"auto_update_enabled": True, "notify_enabled": True, "alerts_in_server": True}
    )
    assert background_settings(on, 0) is on
    other = background_settings(on, 1)
    assert not other.auto_update_enabled
    assert not other.notify_enabled
    assert not other.alerts_in_server
    assert other.database_url == on.database_url


def test_several_processes_answer_and_the_updater_polls_in_one(
    database: Database, emulator: Emulator, add_shipment: ShipmentFactory, settings: Settings
) -> None:
    for _ in range(20):
        add_shipment("ups")
    auth = account_token(settings)
    env = emulator.environment(database, auto_update_enabled=True, notify_enabled=True)
    port = free_port()
    server = start_serve(env, port, workers=2)
    try:
        api = api_children(server.pid)
        assert len(api) == 2
        url = f"http://127.0.0.1:{port}"

        def read(_: int) -> int:
            with httpx.Client(base_url=url, headers=auth, timeout=10) as client:  # own socket
                return client.get("/api/shipments", params={"limit": 5}).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(read, range(40))) == {200}
        with httpx.Client(base_url=url, headers=auth, timeout=10) as client:
            assert client.get("/api/shipments/1").status_code == 200
            assert client.get("/api/shipments").status_code == 200
            assert (
                client.get("/api/shipments", headers={"Authorization": "Bearer nope"}).status_code
                == 401
            )
        deadline = time.monotonic() + 30
        while True:
            with database.sessions() as session:
                counts = session.scalars(select(Shipment.auto_refresh_count)).all()
            if all(counts):
                break
            assert time.monotonic() < deadline, "the updater did not poll every shipment"
            time.sleep(0.2)
        with database.sessions() as session:
            servers = session.scalars(
                select(EngineHeartbeat).where(EngineHeartbeat.kind == "server")
            ).all()
            engines = set(session.scalars(select(SyncRun.engine_id)).all())
        assert len(servers) == 1
        assert servers[0].pid in api
        assert len(engines) == 1
    finally:
        output = stop(server)
    assert server.returncode == 0, output
    assert output.count("no owner account yet") <= 1
    assert "Traceback" not in output


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_serve_stops_every_process_when_one_dies(database: Database, emulator: Emulator) -> None:
    port = free_port()
    server = start_serve(emulator.environment(database), port, workers=2)
    try:
        api = api_children(server.pid)
        assert len(api) == 2
        os.kill(api[1], signal.SIGKILL)
        server.wait(timeout=60)
    finally:
        output = stop(server)
    assert server.returncode == 1, output
    assert "an API process ended on its own" in output
    for pid in api:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_a_forgotten_credential_is_forgotten_by_every_process(settings: Settings) -> None:
    shared = multiprocessing.get_context("spawn").RawValue("q", 0)
    first, second = (create_app(settings).state.authenticator for _ in range(2))
    for authenticator in (first, second):
        authenticator.share_forgetting(shared)
    looked_up: list[str] = []

    def look_up(secret: str) -> None:
        looked_up.append(secret)

    async def resolve() -> None:
        await second._remembered("t:key", "secret", look_up)

    asyncio.run(resolve())
    asyncio.run(resolve())
    assert len(looked_up) == 1  # remembered
    first.forget()  # a sign-out or a revocation answered by the other process
    asyncio.run(resolve())
    assert len(looked_up) == 2


def test_each_process_allows_its_share_of_sign_in_attempts() -> None:
    alone, shared = LoginThrottle(), LoginThrottle(processes=2)
    for throttle, allowed in ((alone, 5), (shared, 2)):
        for _ in range(allowed):
            assert throttle.wait_seconds("someone", "10.0.0.1") == 0
            throttle.failed("someone", "10.0.0.1")
        assert throttle.wait_seconds("someone", "10.0.0.1") > 0


def connections_by_process(port: int, pids: list[int]) -> dict[int, int]:
    """Established TCP connections to `port` each of `pids` holds (Linux /proc)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":  # ESTABLISHED
            inodes.add(fields[9])
    held = {}
    for pid in pids:
        links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        held[pid] = sum(link[8:-1] in inodes for link in links if link.startswith("socket:["))
    return held


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_connections_opened_together_are_shared_out_evenly(
    database: Database, emulator: Emulator
) -> None:
    """Left to the event loops, the first process awake accepted nearly all of them."""
    port = free_port()
    server = start_serve(emulator.environment(database), port, workers=2)
    try:
        api = api_children(server.pid)

        async def hold_connections() -> dict[int, int]:
            clients = [httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") for _ in range(12)]
            try:
                answers = await asyncio.gather(*(client.get("/healthz") for client in clients))
                assert {answer.status_code for answer in answers} == {200}
                return connections_by_process(port, api)  # kept alive, so still open
            finally:
                for client in clients:
                    await client.aclose()

        held = asyncio.run(hold_connections())
    finally:
        output = stop(server)
    assert sum(held.values()) == 12, held
    assert max(held.values()) - min(held.values()) <= 2, held
    assert server.returncode == 0, output
