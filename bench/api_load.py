"""The REST API under load while the updater writes: readers and writers against a real
`parcelwatch serve` (its own process, updater on, every provider pointed at the emulator).

Loads N shipments (a share of them due, so the updater keeps writing through the whole run),
then runs R readers (each, in a loop: `GET /api/shipments/{id}` of a random shipment, or a list
page, some filtered, some following the cursor) and W writers (register a new number, edit its
description, delete it) for D seconds, and prints per kind: requests, req/s, p50/p95/p99/max
latency, and errors (any status a well-formed request should not get, or no answer). Exits 1
when a target is missed: 0 errors, GET by id p99 < 50 ms, list p99 < 100 ms, writes p99 < 200 ms.

    .venv/bin/python bench/api_load.py                        # 100,000 shipments, SQLite, 60 s
    .venv/bin/python bench/api_load.py --database postgresql://postgres@127.0.0.1/test
    .venv/bin/python bench/api_load.py --shipments 20000 --duration 20   # a quick look

The load generator runs in this process on the same machine; its own CPU competes with the
server's, so the figures are a floor for what a separate client would see.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, text

from parcelwatch.accounts.roles import Role, Scope
from parcelwatch.accounts.service import create_user
from parcelwatch.accounts.tokens import create_token

sys.path.insert(0, str(Path(__file__).parent))
from sync_throughput import (  # noqa: E402
    PROVIDERS,
    Plan,
    cpu_reference_ms,
    free_port,
    load,
    plans,
    process_cpu,
    scratch_database,
    start_emulator,
)

from parcelwatch.db import create_db_engine, make_session_factory, session_scope  # noqa: E402
from parcelwatch.migrate import upgrade  # noqa: E402

TARGETS_MS = {"get": 50.0, "list": 100.0, "write": 200.0}  # p99


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def record(self, kind: str, started: float, response: httpx.Response, *ok: int) -> None:
        self.latencies[kind].append(time.perf_counter() - started)
        if response.status_code not in ok:
            self.errors[kind].append(f"{response.status_code} {response.text[:120]}")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


async def reader(client: httpx.AsyncClient, ids: range, tally: Tally, stop: float) -> None:
    rng = random.Random()
    cursor: str | None = None
    while time.perf_counter() < stop:
        started = time.perf_counter()
        try:
            if rng.random() < 0.7:
                response = await client.get(f"/api/shipments/{rng.choice(ids)}")
                tally.record("get", started, response, 200, 404)  # writers delete their own
                continue
            params: dict[str, Any] = {"limit": 50}
            if cursor and rng.random() < 0.5:
                params["cursor"] = cursor
            elif rng.random() < 0.3:
                params["status"] = rng.choice(["in_transit", "pending", "delivered"])
            response = await client.get("/api/shipments", params=params)
            tally.record("list", started, response, 200)
            if response.status_code == 200:
                cursor = response.json().get("next_cursor")
        except httpx.HTTPError as error:
            tally.errors["transport"].append(repr(error))


async def writer(client: httpx.AsyncClient, name: str, tally: Tally, stop: float) -> None:
    serial = 0
    while time.perf_counter() < stop:
        serial += 1
        number = f"LOAD{name}{serial:09d}"
        try:
            started = time.perf_counter()
            created = await client.post(
                "/api/shipments", json={"tracking_number": number, "carrier": "ups"}
            )
            tally.record("write", started, created, 201)
            if created.status_code != 201:
                continue
            shipment_id = created.json()["id"]
            started = time.perf_counter()
            edited = await client.patch(
                f"/api/shipments/{shipment_id}", json={"description": f"load test {serial}"}
            )
            tally.record("write", started, edited, 200)
            started = time.perf_counter()
            deleted = await client.delete(f"/api/shipments/{shipment_id}")
            tally.record("write", started, deleted, 204)
        except httpx.HTTPError as error:
            tally.errors["transport"].append(repr(error))


def server_environment(database_url: str, emulator_url: str) -> dict[str, str]:
    values = {
        "DATABASE_URL": database_url,
        "AUTO_UPDATE_ENABLED": "true",
        "ALERTS_IN_SERVER": "false",
        "LOG_LEVEL": "warning",
        "USPS_CLIENT_ID": "bench",
        "USPS_CLIENT_SECRET": "bench",
        "UPS_CLIENT_ID": "bench",
        "UPS_CLIENT_SECRET": "bench",
        "FEDEX_API_KEY": "bench",
        "FEDEX_SECRET_KEY": "bench",
        "DHL_API_KEY": "bench",
        "SHIPENGINE_API_KEY": "bench",
    }
    for provider in PROVIDERS:
        values[f"{provider.upper()}_BASE_URL"] = f"{emulator_url}/{provider}"
    return os.environ | values


def wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the server did not start")
        time.sleep(0.2)


def bench_token(db: Engine) -> str:
    """A write token of the owner, as a script would hold (every request sends it)."""
    with session_scope(make_session_factory(db), write=True) as session:
        create_user(session, name="bench", role=Role.OWNER, password=None)
        return create_token(session, user_name="bench", scope=Scope.WRITE).secret


async def run_load(
    url: str, ids: range, args: argparse.Namespace, token: str
) -> tuple[Tally, float]:
    tally = Tally()
    limits = httpx.Limits(max_connections=args.readers + args.writers)
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30, headers=auth) as client:
        await client.get("/api/shipments", params={"limit": 1})  # warm
        started = time.perf_counter()
        stop = started + args.duration
        await asyncio.gather(
            *(reader(client, ids, tally, stop) for _ in range(args.readers)),
            *(writer(client, f"W{n}", tally, stop) for n in range(args.writers)),
        )
        return tally, time.perf_counter() - started


def updater_progress(url: str) -> dict[str, Any]:
    with httpx.Client(base_url=url, timeout=10) as client:
        page = client.get("/metrics").text
    checked = sum(
        float(line.rsplit(" ", 1)[1])
        for line in page.splitlines()
        if line.startswith("parcelwatch_update_attempts_total{")
    )
    return {"updater_checks": int(checked)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shipments", type=int, default=100_000)
    parser.add_argument("--due", type=float, default=0.2, help="share of them due at start")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--readers", type=int, default=16)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--latency", type=float, default=50.0, help="emulator latency, ms")
    parser.add_argument("--database", default=None, help="a database URL (default: SQLite)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with scratch_database(args.database) as scratch_url:
        url = scratch_url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'load.db'}"
        db = create_db_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        upgrade(db)
        due = int(args.shipments * args.due)
        emulator_args = argparse.Namespace(
            providers=list(PROVIDERS),
            concurrency=None,
            rate=None,
            latency=args.latency,
            shipments=due,
            head_start="2d",
            zero_latency=False,
            emulator_rate=None,
            quotas={},  # no allowance enforced: the API is what is measured
        )
        plan_list: list[Plan] = plans(emulator_args, batch_size=10)
        load(db, plan_list, args.shipments - due)
        token = bench_token(db)
        if db.dialect.name == "postgresql":  # statistics, as autovacuum would gather shortly
            with db.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("ANALYZE"))
        db.dispose()
        emulator_port, server_port = free_port(), free_port()
        emulator = start_emulator(emulator_args, emulator_port, plan_list)
        server_url = f"http://127.0.0.1:{server_port}"
        server = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("parcelwatch")),
                "serve",
                "--port",
                str(server_port),
            ],
            env=server_environment(url, f"http://127.0.0.1:{emulator_port}"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_until_up(server_url, server)
            before = updater_progress(server_url)
            cpu_before, client_before = process_cpu(server) or 0.0, time.process_time()
            shipment_ids = range(1, args.shipments + 1)
            tally, elapsed = asyncio.run(run_load(server_url, shipment_ids, args, token))
            server_cpu = (process_cpu(server) or 0.0) - cpu_before
            client_cpu = time.process_time() - client_before
            after = updater_progress(server_url)
        finally:
            server.terminate()
            _, stderr = server.communicate(timeout=30)
            emulator.terminate()
            emulator.wait(timeout=10)
    result: dict[str, Any] = {
        "database": url.split(":")[0],
        "shipments": args.shipments,
        "readers": args.readers,
        "writers": args.writers,
        "seconds": round(elapsed, 1),
        "updater_checks_during_load": after["updater_checks"] - before["updater_checks"],
        "server_cpu_seconds": round(server_cpu, 1),
        "client_cpu_seconds": round(client_cpu, 1),
        "server_exit": server.returncode,
        "cpu_reference_ms": round(cpu_reference_ms(), 1),
        "kinds": {},
    }
    missed = []
    for kind in ("get", "list", "write"):
        values = tally.latencies.get(kind, [])
        if not values:
            missed.append(f"no {kind} request finished")
            continue
        figures = {
            "requests": len(values),
            "per_second": round(len(values) / elapsed, 1),
            "p50_ms": round(percentile(values, 0.50), 1),
            "p95_ms": round(percentile(values, 0.95), 1),
            "p99_ms": round(percentile(values, 0.99), 1),
            "max_ms": round(max(values) * 1000, 1),
            "mean_ms": round(statistics.fmean(values) * 1000, 1),
            "errors": len(tally.errors.get(kind, [])),
        }
        result["kinds"][kind] = figures
        if figures["p99_ms"] >= TARGETS_MS[kind]:
            missed.append(f"{kind} p99 {figures['p99_ms']} ms >= {TARGETS_MS[kind]:g} ms")
    errors = sum(len(found) for found in tally.errors.values())
    result["errors"] = errors
    result["error_samples"] = [e for found in tally.errors.values() for e in found[:3]]
    if errors:
        missed.append(f"{errors} errors")
    if b"Traceback" in stderr:
        missed.append("the server logged a traceback")
    result["missed"] = missed
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['database']}: {args.shipments:,} shipments, {args.readers} readers + "
            f"{args.writers} writers for {result['seconds']} s, updater on "
            f"({result['updater_checks_during_load']:,} shipment checks during the load); "
            f"CPU seconds: server {result['server_cpu_seconds']}, "
            f"load generator {result['client_cpu_seconds']}; "
            f"cpu_reference_ms {result['cpu_reference_ms']}"
        )
        header = ("kind", "requests", "req/s", "p50", "p95", "p99", "max")
        print(f"{header[0]:6} " + " ".join(f"{h:>7}" for h in header[1:]) + "  errors")
        for kind, f in result["kinds"].items():
            print(
                f"{kind:6} {f['requests']:>7} {f['per_second']:>7} {f['p50_ms']:>7} "
                f"{f['p95_ms']:>7} {f['p99_ms']:>7} {f['max_ms']:>7}  {f['errors']}"
            )
        for sample in result["error_samples"]:
            print(f"  error: {sample}")
        print("targets met" if not missed else "targets missed: " + "; ".join(missed))
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
