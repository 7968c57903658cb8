"""Sync engine throughput against the carrier emulator.

Loads N shipments spread over the carriers, starts the emulator (a separate process) with
latency L and a per-carrier rate limit, runs one engine pass and prints shipments/s, the
ceiling `min(rate limit, concurrency / L) x numbers per request` (summed over providers,
shipments spread in proportion so every provider finishes together), their ratio, 429s
received, CPU seconds per 1,000 updates, peak RSS, and per provider the tracking calls of
the measured pass and calls per shipment. Numbers per request follow the engine's rule
(`AUTO_UPDATE_BATCH_SIZE` = `--batch-size`, except USPS: `USPS_BATCH_SIZE` in v3r2).

    .venv/bin/python bench/sync_throughput.py                      # 5,000 shipments, 200 ms
    .venv/bin/python bench/sync_throughput.py --zero-latency       # the engine's own cost
    .venv/bin/python bench/sync_throughput.py --in-process         # ... without HTTP at all
    .venv/bin/python bench/sync_throughput.py --zero-latency --idle 95000   # RSS, 100k rows
    .venv/bin/python bench/sync_throughput.py --database postgresql://postgres@127.0.0.1/bench
    .venv/bin/python bench/sync_throughput.py --providers usps --rate 10 --shipments 350 \
        [--usps-api-version v3]                                     # USPS calls per shipment

`--idle M` adds M shipments that are not due (they sit in the table, unscheduled for a
day), so peak RSS can be checked with a large table.

`--quota PROVIDER=WINDOWS` (repeatable) makes the emulator enforce that allowance (answering
429 the carrier's way once spent) and gives the engine the same `<PROVIDER>_QUOTA`; after the
measured pass a second engine (a restart, or `sync` from cron) tries those providers' shipments
again. The report shows, per provider, the calls spent against the daily window (the target:
within 2% of it), the 429s, and the second engine's calls (the target: none). Without it the
engine gets no quota windows, so the throughput figures measure the request rate alone.
The windows are not paced across their length here (`QUOTA_PACING=false`): a run of a minute
is judged by spending the whole window; `bench/freshness.py` measures pacing.

    .venv/bin/python bench/sync_throughput.py --providers dhl,fedex,ups --rate 40 \
        --latency 50 --shipments 3000 --quota dhl=400/day@00:00Z --quota fedex=120/day@00:00Z
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, func, insert, make_url, select, text

from parcelwatch.carriers.providers import provider_spec
from parcelwatch.carriers.quotas import parse_quota
from parcelwatch.carriers.registry import open_registry, options
from parcelwatch.config import Settings, load_settings
from parcelwatch.db import create_db_engine
from parcelwatch.domain import ShipmentStatus, utcnow
from parcelwatch.logs import configure_logging
from parcelwatch.migrate import upgrade
from parcelwatch.models import Shipment
from parcelwatch.sync.engine import SyncEngine
from parcelwatch.sync.outcomes import PassTrigger
from parcelwatch.sync.selection import Selection
from parcelwatch.sync.testing import FakeProvider, StaticProviders

PROVIDERS = {  # provider -> the parcel carrier code its shipments use
    "usps": "usps",
    "ups": "ups",
    "fedex": "fedex",
    "dhl": "dhl",
    "shipengine": "canada_post",
}


@dataclass
class Plan:
    provider: str
    carrier: str
    concurrency: int
    rate: float
    per_request: int
    own_batch_size: bool  # sized by its own setting (USPS_BATCH_SIZE), not --batch-size
    ceiling: float  # shipments per second
    shipments: int = 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def usps_options(args: argparse.Namespace) -> dict[str, Any]:
    """The USPS settings `--usps-api-version` / `--usps-batch-size` ask for."""
    values: dict[str, Any] = {}
    if getattr(args, "usps_api_version", None):  # bench/api_load.py's arguments have none
        values["usps_api_version"] = args.usps_api_version
    if getattr(args, "usps_batch_size", None):
        values["usps_batch_size"] = args.usps_batch_size
    return values


def plans(args: argparse.Namespace, batch_size: int) -> list[Plan]:
    defaults = load_settings(_env_file=None, **usps_options(args))
    result = []
    for provider in args.providers:
        carrier, spec = PROVIDERS[provider], provider_spec(provider)
        concurrency = args.concurrency or getattr(defaults, f"{provider}_max_concurrency")
        rate = args.rate if args.rate is not None else getattr(defaults, f"{provider}_rate_limit")
        per_request = spec.numbers_per_request(options(spec, defaults), batch_size)
        own = spec.provider_class.own_batch_size
        by_latency = concurrency / (args.latency / 1000) if args.latency else float("inf")
        ceiling = min(rate, by_latency) * per_request
        result.append(Plan(provider, carrier, concurrency, rate, per_request, own, ceiling))
    total_ceiling = sum(p.ceiling for p in result)
    remaining = args.shipments
    for plan in result[:-1]:
        plan.shipments = round(args.shipments * plan.ceiling / total_ceiling)
        remaining -= plan.shipments
    result[-1].shipments = remaining
    return result


def load(db: Engine, plan_list: list[Plan], idle: int) -> None:
    now = utcnow()
    later = now + timedelta(days=1)
    rows: list[dict[str, Any]] = []

    def flush() -> None:
        with db.begin() as connection:
            connection.execute(insert(Shipment), rows)
        rows.clear()

    def row(carrier: str, index: int, due: bool) -> dict[str, Any]:
        return {
            "carrier": carrier,
            "tracking_number": f"BENCH{carrier.upper().replace('_', '')}{index:09d}",
            "status": ShipmentStatus.PENDING,
            "created_at": now,
            "updated_at": now,
            "next_check_at": now if due else later,
            "auto_refresh_enabled": True,
            "auto_refresh_count": 0,
            "auto_refresh_fail_count": 0,
        }

    index = 0
    for plan in plan_list:
        for _ in range(plan.shipments):
            index += 1
            rows.append(row(plan.carrier, index, True))
            if len(rows) >= 5000:
                flush()
    for number in range(idle):
        index += 1
        rows.append(row(plan_list[number % len(plan_list)].carrier, index, False))
        if len(rows) >= 5000:
            flush()
    if rows:
        flush()


def start_emulator(
    args: argparse.Namespace, port: int, plan_list: list[Plan]
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-c",
        "import typer; from parcelwatch.emulator.cli import emulator; typer.run(emulator)",
        "--port",
        str(port),
        "--seed",
        "1",
        "--head-start",
        args.head_start,
    ]
    if args.latency:
        command += ["--latency", f"{args.latency}ms"]
    if not args.zero_latency:
        for plan in plan_list:
            command += ["--rate-limit", f"{plan.provider}={args.emulator_rate or plan.rate}"]
    for provider, windows in args.quotas.items():
        command += ["--quota", f"{provider}={windows}"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/_emulator/stats", timeout=1)
            return process
        except httpx.HTTPError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("the emulator did not start") from None
            time.sleep(0.1)


def settings_for(args: argparse.Namespace, url: str, plan_list: list[Plan]) -> Settings:
    values: dict[str, Any] = {
        "database_url": args.database_url,
        "auto_update_enabled": False,
        "auto_update_batch_size": args.batch_size,
        "log_level": "warning",
        "_env_file": None,
        **usps_options(args),
    }
    for provider in PROVIDERS:
        values[f"{provider}_base_url"] = f"{url}/{provider}"
    values |= {
        "usps_client_id": "bench",
        "usps_client_secret": "bench",
        "ups_client_id": "bench",
        "ups_client_secret": "bench",
        "fedex_api_key": "bench",
        "fedex_secret_key": "bench",
        "dhl_api_key": "bench",
        "shipengine_api_key": "bench",
    }
    for plan in plan_list:
        values[f"{plan.provider}_max_concurrency"] = plan.concurrency
        values[f"{plan.provider}_rate_limit"] = plan.rate
    for provider in PROVIDERS:  # no counted windows unless asked: they would end the pass early
        values[f"{provider}_quota"] = args.quotas.get(provider, "")
    # A run of a minute measures the counting of a whole window, so it is not paced across
    # the day (bench/freshness.py measures pacing, on a simulated clock).
    values["quota_pacing"] = False
    return load_settings(**values)


@dataclass
class Measured:
    summary: Any
    wall: float
    cpu: float
    emulator_cpu: float | None
    tracking_calls: dict[str, int]  # per provider, in the measured pass
    second_pass_calls: int | None = None  # a restarted engine's calls to the quota'd providers
    # per provider: seconds from the pass's start to its last shipment written
    finished: dict[str, float] = field(default_factory=dict)


def emulator_tracking_calls(port: int) -> dict[str, int]:
    """Tracking requests the emulator has answered so far, per provider (token calls aside)."""
    stats = httpx.get(f"http://127.0.0.1:{port}/_emulator/stats").json()
    requests, tokens = stats["requests"], stats["tokens_issued"]
    return {provider: requests.get(provider, 0) - tokens.get(provider, 0) for provider in PROVIDERS}


async def run_engine(
    settings: Settings,
    db: Engine,
    plan_list: list[Plan],
    *,
    in_process: bool = False,
    repoll: bool = False,
    emulator: subprocess.Popen[bytes] | None = None,
    port: int = 0,
    quota_carriers: list[str] | None = None,
) -> Measured:
    """One measured pass; with `repoll`, a first pass loads every shipment's events and the
    measured one polls them all again (`--force`), as the updater does all day."""
    async with AsyncExitStack() as stack:
        fakes: dict[str, FakeProvider] = {}
        if in_process:  # the engine and the database alone: carriers answer from memory
            fakes = {
                plan.carrier: FakeProvider(
                    code=plan.provider,
                    max_batch=plan.per_request,
                    own_batch_size=plan.own_batch_size,
                )
                for plan in plan_list
            }
            providers: Any = StaticProviders(fakes)
        else:
            providers = await stack.enter_async_context(open_registry(settings))
        engine = SyncEngine(settings=settings, db=db, providers=providers, kind="bench")
        stack.push_async_callback(engine.aclose)
        selection = None
        if repoll:
            await engine.run_pass(trigger=PassTrigger.BENCH)
            selection = Selection(force=True)

        def calls_so_far() -> dict[str, int]:
            if in_process:
                return {plan.provider: fakes[plan.carrier].requests for plan in plan_list}
            return emulator_tracking_calls(port)

        calls_before = calls_so_far()
        emulator_before = process_cpu(emulator)
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        started_at = utcnow()
        summary = await engine.run_pass(selection, trigger=PassTrigger.BENCH)
        wall = time.perf_counter() - wall_before
        finished = last_written(db, plan_list, started_at)
        cpu = time.process_time() - cpu_before
        emulator_after = process_cpu(emulator)
        used = (
            emulator_after - emulator_before
            if emulator_after is not None and emulator_before is not None
            else None
        )
        calls_after = calls_so_far()
        calls = {
            plan.provider: calls_after[plan.provider] - calls_before[plan.provider]
            for plan in plan_list
        }
        second = None
        if quota_carriers:  # a restart: the spent allowance must not be spent again
            again = SyncEngine(settings=settings, db=db, providers=providers, kind="bench")
            stack.push_async_callback(again.aclose)
            retry = Selection(force=True, carriers=quota_carriers)
            second = (await again.run_pass(retry, trigger=PassTrigger.BENCH)).api_calls
        return Measured(summary, wall, cpu, used, calls, second, finished)


def last_written(db: Engine, plan_list: list[Plan], since: datetime) -> dict[str, float]:
    """Per provider, seconds from `since` to the last write of one of its shipments (where
    the pass lost time: each provider's own throughput against its own ceiling)."""
    query = (
        select(Shipment.carrier, func.max(Shipment.last_auto_refresh))
        .where(Shipment.last_auto_refresh >= since)
        .group_by(Shipment.carrier)
    )
    with db.connect() as connection:
        last = {row[0]: row[1] for row in connection.execute(query) if row[1] is not None}
    return {
        plan.provider: (last[plan.carrier] - since).total_seconds()
        for plan in plan_list
        if plan.carrier in last
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shipments", type=int, default=5000)
    parser.add_argument("--latency", type=float, default=200.0, help="emulator latency, ms")
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="requests/s for every provider (default: each one's <CARRIER>_RATE_LIMIT default)",
    )
    parser.add_argument("--emulator-rate", type=float, default=None, help="emulator's limit")
    parser.add_argument("--concurrency", type=int, default=None, help="default: settings")
    parser.add_argument("--batch-size", type=int, default=10, help="AUTO_UPDATE_BATCH_SIZE")
    parser.add_argument(
        "--usps-api-version", choices=["v3r2", "v3"], default=None, help="USPS_API_VERSION"
    )
    parser.add_argument("--usps-batch-size", type=int, default=None, help="USPS_BATCH_SIZE")
    parser.add_argument("--providers", default=",".join(PROVIDERS))
    parser.add_argument("--zero-latency", action="store_true", help="the engine's own cost")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="no emulator, no HTTP: in-memory carriers (implies --zero-latency)",
    )
    parser.add_argument("--idle", type=int, default=0, help="extra shipments not due")
    parser.add_argument(
        "--repoll",
        action="store_true",
        help="measure a second, forced pass over shipments whose events are stored already",
    )
    parser.add_argument("--head-start", default="2h", help="storyline head start")
    parser.add_argument("--database", default=None, help="a database URL (default: SQLite)")
    parser.add_argument(
        "--quota",
        action="append",
        default=[],
        metavar="PROVIDER=WINDOWS",
        help="an allowance the emulator enforces and the engine is given (<PROVIDER>_QUOTA)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    args.quotas = dict(item.split("=", 1) for item in args.quota)
    configure_logging("warning", "console")  # logs to stderr; stdout carries the report
    args.providers = [p.strip() for p in args.providers.split(",") if p.strip()]
    args.zero_latency = args.zero_latency or args.in_process
    if args.zero_latency:
        args.latency = 0.0
        args.rate = 1_000_000.0
        args.concurrency = args.concurrency or 16

    plan_list = plans(args, args.batch_size)
    with (
        scratch_database(args.database) as scratch_url,
        tempfile.TemporaryDirectory(prefix="parcelwatch-bench-") as workdir,
    ):  # the SQLite file goes with its folder
        args.database_url = scratch_url or f"sqlite:///{Path(workdir) / 'bench.db'}"
        probe = load_settings(database_url=args.database_url, _env_file=None)
        db = create_db_engine(probe.sqlalchemy_url)
        upgrade(db)
        load(db, plan_list, args.idle)

        port = free_port()
        emulator = None if args.in_process else start_emulator(args, port, plan_list)
        try:
            settings = settings_for(args, f"http://127.0.0.1:{port}", plan_list)
            quota_carriers = [PROVIDERS[p][0] for p in args.quotas]
            measured = asyncio.run(
                run_engine(
                    settings,
                    db,
                    plan_list,
                    in_process=args.in_process,
                    repoll=args.repoll,
                    emulator=emulator,
                    port=port,
                    quota_carriers=quota_carriers,
                )
            )
            stats: dict[str, Any] = {}
            if emulator is not None:
                stats = httpx.get(f"http://127.0.0.1:{port}/_emulator/stats").json()
        finally:
            if emulator is not None:
                emulator.terminate()
                emulator.wait(10)
            db.dispose()
    report(args, plan_list, measured, stats)


@contextmanager
def scratch_database(server_url: str | None) -> Iterator[str | None]:
    """A database of its own on that server (`--database`), dropped at the end; None for
    the default (a SQLite file in a temporary folder)."""
    if server_url is None:
        yield None
        return
    scratch = f"parcelwatch_bench_{os.getpid()}"
    server = load_settings(database_url=server_url, _env_file=None).sqlalchemy_url
    admin = create_db_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{scratch}"'))
    try:
        yield make_url(server_url).set(database=scratch).render_as_string(False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
        admin.dispose()


def process_cpu(process: subprocess.Popen[bytes] | None) -> float | None:
    """CPU seconds a child has used so far (Linux /proc), or None."""
    if process is None:
        return None
    try:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def cpu_reference_ms() -> float:
    """A fixed pure-Python loop, best of 3: how fast this machine runs Python, so figures
    from different machines can be compared (lower is faster)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for number in range(2_000_000):
            total += number
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def quota_report(
    args: argparse.Namespace, stats: dict[str, Any], second_pass_calls: int | None
) -> dict[str, Any] | None:
    """Per provider given `--quota`: its daily (else longest) window, the tracking calls the
    emulator answered (spent; 429s and token requests left out), their share of the window,
    429s, and the restart's calls."""
    if not args.quotas:
        return None
    found: dict[str, Any] = {}
    for provider, windows in args.quotas.items():
        window = parse_quota(windows)[-1]
        refused = stats.get("rate_limited", {}).get(provider, 0)
        spent = stats.get("requests", {}).get(provider, 0) - refused
        spent -= stats.get("tokens_issued", {}).get(provider, 0)
        found[provider] = {
            "window": window.text,
            "limit": window.amount,
            "spent": spent,
            "spent_share": round(spent / window.amount, 4),
            "within_2_percent": abs(spent - window.amount) <= 0.02 * window.amount,
            "http_429": stats.get("rate_limited", {}).get(provider, 0),
        }
    found["restart_calls"] = second_pass_calls
    return found


def report(
    args: argparse.Namespace, plan_list: list[Plan], measured: Measured, stats: dict[str, Any]
) -> None:
    summary, wall, cpu, emulator_cpu = (
        measured.summary,
        measured.wall,
        measured.cpu,
        measured.emulator_cpu,
    )
    updates = summary.synced
    throughput = updates / wall if wall else 0.0
    ceiling = sum(plan.ceiling for plan in plan_list)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "database": args.database_url.split(":")[0],
        "shipments": args.shipments,
        "repoll": args.repoll,
        "idle_shipments": args.idle,
        "latency_ms": args.latency,
        "rate_limit_per_provider": None if args.zero_latency else (args.rate or "defaults"),
        "providers": {
            plan.provider: {
                "shipments": plan.shipments,
                "concurrency": plan.concurrency,
                "numbers_per_request": plan.per_request,
                "ceiling_per_s": None if args.zero_latency else round(plan.ceiling, 1),
                "tracking_calls": measured.tracking_calls.get(plan.provider),
                "calls_per_shipment": (
                    round(measured.tracking_calls.get(plan.provider, 0) / plan.shipments, 3)
                    if plan.shipments
                    else None
                ),
                "seconds": round(measured.finished.get(plan.provider, 0.0), 2),
                "ratio": (
                    round(plan.shipments / measured.finished[plan.provider] / plan.ceiling, 3)
                    # a handful of calls measures the latency, not the rate
                    if measured.finished.get(plan.provider)
                    and measured.tracking_calls.get(plan.provider, 0) >= 10
                    and plan.provider not in (args.quotas or {})  # stopped by its quota
                    and not args.zero_latency
                    else None
                ),
            }
            for plan in plan_list
        },
        "outcome": summary.outcome,
        "updated": summary.updated,
        "unchanged": summary.unchanged,
        "not_found": summary.not_found,
        "failed": summary.failed,
        "deferred": summary.deferred,
        "events_added": summary.events_added,
        "api_calls": summary.api_calls,
        "retries": summary.retries,
        "seconds": round(wall, 2),
        "shipments_per_s": round(throughput, 1),
        "ceiling_per_s": None if args.zero_latency else round(ceiling, 1),
        "ratio": None if args.zero_latency else round(throughput / ceiling, 3),
        "http_429_received": stats.get("rate_limited_total", 0),
        "emulator_requests": stats.get("requests_total", 0),
        "cpu_s_per_1000_updates": round(cpu / updates * 1000, 3) if updates else None,
        "emulator_cpu_s_per_1000_updates": (
            round(emulator_cpu / updates * 1000, 3)
            if updates and emulator_cpu is not None
            else None
        ),
        "quotas": quota_report(args, stats, measured.second_pass_calls),
        "peak_rss_mb": round(peak_rss_mb, 1),
        "cpu_reference_ms": cpu_reference_ms(),
        "pid": os.getpid(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for key, value in result.items():
        if key in ("providers", "quotas") and value:
            print(key)
            for provider, row in value.items():
                print(f"  {provider:11} {row}")
        else:
            print(f"{key:24} {value}")


if __name__ == "__main__":
    main()
