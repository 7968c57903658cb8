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

import aiohttp
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

    def record(self, kind: str, started: float, status: int, body: bytes, *ok: int) -> bool:
        """Count one answer, read whole by the caller; False when its status is not `ok`."""
        self.latencies[kind].append(time.perf_counter() - started)
        if status not in ok:
            self.errors[kind].append(f"{status} {body[:120].decode(errors='replace')}")
            return False
        return True


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


async def call(
    client: aiohttp.ClientSession, method: str, path: str, **options: Any
) -> tuple[int, bytes]:
    """One request; the answer is read to its end (as any client would) before it counts."""
    async with client.request(method, path, **options) as response:
        return response.status, await response.read()


async def reader(
    client: aiohttp.ClientSession, ids: range, tally: Tally, stop: float, kinds: set[str]
) -> None:
    rng = random.Random()
    cursor: str | None = None
    while time.perf_counter() < stop:
        started = time.perf_counter()
        try:
            if "list" not in kinds or ("get" in kinds and rng.random() < 0.7):
                status, body = await call(client, "GET", f"/api/shipments/{rng.choice(ids)}")
                tally.record("get", started, status, body, 200, 404)  # writers delete their own
                continue
            params: dict[str, Any] = {"limit": 50}
            if cursor and rng.random() < 0.5:
                params["cursor"] = cursor
            elif rng.random() < 0.3:
                params["status"] = rng.choice(["in_transit", "pending", "delivered"])
            status, body = await call(client, "GET", "/api/shipments", params=params)
            if tally.record("list", started, status, body, 200):
                cursor = json.loads(body).get("next_cursor")
        except (aiohttp.ClientError, TimeoutError) as error:
            tally.errors["transport"].append(repr(error))


async def writer(client: aiohttp.ClientSession, name: str, tally: Tally, stop: float) -> None:
    serial = 0
    while time.perf_counter() < stop:
        serial += 1
        number = f"LOAD{name}{serial:09d}"
        try:
            started = time.perf_counter()
            status, body = await call(
                client, "POST", "/api/shipments", json={"tracking_number": number, "carrier": "ups"}
            )
            if not tally.record("write", started, status, body, 201):
                continue
            path = f"/api/shipments/{json.loads(body)['id']}"
            started = time.perf_counter()
            status, body = await call(
                client, "PATCH", path, json={"description": f"load test {serial}"}
            )
            tally.record("write", started, status, body, 200)
            started = time.perf_counter()
            status, body = await call(client, "DELETE", path)
            tally.record("write", started, status, body, 204)
        except (aiohttp.ClientError, TimeoutError) as error:
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
    url: str, ids: range, args: argparse.Namespace, token: str, kinds: set[str]
) -> tuple[Tally, float]:
    """`kinds` of requests for `args.duration` seconds: readers when "get" or "list" is in
    it, writers when "write" is, each in a closed loop on a keep-alive connection of its own."""
    tally = Tally()
    readers = args.readers if kinds & {"get", "list"} else 0
    writers = args.writers if "write" in kinds else 0
    connector = aiohttp.TCPConnector(limit=readers + writers + 1)
    auth = {"Authorization": f"Bearer {token}"}
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(
        url, connector=connector, headers=auth, timeout=timeout
    ) as client:
        await call(client, "GET", "/api/shipments", params={"limit": 1})  # warm
        started = time.perf_counter()
        stop = started + args.duration
        await asyncio.gather(
            *(reader(client, ids, tally, stop, kinds) for _ in range(readers)),
            *(writer(client, f"W{n}", tally, stop) for n in range(writers)),
        )
        return tally, time.perf_counter() - started


def tree_cpu(pid: int) -> float:
    """CPU seconds `pid` and every process under it use so far (Linux /proc): a server of
    several processes counts whole."""
    parents: dict[int, int] = {}
    spent: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        spent[int(entry.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    total = 0.0
    for candidate, seconds in spent.items():
        ancestor = candidate
        while ancestor not in (pid, 0, 1) and ancestor in parents:
            ancestor = parents[ancestor]
        if ancestor == pid:
            total += seconds
    return total


def updater_progress(url: str) -> dict[str, Any]:
    """Shipment checks the updater made so far, wherever it runs (read from the database)."""
    db = create_db_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with db.connect() as connection:
            checked = connection.scalar(text("SELECT sum(auto_refresh_count) FROM shipments"))
    finally:
        db.dispose()
    return {"updater_checks": int(checked or 0)}


def start_server(
    args: argparse.Namespace, url: str, port: int, emulator_url: str, *, updater: bool
) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes] | None]:
    """`parcelwatch serve` (`--api-processes` of them), and with `updater` the updater: in
    the server, or in a `parcelwatch worker` of its own (`--updater worker`)."""
    environment = server_environment(url, emulator_url)
    in_server = updater and args.updater == "serve"
    environment["AUTO_UPDATE_ENABLED"] = "true" if in_server else "false"
    command = str(Path(sys.executable).with_name("parcelwatch"))
    workers = ["--workers", str(args.api_processes)] if args.api_processes > 1 else []
    server = subprocess.Popen(
        [command, "serve", "--port", str(port), *workers],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    worker = None
    if updater and args.updater == "worker":
        worker = subprocess.Popen(
            [command, "worker"],
            env=environment | {"AUTO_UPDATE_ENABLED": "true"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    return server, worker


def measure_per_route(
    server_url: str, processes: list[int], ids: range, args: argparse.Namespace, token: str
) -> dict[str, Any]:
    """Each kind alone (updater off): the server's CPU milliseconds per request served."""
    figures: dict[str, Any] = {}
    for kind in ("get", "list", "write"):
        cpu_before = sum(tree_cpu(pid) for pid in processes)
        tally, elapsed = asyncio.run(run_load(server_url, ids, args, token, {kind}))
        spent = sum(tree_cpu(pid) for pid in processes) - cpu_before
        served = len(tally.latencies.get(kind, [])) + 1  # and the warm-up request
        figures[kind] = {
            "requests": served - 1,
            "per_second": round((served - 1) / elapsed, 1),
            "server_cpu_ms_per_request": round(spent / served * 1000, 2),
            "p99_ms": round(percentile(tally.latencies[kind], 0.99), 1)
            if tally.latencies.get(kind)
            else None,
            "errors": sum(len(found) for found in tally.errors.values()),
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shipments", type=int, default=100_000)
    parser.add_argument("--due", type=float, default=0.2, help="share of them due at start")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--readers", type=int, default=16)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--latency", type=float, default=50.0, help="emulator latency, ms")
    parser.add_argument("--database", default=None, help="a database URL (default: SQLite)")
    parser.add_argument(
        "--api-processes", type=int, default=1, help="serve --workers N (default 1)"
    )
    parser.add_argument(
        "--updater",
        choices=("serve", "worker"),
        default="serve",
        help="where the updater runs: in serve (default) or in a parcelwatch worker",
    )
    parser.add_argument(
        "--per-route",
        action="store_true",
        help="updater off; each kind of request alone for --duration: server CPU ms each",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with (
        scratch_database(args.database) as scratch_url,
        tempfile.TemporaryDirectory(prefix="parcelwatch-api-load-") as workdir,
    ):  # the SQLite file (70 MB and more) goes with its folder
        url = scratch_url or f"sqlite:///{Path(workdir) / 'load.db'}"
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
        server, worker = start_server(
            args,
            url,
            server_port,
            f"http://127.0.0.1:{emulator_port}",
            updater=not args.per_route,
        )
        processes = [server.pid] + ([worker.pid] if worker else [])
        shipment_ids = range(1, args.shipments + 1)
        try:
            wait_until_up(server_url, server)
            if args.per_route:
                routes = measure_per_route(server_url, processes, shipment_ids, args, token)
                tally, elapsed, server_cpu, client_cpu = Tally(), 0.0, 0.0, 0.0
                before = after = {"updater_checks": 0}
            else:
                before = updater_progress(url)
                cpu_before = sum(tree_cpu(pid) for pid in processes)
                client_before = time.process_time()
                tally, elapsed = asyncio.run(
                    run_load(server_url, shipment_ids, args, token, {"get", "list", "write"})
                )
                server_cpu = sum(tree_cpu(pid) for pid in processes) - cpu_before
                client_cpu = time.process_time() - client_before
                after = updater_progress(url)
        finally:
            stderr = b""
            for process in (worker, server):
                if process is not None:
                    process.terminate()
                    stderr += process.communicate(timeout=30)[1]
            emulator.terminate()
            emulator.wait(timeout=10)
    result: dict[str, Any] = {
        "database": url.split(":")[0],
        "shipments": args.shipments,
        "readers": args.readers,
        "writers": args.writers,
        "api_processes": args.api_processes,
        "updater": "off" if args.per_route else args.updater,
        "seconds": round(elapsed, 1),
        "updater_checks_during_load": after["updater_checks"] - before["updater_checks"],
        "server_cpu_seconds": round(server_cpu, 1),
        "client_cpu_seconds": round(client_cpu, 1),
        "server_exit": server.returncode,
        "cpu_reference_ms": round(cpu_reference_ms(), 1),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "kinds": {},
    }
    missed = []
    if args.per_route:
        result["per_route"] = routes
        errors = sum(figures["errors"] for figures in routes.values())
        if errors:
            missed.append(f"{errors} errors")
        if b"Traceback" in stderr:
            missed.append("the server logged a traceback")
        result["missed"] = missed
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            print(
                f"{result['database']}: {args.shipments:,} shipments, updater off, "
                f"{args.api_processes} API process(es), each kind alone for {args.duration:g} s "
                f"(readers {args.readers}, writers {args.writers}); cpu_reference_ms "
                f"{result['cpu_reference_ms']}, load average {result['load_average']}"
            )
            for kind, f in routes.items():
                print(
                    f"{kind:6} {f['requests']:>7} requests, {f['per_second']:>7} req/s, "
                    f"server CPU {f['server_cpu_ms_per_request']:>6} ms a request, "
                    f"p99 {f['p99_ms']} ms, errors {f['errors']}"
                )
        sys.exit(1 if missed else 0)
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
    if not result["updater_checks_during_load"]:
        missed.append("the updater checked no shipment during the load")
    result["missed"] = missed
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['database']}: {args.shipments:,} shipments, {args.readers} readers + "
            f"{args.writers} writers for {result['seconds']} s, {args.api_processes} API "
            f"process(es), updater in {args.updater} "
            f"({result['updater_checks_during_load']:,} shipment checks during the load); "
            f"CPU seconds: server {result['server_cpu_seconds']}, "
            f"load generator {result['client_cpu_seconds']}; "
            f"cpu_reference_ms {result['cpu_reference_ms']}, "
            f"load average {result['load_average']}"
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
