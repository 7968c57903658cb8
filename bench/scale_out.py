"""Several `parcelwatch worker` processes over PostgreSQL and Redis, against the emulator.

1. **Latency-bound scaling**: the same N UPS shipments (3,000 by default) synced by 1, then 2,
   then 4 workers (each `--concurrency C` requests in flight, the emulator answering every
   request after `--latency` ms, budgets far above what C / latency can spend): shipments/s of
   each, the speed-up over one worker, double polls (the emulator's per-number counts: must be
   0), 429s (must be 0), and the CPU seconds the workers and the emulator used. Each
   run starts paused (the pause kept in the database), waits for every worker's heartbeat, then
   resumes: process start-up is not measured.
2. **A shared budget**: UPS at `--budget-rate` requests a second shared through Redis, the
   emulator refusing anything faster with 429, 4 workers: the total rate, its ratio to the
   budget (target >= 0.95), 429s (target 0).
3. **Kill test**: 4 workers; `kill -9` of one of them `--kills` times during the run (a new
   one started each time, as a supervisor would): every shipment synced, no number polled
   twice except those the killed worker had leased and not written (never while a lease was
   live), no event stored twice, and how long the killed worker's leases stayed held (taken
   over at the survivors' next heartbeat, on this host as soon as its process is gone,
   elsewhere after three missed heartbeats; never the 10-minute lease).

    .venv/bin/python bench/scale_out.py                  # all three parts, ~8 minutes
    .venv/bin/python bench/scale_out.py --shipments 4000 --parts scaling
    .venv/bin/python bench/scale_out.py --database postgresql://postgres@127.0.0.1:5432/postgres \\
        --redis redis://127.0.0.1:6379/12

Exits 1 when a target is missed. Each worker costs CPU in proportion to its rate (about 5 to
10 CPU ms a shipment with PostgreSQL's round trips), so on a 2-core machine the scaling part keeps
each worker's rate low: 4 requests in flight at 200 ms, 20 shipments/s a worker, 80/s for four.
The ratio then shows the design (claims that never wait on each other) rather than the cores.
Over 20,000 shipments (`--shipments 20000`) one worker takes about 1,100 s at that rate.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sync_throughput import (  # noqa: E402 - the helpers beside this file
    Plan,
    free_port,
    load,
    process_cpu,
    scratch_database,
    start_emulator,
)

from parcelwatch.config import load_settings  # noqa: E402
from parcelwatch.db import create_db_engine  # noqa: E402
from parcelwatch.migrate import upgrade  # noqa: E402
from parcelwatch.models import EngineHeartbeat, Shipment, TrackingEvent  # noqa: E402
from parcelwatch.sync.control import set_paused  # noqa: E402

PARCELWATCH = str(Path(sys.executable).with_name("parcelwatch"))


@dataclass
class Run:
    workers: int
    shipments: int
    seconds: float = 0.0
    double_polls: int = 0
    unpolled: int = 0
    rate_limited: int = 0
    worker_cpu: float = 0.0
    emulator_cpu: float = 0.0
    exit_codes: list[int] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.shipments / self.seconds if self.seconds else 0.0


class Bench:
    def __init__(self, args: argparse.Namespace, database_url: str, db: Engine) -> None:
        self.args = args
        self.database_url = database_url
        self.db = db
        self.port = free_port()
        self.emulator: subprocess.Popen[bytes] | None = None

    # -- the emulator ----------------------------------------------------------------------
    @contextmanager
    def emulating(self, rate_limit: float) -> Iterator[None]:
        plan = Plan("ups", "ups", 1, rate_limit, 1, False, 0.0)
        options = argparse.Namespace(
            head_start="2h",
            latency=self.args.latency,
            zero_latency=False,
            emulator_rate=rate_limit,
            quotas={},
        )
        self.emulator = start_emulator(options, self.port, [plan])
        try:
            yield
        finally:
            self.emulator.terminate()
            self.emulator.wait(10)
            self.emulator = None

    def emulator_stats(self) -> dict[str, Any]:
        return httpx.get(f"http://127.0.0.1:{self.port}/_emulator/stats", timeout=10).json()  # type: ignore[no-any-return]

    # -- the database ----------------------------------------------------------------------
    def reload(self, count: int) -> None:
        with self.db.begin() as connection:
            connection.execute(
                text("TRUNCATE tracking_events, shipments, sync_runs, engine_heartbeats CASCADE")
            )
        load(self.db, [Plan("ups", "ups", 1, 1.0, 1, False, 0.0, shipments=count)], 0)
        with self.db.begin() as connection:
            connection.execute(text("ANALYZE shipments"))

    def synced(self) -> int:
        with self.db.connect() as connection:
            query = select(func.count()).where(Shipment.auto_refresh_count > 0)
            return connection.scalar(query) or 0

    def engines(self) -> dict[int, str]:
        """pid -> engine id of the live heartbeat rows."""
        with self.db.connect() as connection:
            rows = connection.execute(select(EngineHeartbeat.pid, EngineHeartbeat.engine_id))
            return {int(row[0]): str(row[1]) for row in rows}

    def leased_to(self, engine_id: str) -> set[str]:
        with self.db.connect() as connection:
            query = select(Shipment.tracking_number).where(Shipment.lease_owner == engine_id)
            return set(connection.scalars(query))

    # -- workers ---------------------------------------------------------------------------
    def env(self, rate: float, concurrency: int) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TZ")}
        return keep | {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.args.redis,
            "UPS_BASE_URL": f"http://127.0.0.1:{self.port}/ups",
            "UPS_CLIENT_ID": "bench",
            "UPS_CLIENT_SECRET": "bench",
            "UPS_RATE_LIMIT": str(rate),
            "UPS_MAX_CONCURRENCY": str(concurrency),
            "AUTO_UPDATE_BATCH_SIZE": "1",
            "PARCELWATCH_DEMO": "false",
            "LOG_LEVEL": "warning",
            "LOG_FORMAT": "console",
        }

    def start_worker(self, env: dict[str, str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [PARCELWATCH, "worker", "--heartbeat-every", str(self.args.heartbeat)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_for_heartbeats(self, workers: list[subprocess.Popen[bytes]]) -> None:
        deadline = time.monotonic() + 60
        while not {w.pid for w in workers} <= set(self.engines()):
            for worker in workers:
                if worker.poll() is not None:
                    raise SystemExit(f"a worker exited early with {worker.returncode}")
            if time.monotonic() > deadline:
                raise SystemExit("the workers did not report a heartbeat within 60 s")
            time.sleep(0.2)

    def wait_until_synced(self, total: int, timeout: float) -> tuple[float, float]:
        """Seconds until all `total` are synced, and the steady rate: shipments a second
        between 10% and 90% synced (no ramp-up, no tail)."""
        started = time.perf_counter()
        timeline: list[tuple[float, int]] = []
        while True:
            done = self.synced()
            timeline.append((time.perf_counter() - started, done))
            if done >= total:
                break
            if time.perf_counter() - started > timeout:
                raise SystemExit(f"not synced within {timeout:.0f} s: {done} of {total}")
            time.sleep(0.25)
        low = next(point for point in timeline if point[1] >= total * 0.1)
        high = next(point for point in timeline if point[1] >= total * 0.9)
        steady = (high[1] - low[1]) / (high[0] - low[0]) if high[0] > low[0] else 0.0
        return timeline[-1][0], steady

    def measure(self, workers: int, shipments: int, rate: float, concurrency: int) -> Run:
        """Reload `shipments`, start `workers` paused, resume, time until all are synced."""
        self.reload(shipments)
        httpx.post(f"http://127.0.0.1:{self.port}/_emulator/reset", timeout=10)
        set_paused(self.db, paused=True)
        env = self.env(rate, concurrency)
        processes = [self.start_worker(env) for _ in range(workers)]
        run = Run(workers=workers, shipments=shipments)
        try:
            self.wait_for_heartbeats(processes)
            emulator_before = process_cpu(self.emulator) or 0.0
            workers_before = sum(process_cpu(p) or 0.0 for p in processes)
            set_paused(self.db, paused=False)
            run.seconds, steady = self.wait_until_synced(shipments, timeout=shipments / 5 + 120)
            run.extra["steady_shipments_per_second"] = round(steady, 1)
            run.worker_cpu = sum(process_cpu(p) or 0.0 for p in processes) - workers_before
            run.emulator_cpu = (process_cpu(self.emulator) or 0.0) - emulator_before
        finally:
            run.exit_codes = stop(processes)
        self.count_polls(run)
        return run

    def count_polls(self, run: Run) -> dict[str, int]:
        stats = self.emulator_stats()
        counted: dict[str, int] = stats["tracking_numbers"].get("ups", {})
        run.double_polls = sum(count - 1 for count in counted.values() if count > 1)
        run.unpolled = run.shipments - len(counted)
        run.rate_limited = int(stats["rate_limited_total"])
        return counted

    def kill_test(self, shipments: int, concurrency: int, kills: int) -> Run:
        self.reload(shipments)
        httpx.post(f"http://127.0.0.1:{self.port}/_emulator/reset", timeout=10)
        set_paused(self.db, paused=True)
        env = self.env(1000.0, concurrency)
        processes = [self.start_worker(env) for _ in range(4)]
        run = Run(workers=4, shipments=shipments)
        victims_leases: set[str] = set()
        held_for: list[float] = []
        rng = random.Random(16)
        try:
            self.wait_for_heartbeats(processes)
            set_paused(self.db, paused=False)
            started = time.perf_counter()
            expected = self.args.kill_every
            for _ in range(kills):
                time.sleep(expected)
                living = [p for p in processes if p.poll() is None]
                victim = rng.choice(living)
                engine_id = self.engines().get(victim.pid)
                victim.send_signal(signal.SIGKILL)
                victim.wait(10)
                killed_at = time.perf_counter()
                if engine_id is not None:
                    leased = self.leased_to(engine_id)
                    victims_leases |= leased
                    while self.leased_to(engine_id):
                        if time.perf_counter() - killed_at > 900:
                            break
                        time.sleep(0.1)
                    held_for.append(time.perf_counter() - killed_at)
                replacement = self.start_worker(env)
                processes.append(replacement)
            self.wait_until_synced(shipments, timeout=shipments / 5 + 300)
            run.seconds = time.perf_counter() - started
        finally:
            run.exit_codes = stop([p for p in processes if p.poll() is None])
        counted = self.count_polls(run)
        twice = {number for number, count in counted.items() if count > 1}
        with self.db.connect() as connection:
            duplicates = connection.execute(
                select(TrackingEvent.shipment_id, TrackingEvent.dedupe_key)
                .group_by(TrackingEvent.shipment_id, TrackingEvent.dedupe_key)
                .having(func.count() > 1)
            ).all()
            unsynced = connection.scalar(
                select(func.count()).where(Shipment.auto_refresh_count == 0)
            )
            leased = connection.scalar(
                select(func.count()).where(Shipment.lease_owner.is_not(None))
            )
        run.extra = {
            "kills": kills,
            "unsynced": unsynced or 0,
            "polled_twice": len(twice),
            "polled_twice_not_leased_by_a_killed_worker": len(twice - victims_leases),
            "events_stored_twice": len(duplicates),
            "leases_left": leased or 0,
            "killed_leases_held_max_seconds": round(max(held_for, default=0.0), 1),
            "killed_leases_held_mean_seconds": round(sum(held_for) / len(held_for), 1)
            if held_for
            else 0.0,
        }
        return run


def stop(processes: list[subprocess.Popen[bytes]]) -> list[int]:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(30))
        except subprocess.TimeoutExpired:
            process.kill()
            codes.append(process.wait())
    return codes


def describe(run: Run, base: Run | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "workers": run.workers,
        "shipments": run.shipments,
        "seconds": round(run.seconds, 1),
        "shipments_per_second": round(run.rate, 1),
        "double_polls": run.double_polls,
        "unpolled": run.unpolled,
        "http_429": run.rate_limited,
        "worker_cpu_seconds": round(run.worker_cpu, 1),
        "emulator_cpu_seconds": round(run.emulator_cpu, 1),
        "exit_codes": sorted(set(run.exit_codes)),
        **run.extra,
    }
    if base is not None:
        data["speed_up"] = round(run.rate / base.rate, 2) if base.rate else None
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--shipments", type=int, default=3_000)
    parser.add_argument("--latency", type=float, default=200.0, help="emulator latency, ms")
    parser.add_argument("--concurrency", type=int, default=4, help="per worker")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--budget-rate", type=float, default=50.0, help="UPS requests/s")
    parser.add_argument("--budget-shipments", type=int, default=2_000)
    parser.add_argument(
        "--budget-concurrency", type=int, default=20, help="per worker: far above the budget"
    )
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--kill-every", type=float, default=3.0, help="seconds between kills")
    parser.add_argument("--kill-shipments", type=int, default=4_000)
    parser.add_argument("--heartbeat", type=float, default=2.0, help="workers' heartbeat, s")
    parser.add_argument("--parts", default="scaling,budget,kill")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    counts = [int(n) for n in args.workers.split(",")]
    report: dict[str, Any] = {
        "latency_ms": args.latency,
        "concurrency_per_worker": args.concurrency,
    }
    missed: list[str] = []
    with scratch_database(args.database) as url:
        assert url is not None
        db = create_db_engine(load_settings(database_url=url, _env_file=None).sqlalchemy_url)
        upgrade(db)
        bench = Bench(args, url, db)
        try:
            if "scaling" in parts:
                with bench.emulating(rate_limit=100_000.0):
                    runs: list[Run] = []
                    for workers in counts:
                        runs.append(
                            bench.measure(workers, args.shipments, 100_000.0, args.concurrency)
                        )
                        print(json.dumps(describe(runs[-1], runs[0])), file=sys.stderr)
                report["scaling"] = [describe(run, runs[0]) for run in runs]
                last = report["scaling"][-1]
                if counts[-1] == 4 and (last["speed_up"] or 0) < 3.5:
                    missed.append(f"speed-up 1 -> 4 workers {last['speed_up']} < 3.5")
                for run in runs:
                    if run.double_polls or run.rate_limited or run.unpolled:
                        missed.append(f"{run.workers} workers: double polls, 429s or unpolled")
            if "budget" in parts:
                with bench.emulating(rate_limit=args.budget_rate):
                    run = bench.measure(
                        4, args.budget_shipments, args.budget_rate, args.budget_concurrency
                    )
                data = describe(run)
                data["budget_per_second"] = args.budget_rate
                steady = run.extra["steady_shipments_per_second"]
                data["ratio_to_budget"] = round(run.rate / args.budget_rate, 3)
                data["steady_ratio_to_budget"] = round(steady / args.budget_rate, 3)
                report["shared_budget"] = data
                print(json.dumps(data), file=sys.stderr)
                if run.rate_limited or run.double_polls or steady > args.budget_rate:
                    missed.append("shared budget: 429s, double polls or over the budget")
                if data["steady_ratio_to_budget"] < 0.95:
                    missed.append(f"shared budget: steady ratio {data['steady_ratio_to_budget']}")
            if "kill" in parts:
                with bench.emulating(rate_limit=100_000.0):
                    run = bench.kill_test(args.kill_shipments, args.concurrency, args.kills)
                data = describe(run)
                report["kill_test"] = data
                extra = run.extra
                if (
                    extra["unsynced"]
                    or extra["polled_twice_not_leased_by_a_killed_worker"]
                    or extra["events_stored_twice"]
                    or extra["leases_left"]
                    or run.rate_limited
                ):
                    missed.append("kill test: unsynced, doubled or left leased")
        finally:
            db.dispose()
    report["missed"] = missed
    print(json.dumps(report, indent=2))
    raise SystemExit(1 if missed else 0)


if __name__ == "__main__":
    main()
