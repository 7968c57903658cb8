"""Real `parcelwatch worker` processes against the emulator: on PostgreSQL several share the
work without polling a number twice, spend one budget through Redis, all obey a pause set
through the admin API, survive `kill -9` of one of them, and stop cleanly on SIGTERM; on
SQLite a second worker refuses to start beside the first."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from parcelwatch.api.app import create_app
from parcelwatch.models import EngineHeartbeat, Shipment, SyncRun, TrackingEvent
from parcelwatch.shipments.service import register_shipment
from tests.conftest import Database, free_port
from tests.sync.conftest import Emulator, running_emulator
from tests.sync.test_signals import PARCELWATCH, assert_nothing_half_written, start

ADMIN = {"Authorization": "Bearer s3cret-admin-token"}
FAST = ["--heartbeat-every", "0.5"]  # takeover and the status see a change within a second


@pytest.fixture
def postgres(database: Database) -> Database:
    if database.dialect != "postgresql":
        pytest.skip("several workers need PostgreSQL")
    return database


@pytest.fixture
def latent_emulator() -> Iterator[Emulator]:
    """100 ms a request, numbers two days into their storylines."""
    with running_emulator(
        head_start=timedelta(days=2), latency={"distribution": "fixed", "ms": 100}
    ) as emulator:
        yield emulator


def register_ups(database: Database, count: int) -> list[str]:
    numbers = [f"1ZWORKER{n:010d}" for n in range(1, count + 1)]
    with database.sessions.begin() as session:
        for number in numbers:
            register_shipment(session, tracking_number=number, carrier="ups")
    return numbers


def worker_env(emulator: Emulator, database: Database, **overrides: object) -> dict[str, str]:
    return emulator.environment(
        database, ups_max_concurrency=2, auto_update_batch_size=1, **overrides
    )


def start_workers(count: int, env: dict[str, str], *args: str) -> list[subprocess.Popen[str]]:
    return [start(["worker", *FAST, *args], env) for _ in range(count)]


def eventually(
    check: Callable[[], bool], processes: list[subprocess.Popen[str]], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        for process in processes:
            if process.poll() is not None:
                raise AssertionError(f"a worker ended early: {process.communicate()}")
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.1)


def synced(database: Database) -> int:
    with database.sessions() as session:
        return session.scalar(select(func.count()).where(Shipment.auto_refresh_count > 0)) or 0


def terminate(processes: list[subprocess.Popen[str]], timeout: float = 20) -> list[int]:
    """SIGTERM each one still running; their exit codes."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    codes = []
    for process in processes:
        process.communicate(timeout=timeout)
        codes.append(process.returncode)
    return codes


def polls(emulator: Emulator, numbers: list[str]) -> dict[str, int]:
    counted = emulator.stats()["tracking_numbers"].get("ups", {})
    return {number: int(counted.get(number, 0)) for number in numbers}


def live_workers(database: Database) -> list[EngineHeartbeat]:
    with database.sessions() as session:
        return list(
            session.scalars(select(EngineHeartbeat).where(EngineHeartbeat.kind == "worker"))
        )


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[str]]]:
    """Every worker a test starts, SIGKILLed if the test left it running."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_three_workers_share_the_shipments_and_poll_each_number_once(
    postgres: Database, latent_emulator: Emulator, workers: list[subprocess.Popen[str]]
) -> None:
    numbers = register_ups(postgres, 60)
    port = free_port()
    workers += start_workers(2, worker_env(latent_emulator, postgres))
    workers += start_workers(1, worker_env(latent_emulator, postgres), "--metrics-port", str(port))
    eventually(lambda: synced(postgres) == len(numbers), workers, timeout=60)
    probe = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{probe}/healthz").status_code == 200
    assert httpx.get(f"{probe}/readyz").json() == {"status": "ready"}
    scrape = httpx.get(f"{probe}/metrics").text
    assert "parcelwatch_update_attempts_total" in scrape
    assert "parcelwatch_shipments_due" not in scrape  # the database gauges: the server's
    assert terminate(workers) == [0, 0, 0]
    assert set(polls(latent_emulator, numbers).values()) == {1}  # no number polled twice
    with postgres.sessions() as session:
        engines = session.scalars(
            select(SyncRun.engine_id).where(SyncRun.checked > 0).distinct()
        ).all()
        assert len(engines) == 3  # every worker took a share
        assert session.scalar(select(func.count()).select_from(EngineHeartbeat)) == 0


def test_workers_spend_one_rate_limit_shared_through_redis(
    postgres: Database, workers: list[subprocess.Popen[str]]
) -> None:
    redis_url = os.environ.get("PARCELWATCH_TEST_REDIS_URL")
    if not redis_url:
        pytest.skip("PARCELWATCH_TEST_REDIS_URL is not set")
    # The emulator refuses (429) anything faster than 10 UPS requests a second.
    with running_emulator(
        head_start=timedelta(days=2),
        rate_limits={"ups": 10.0},
        latency={"distribution": "fixed", "ms": 20},
    ) as emulator:
        numbers = register_ups(postgres, 50)
        env = worker_env(emulator, postgres, ups_rate_limit=10.0, redis_url=redis_url)
        started = time.monotonic()
        workers += start_workers(3, env)
        eventually(lambda: synced(postgres) == len(numbers), workers, timeout=60)
        elapsed = time.monotonic() - started
        assert terminate(workers) == [0, 0, 0]
        assert emulator.stats()["rate_limited_total"] == 0
        assert set(polls(emulator, numbers).values()) == {1}
    assert elapsed > 50 / 10 * 0.8  # three workers, one budget: not three times 10/s


def test_a_pause_through_the_admin_api_reaches_every_worker(
    postgres: Database, latent_emulator: Emulator, workers: list[subprocess.Popen[str]]
) -> None:
    numbers = register_ups(postgres, 400)
    workers += start_workers(2, worker_env(latent_emulator, postgres))
    settings = latent_emulator.settings_for(postgres, admin_api_key="s3cret-admin-token")
    with TestClient(create_app(settings)) as client:  # an API server, its updater off
        eventually(lambda: synced(postgres) >= 10, workers, timeout=60)
        paused = client.post("/api/admin/tracking-updater/pause", headers=ADMIN).json()
        assert paused["paused_everywhere"] is True
        time.sleep(1.5)  # each worker: at its next batch (or its next look, within a second)
        before = latent_emulator.stats()["requests"]["ups"]
        time.sleep(1.5)
        assert latent_emulator.stats()["requests"]["ups"] == before  # nobody polls
        assert synced(postgres) < len(numbers)
        status = client.get("/api/admin/tracking-updater/status", headers=ADMIN).json()
        listed = [engine for engine in status["engines"] if engine["kind"] == "worker"]
        assert len(listed) == 2
        assert all(engine["paused"] for engine in listed)
        with postgres.sessions() as session:  # the paused workers gave their leases back
            leased = select(func.count()).where(Shipment.lease_owner.is_not(None))
            assert session.scalar(leased) == 0
        client.post("/api/admin/tracking-updater/resume", headers=ADMIN)
        eventually(lambda: synced(postgres) == len(numbers), workers, timeout=60)
        status = client.get("/api/admin/tracking-updater/status", headers=ADMIN).json()
        assert status["paused_everywhere"] is False
    assert terminate(workers) == [0, 0]
    assert set(polls(latent_emulator, numbers).values()) == {1}


def test_kill_9_of_a_worker_its_leases_are_taken_over_and_nothing_is_doubled(
    postgres: Database, latent_emulator: Emulator, workers: list[subprocess.Popen[str]]
) -> None:
    numbers = register_ups(postgres, 150)
    workers += start_workers(3, worker_env(latent_emulator, postgres))
    eventually(lambda: synced(postgres) >= 20, workers, timeout=60)
    victim = workers[0]
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=10)
    started = time.monotonic()
    eventually(lambda: synced(postgres) == len(numbers), workers[1:], timeout=60)
    assert time.monotonic() - started < 60  # not the 10-minute lease
    assert terminate(workers[1:]) == [0, 0]
    counted = polls(latent_emulator, numbers)
    assert all(count >= 1 for count in counted.values())
    # Asked again: only what the dead worker had claimed and not written (it claims at most
    # concurrency x batch x 2 = 4 ahead), once its lease was taken over, never beside it.
    assert sum(count - 1 for count in counted.values()) <= 4
    with postgres.sessions() as session:
        duplicates = session.execute(
            select(TrackingEvent.shipment_id, TrackingEvent.dedupe_key)
            .group_by(TrackingEvent.shipment_id, TrackingEvent.dedupe_key)
            .having(func.count() > 1)
        ).all()
        assert duplicates == []
        assert session.scalar(select(func.count()).where(Shipment.lease_owner.is_not(None))) == 0
        outcomes = session.scalars(select(SyncRun.outcome)).all()
        assert "running" not in outcomes
        assert "abandoned" in outcomes


def test_sigterm_stops_a_worker_mid_pass_with_exit_0_and_nothing_half_written(
    database: Database, workers: list[subprocess.Popen[str]]
) -> None:
    with running_emulator(latency={"distribution": "fixed", "ms": 300}) as emulator:
        register_ups(database, 40)
        workers += start_workers(1, worker_env(emulator, database))
        eventually(lambda: synced(database) >= 4, workers, timeout=60)
        started = time.monotonic()
        assert terminate(workers) == [0]
        assert time.monotonic() - started < 12  # the stop deadline, not the whole backlog
    written, total = assert_nothing_half_written(database)
    assert 0 < written < total
    with database.sessions() as session:
        assert session.scalar(select(func.count()).select_from(EngineHeartbeat)) == 0
        assert session.scalars(select(SyncRun.outcome)).all()[-1] == "stopped"


def test_a_second_worker_on_sqlite_refuses_to_start_and_names_the_first(
    database: Database, emulator: Emulator, workers: list[subprocess.Popen[str]]
) -> None:
    if database.dialect != "sqlite":
        pytest.skip("the single-node rule is SQLite's")
    register_ups(database, 3)
    env = worker_env(emulator, database)
    workers += start_workers(1, env)
    eventually(lambda: bool(live_workers(database)), workers, timeout=60)
    second = subprocess.run(
        [PARCELWATCH, "worker", "--once"],
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode == 2
    assert "SQLite is single-node" in second.stderr
    assert live_workers(database)[0].engine_id in second.stderr
    assert terminate(workers) == [0]
    after = subprocess.run(  # the first gone, a worker may start again
        [PARCELWATCH, "worker", "--once"],
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert after.returncode == 0, after.stderr


def test_worker_once_syncs_its_carriers_in_one_pass_and_nothing_while_paused(
    database: Database, emulator: Emulator
) -> None:
    from parcelwatch.sync.control import set_paused

    register_ups(database, 3)
    with database.sessions.begin() as session:
        register_shipment(session, tracking_number="123456789012", carrier="fedex")
    env = os.environ | worker_env(emulator, database)

    def once(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PARCELWATCH, "worker", "--once", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    set_paused(database.engine, paused=True)
    paused = once()
    assert paused.returncode == 0, paused.stderr
    assert synced(database) == 0
    set_paused(database.engine, paused=False)
    done = once("--carrier", "ups")
    assert done.returncode == 0, done.stderr
    with database.sessions() as session:
        rows = session.execute(select(Shipment.carrier, Shipment.auto_refresh_count)).all()
        refreshed = {row.carrier: row.auto_refresh_count for row in rows}
        assert session.scalar(select(func.count()).select_from(EngineHeartbeat)) == 0
    assert synced(database) == 3
    assert refreshed["fedex"] == 0
