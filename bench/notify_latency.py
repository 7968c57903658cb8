"""Notification delivery: latency from commit to arrival, throughput, memory while a large
outbox drains, and at-least-once across `kill -9`.

A receiver process (a minimal asyncio HTTP server and an aiosmtpd server, recording when each
message arrives, by its `webhook-id`) stands in for people's endpoints; the dispatcher is
parcelwatch's own, in this process (`latency`, `drain`) or in `parcelwatch serve` processes
(`crash`).

    .venv/bin/python bench/notify_latency.py latency                # 100 changes/s for 20 s
    .venv/bin/python bench/notify_latency.py latency --rate 100 --seconds 20 --email-share 0.1
    .venv/bin/python bench/notify_latency.py drain --notifications 20000   # deliveries/s
    .venv/bin/python bench/notify_latency.py drain --notifications 100000  # RSS while draining
    .venv/bin/python bench/notify_latency.py crash --kills 10       # kill -9 serve 10 times
    .venv/bin/python bench/notify_latency.py latency --real-sync    # through the sync engine

`latency`, `drain` and `crash` measure the dispatcher alone: they write outbox rows
directly, one transaction per change, each followed by the in-process nudge
(`wake_dispatchers()`) that a sync batch fires after its commit; the commit time measured is
that transaction's. `--real-sync` makes the changes through the sync engine against the
carrier emulator instead (the writer enqueues them in its batch transactions), and takes a
notification's `created_at`, written in that transaction, as its commit time.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, func, insert, select

from parcelwatch.accounts.roles import Role
from parcelwatch.accounts.service import create_user
from parcelwatch.config import Settings, load_settings
from parcelwatch.db import create_db_engine, make_session_factory, session_scope
from parcelwatch.domain import utcnow
from parcelwatch.logs import configure_logging
from parcelwatch.migrate import upgrade
from parcelwatch.models import Notification, NotificationChannel, NotificationDelivery
from parcelwatch.notifications.dispatcher import Dispatcher
from parcelwatch.notifications.events import MILESTONE_TYPES
from parcelwatch.notifications.outbox import new_message_id
from parcelwatch.notifications.wakeup import wake_dispatchers

SECRET = "whsec_" + "YmVuY2gtc2VjcmV0LWJlbmNoLXNlY3JldC0xMjM0NTY="


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def poll_until(condition: Any, step: float = 0.05, within: float | None = None) -> None:
    """Wait (in a thread: `await asyncio.to_thread(poll_until, ...)`) until `condition()`."""
    deadline = None if within is None else time.monotonic() + within
    while not condition() and (deadline is None or time.monotonic() < deadline):
        time.sleep(step)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_reference_ms() -> float:
    """A fixed pure-Python loop, best of 3 (as in bench/sync_throughput.py): how fast this
    machine runs Python right now, so figures from different runs can be compared."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for number in range(2_000_000):
            total += number
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# -- the receiver process -------------------------------------------------------------------


async def serve_receiver(http_port: int, smtp_port: int, delay_ms: float, keep: bool) -> None:
    """HTTP: record (webhook-id, arrival time[, body marker]) of every POST and answer 200
    after `delay_ms`; `GET /arrivals` returns them. SMTP: record each message's ids."""
    arrivals: list[list[Any]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if method == "GET" and path == "/arrivals":
                    answer = json.dumps(arrivals).encode()
                else:
                    now = time.time()
                    marker = json.loads(body)["data"]["tracker"]["id"] if keep else None
                    arrivals.append([headers.get("webhook-id"), now, marker])
                    answer = b"ok"
                    if delay_ms:
                        await asyncio.sleep(delay_ms / 1000)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(answer) + answer
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    from aiosmtpd.controller import Controller

    class Mail:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            now = time.time()
            message = email.message_from_bytes(envelope.content)
            for message_id in str(message.get("X-Parcelwatch-Message-Ids", "")).split():
                arrivals.append([message_id, now, None])
            return "250 OK"

    smtp = Controller(Mail(), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    server = await asyncio.start_server(handle, "127.0.0.1", http_port, backlog=1024)
    async with server:
        await server.serve_forever()


@contextmanager
def receiver(delay_ms: float = 0.0, keep: bool = False) -> Iterator[tuple[str, int]]:
    http_port, smtp_port = free_port(), free_port()
    args = [sys.executable, __file__, "receiver", "--port", str(http_port)]
    args += ["--smtp-port", str(smtp_port), "--delay-ms", str(delay_ms)]
    process = subprocess.Popen(args + (["--keep"] if keep else []))
    url = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 90  # a loaded machine imports slowly
        while True:
            try:
                httpx.get(f"{url}/arrivals", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the receiver did not start"
                time.sleep(0.1)
        yield url, smtp_port
    finally:
        process.terminate()
        process.wait(timeout=10)


def arrivals(url: str) -> list[list[Any]]:
    return httpx.get(f"{url}/arrivals", timeout=60).json()  # type: ignore[no-any-return]


# -- the outbox ----------------------------------------------------------------------------


class Outbox:
    """One person with a webhook channel (and an email one) in a fresh database; writes
    notifications as the enqueue does: a notification and its delivery, due now."""

    def __init__(self, url: str, receiver_url: str) -> None:
        self.url = url
        self.db = create_db_engine(url)
        upgrade(self.db)
        sessions = make_session_factory(self.db)
        with session_scope(sessions, write=True) as session:
            user = create_user(session, name="bench", role=Role.OWNER, password=None)
            self.user_id = user.id
            webhook = NotificationChannel(
                user_id=user.id,
                kind="webhook",
                name="bench",
                target=f"{receiver_url}/hook",
                # every milestone, for --real-sync (the other modes write rows directly)
                event_types=[event_type.value for event_type in MILESTONE_TYPES],
                secret=SECRET,
            )
            email = NotificationChannel(
                user_id=user.id,
                kind="email",
                name="mail",
                target="bench@example.org",
                event_types=[],
            )
            session.add_all([webhook, email])
            session.flush()
            self.webhook_id, self.email_id = webhook.id, email.id
        self.sequence = 0

    def rows(self, count: int, channel_id: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        now = utcnow()
        made = []
        for _ in range(count):
            self.sequence += 1
            payload = {
                "type": "shipment.out_for_delivery",
                "timestamp": now.isoformat(),
                "version": 1,
                "data": {
                    "shipment": {
                        "id": self.sequence,
                        "carrier": "ups",
                        "status": "out_for_delivery",
                        "tracking_number": f"1ZBENCH{self.sequence:010d}",
                    },
                    "tracker": {"id": self.sequence, "description": "bench", "labels": []},
                    "previous_status": "in_transit",
                    "events": [],
                },
            }
            notification = {
                "user_id": self.user_id,
                "event_type": "shipment.out_for_delivery",
                "dedupe_key": f"bench:{self.sequence}",
                "urgent": False,
                "payload": payload,
                "created_at": now,
            }
            delivery = {
                "channel_id": channel_id,
                "message_id": new_message_id(),
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            made.append((notification, delivery))
        return made

    def write(self, count: int, channel_id: int | None = None) -> list[tuple[str, int, float]]:
        """One transaction: `count` notifications, each with its delivery; returns
        (message_id, marker, commit time)."""
        made = self.rows(count, channel_id or self.webhook_id)
        with self.db.connect().execution_options(sqlite_begin="IMMEDIATE") as connection:
            with connection.begin():
                ids = (
                    connection.execute(
                        insert(Notification).returning(
                            Notification.id, sort_by_parameter_order=True
                        ),
                        [n for n, _ in made],
                    )
                    .scalars()
                    .all()
                )
                connection.execute(
                    insert(NotificationDelivery),
                    [d | {"notification_id": i} for (_, d), i in zip(made, ids, strict=True)],
                )
        committed = time.time()
        return [
            (d["message_id"], n["payload"]["data"]["tracker"]["id"], committed) for n, d in made
        ]

    def pending(self) -> int:
        with self.db.connect() as connection:
            return int(
                connection.scalar(
                    select(func.count()).where(NotificationDelivery.status == "pending")
                )
                or 0
            )


def settings_for(url: str, smtp_port: int, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "auto_update_enabled": False,
        "notify_allow_private_networks": True,
        "notify_group_window": timedelta(0),
        "alert_smtp_host": "127.0.0.1",
        "alert_smtp_port": smtp_port,
        "_env_file": None,
    }
    return load_settings(**(values | overrides))


@contextmanager
def scratch(database: str | None) -> Iterator[str]:
    if database:
        yield database
        return
    with tempfile.TemporaryDirectory() as directory:
        yield f"sqlite:///{directory}/notify-bench.db"


# -- latency -------------------------------------------------------------------------------


async def latency(args: argparse.Namespace) -> dict[str, Any]:
    with scratch(args.database) as url, receiver() as (receiver_url, smtp_port):
        outbox = Outbox(url, receiver_url)
        dispatcher = Dispatcher(settings_for(url, smtp_port), outbox.db)
        dispatcher.start()
        committed: dict[str, float] = {}
        peak = [0]
        done = threading.Event()

        def produce() -> None:
            interval = 1.0 / args.rate
            start = time.monotonic()
            for n in range(int(args.rate * args.seconds)):
                time.sleep(max(0.0, start + n * interval - time.monotonic()))
                email = random.random() < args.email_share
                for message_id, _, at in outbox.write(1, outbox.email_id if email else None):
                    committed[message_id] = at
                wake_dispatchers()  # what the enqueue does after its commit
            done.set()

        def watch_depth() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], outbox.pending())
                time.sleep(0.1)

        started = time.monotonic()
        threads = [threading.Thread(target=produce), threading.Thread(target=watch_depth)]
        for thread in threads:
            thread.start()
        await asyncio.to_thread(done.wait)
        await asyncio.to_thread(poll_until, lambda: not outbox.pending())
        elapsed = time.monotonic() - started
        await dispatcher.stop()
        for thread in threads:
            thread.join()
        seen = {row[0]: row[1] for row in arrivals(receiver_url)}
    waits = [seen[m] - at for m, at in committed.items() if m in seen]
    return {
        "mode": "latency (outbox rows written directly, one transaction per change)",
        "changes": len(committed),
        "rate_per_s": args.rate,
        "arrived": len(waits),
        "p50_ms": round(percentile(waits, 0.50) * 1000, 1),
        "p99_ms": round(percentile(waits, 0.99) * 1000, 1),
        "max_ms": round(max(waits) * 1000, 1),
        "deliveries_per_s": round(len(waits) / elapsed, 1),
        "outbox_peak_depth": peak[0],
        "cpu_reference_ms": cpu_reference_ms(),
    }


# -- drain: throughput and memory -----------------------------------------------------------


async def drain(args: argparse.Namespace) -> dict[str, Any]:
    with scratch(args.database) as url, receiver() as (receiver_url, smtp_port):
        outbox = Outbox(url, receiver_url)
        for _ in range(0, args.notifications, 5000):
            outbox.write(min(5000, args.notifications - outbox.sequence))
        dispatcher = Dispatcher(settings_for(url, smtp_port), outbox.db)
        rss_before = rss_mb()
        started, cpu_before = time.monotonic(), cpu_seconds()
        dispatcher.start()
        samples: list[tuple[int, float]] = []
        while left := outbox.pending():
            samples.append((args.notifications - left, rss_mb()))
            await asyncio.sleep(0.5)
        elapsed, cpu = time.monotonic() - started, cpu_seconds() - cpu_before
        await dispatcher.stop()
        got = len(arrivals(receiver_url))
    marks = {}
    for share in (0.1, 0.25, 0.5, 0.75, 0.9):
        done = next((rss for count, rss in samples if count >= share * args.notifications), None)
        marks[f"rss_mb_at_{int(share * 100)}pct"] = round(done or 0.0, 1)
    return {
        "mode": "drain (outbox rows written directly before the dispatcher starts)",
        "notifications": args.notifications,
        "arrived": got,
        "seconds": round(elapsed, 2),
        "deliveries_per_s": round(got / elapsed, 1),
        "dispatcher_cpu_ms_per_delivery": round(cpu * 1000 / max(got, 1), 3),
        "cpu_reference_ms": cpu_reference_ms(),
        "rss_mb_before": round(rss_before, 1),
        **marks,
        "rss_mb_end": round(rss_mb(), 1),
    }


# -- crash: kill -9 the server while deliveries are in flight -------------------------------


def start_serve(url: str, smtp_port: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": url,
        "AUTO_UPDATE_ENABLED": "false",
        "NOTIFY_ENABLED": "true",
        "NOTIFY_ALLOW_PRIVATE_NETWORKS": "true",
        "NOTIFY_GROUP_WINDOW": "0",
        "ALERT_SMTP_HOST": "127.0.0.1",
        "ALERT_SMTP_PORT": str(smtp_port),
        "LOG_LEVEL": "warning",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "parcelwatch", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120  # a loaded machine starts it slowly
    while True:
        try:
            httpx.get(f"{base}/healthz", timeout=1)
            return process, base
        except httpx.TransportError:
            assert process.poll() is None, "serve exited"
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)


async def crash(args: argparse.Namespace) -> dict[str, Any]:
    with scratch(args.database) as url, receiver(args.delay_ms, keep=True) as (rurl, smtp_port):
        outbox = Outbox(url, rurl)
        committed = {m: marker for m, marker, _ in outbox.write(args.notifications)}
        kills = []
        for _ in range(args.kills):
            process, _ = start_serve(url, smtp_port)
            before = len(arrivals(rurl))
            for message_id, marker, _ in outbox.write(100):  # committed while it runs
                committed[message_id] = marker
            await asyncio.to_thread(
                poll_until, lambda n=before: len(arrivals(rurl)) >= n + 50, 0.05, 30.0
            )
            await asyncio.sleep(random.uniform(0.1, 0.6))
            in_flight = _leased(outbox.db)
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills.append(in_flight)
        process, _ = start_serve(url, smtp_port)  # the survivor drains, leases run out (2 min)
        await asyncio.to_thread(poll_until, lambda: not outbox.pending(), 0.5, args.drain_timeout)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        got = arrivals(rurl)
    ids = [row[0] for row in got]
    markers: dict[str, set[int]] = {}
    for message_id, _, marker in got:
        markers.setdefault(message_id, set()).add(marker)
    missing = set(committed) - set(ids)
    invented = set(ids) - set(committed)
    mislabelled = [m for m, seen in markers.items() if seen != {committed.get(m)}]
    return {
        "mode": "crash (outbox rows written directly; `parcelwatch serve` killed with SIGKILL)",
        "kills": args.kills,
        "leased_at_each_kill": kills,
        "committed": len(committed),
        "arrivals": len(ids),
        "distinct_arrived": len(set(ids)),
        "duplicates": len(ids) - len(set(ids)),
        "missing": len(missing),
        "invented": len(invented),
        "duplicates_with_another_body": len(mislabelled),
        "pending_left": outbox.pending(),
        "ok": not missing and not invented and not mislabelled,
    }


def _leased(db: Engine) -> int:
    with db.connect() as connection:
        return int(
            connection.scalar(
                select(func.count()).where(
                    NotificationDelivery.status == "pending",
                    NotificationDelivery.lease_owner.is_not(None),
                )
            )
            or 0
        )


# -- through a real sync (needs the enqueue) -----------------------------------------------


def start_emulator(port: int) -> subprocess.Popen[bytes]:
    command = "import typer; from parcelwatch.emulator.cli import emulator; typer.run(emulator)"
    process = subprocess.Popen(
        [sys.executable, "-c", command, "--port", str(port), "--seed", "1", "--head-start", "2d"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 90
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/_emulator/stats", timeout=1)
            return process
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise SystemExit("the emulator did not start") from None
            time.sleep(0.1)


async def real_sync(args: argparse.Namespace) -> dict[str, Any]:
    """Shipments change status through sync passes against the emulator (UPS, paced at
    `--rate` calls a second); each notification's `created_at`, written in the sync batch's
    transaction just before its commit, is taken as its commit time."""
    from parcelwatch.carriers.registry import open_registry
    from parcelwatch.shipments.service import register_shipment
    from parcelwatch.sync.engine import SyncEngine

    shipments = int(args.rate * args.seconds)
    emulator_port = free_port()
    emulator = start_emulator(emulator_port)
    try:
        with scratch(args.database) as url, receiver() as (receiver_url, smtp_port):
            outbox = Outbox(url, receiver_url)
            with session_scope(make_session_factory(outbox.db), write=True) as session:
                for n in range(shipments):
                    register_shipment(
                        session,
                        tracking_number=f"1Z999AA1{n:010d}",
                        carrier="ups",
                        owner_id=outbox.user_id,
                    )
            emulator_url = f"http://127.0.0.1:{emulator_port}"
            settings = settings_for(
                url,
                smtp_port,
                ups_base_url=f"{emulator_url}/ups",
                ups_client_id="bench",
                ups_client_secret="bench",
                ups_rate_limit=args.rate,
                ups_quota="",
            )
            dispatcher = Dispatcher(settings, outbox.db)
            dispatcher.start()
            started = time.monotonic()
            async with open_registry(settings) as registry:
                engine = SyncEngine(settings=settings, db=outbox.db, providers=registry)
                try:
                    summary = await engine.run_pass()
                finally:
                    engine.close()
            await asyncio.to_thread(poll_until, lambda: not outbox.pending())
            elapsed = time.monotonic() - started
            await dispatcher.stop()
            with outbox.db.connect() as connection:
                written = connection.execute(
                    select(NotificationDelivery.message_id, Notification.created_at).join(
                        Notification, Notification.id == NotificationDelivery.notification_id
                    )
                ).all()
            seen = {row[0]: row[1] for row in arrivals(receiver_url)}
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
    if not written:
        raise SystemExit(
            f"the sync pass updated {summary.updated} of {shipments} shipments, and no "
            "notification was enqueued"
        )
    waits = [seen[m] - at.timestamp() for m, at in written if m in seen]
    return {
        "mode": "latency through a real sync against the emulator",
        "shipments": shipments,
        "notifications": len(written),
        "arrived": len(waits),
        "p50_ms": round(percentile(waits, 0.50) * 1000, 1),
        "p99_ms": round(percentile(waits, 0.99) * 1000, 1),
        "deliveries_per_s": round(len(waits) / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--database", default=None, help="a database URL (default: SQLite)")
    common.add_argument("--json", action="store_true")
    lat = sub.add_parser("latency", parents=[common])
    lat.add_argument("--rate", type=float, default=100.0, help="changes per second")
    lat.add_argument("--seconds", type=float, default=20.0)
    lat.add_argument("--email-share", type=float, default=0.0, help="share sent by email")
    lat.add_argument("--real-sync", action="store_true", help="changes through the sync engine")
    dr = sub.add_parser("drain", parents=[common])
    dr.add_argument("--notifications", type=int, default=20_000)
    cr = sub.add_parser("crash", parents=[common])
    cr.add_argument("--kills", type=int, default=10)
    cr.add_argument("--notifications", type=int, default=3000)
    cr.add_argument("--delay-ms", type=float, default=20.0, help="the receiver's answer time")
    cr.add_argument("--drain-timeout", type=float, default=300.0)
    rc = sub.add_parser("receiver")
    rc.add_argument("--port", type=int, required=True)
    rc.add_argument("--smtp-port", type=int, required=True)
    rc.add_argument("--delay-ms", type=float, default=0.0)
    rc.add_argument("--keep", action="store_true", help="record each body's marker")
    args = parser.parse_args()
    import uvloop  # what `serve` runs on (uvicorn picks it when installed)

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    if args.mode == "receiver":
        asyncio.run(serve_receiver(args.port, args.smtp_port, args.delay_ms, args.keep))
        return
    configure_logging("warning")
    if args.mode == "latency" and args.real_sync:
        result = asyncio.run(real_sync(args))
    else:
        result = asyncio.run({"latency": latency, "drain": drain, "crash": crash}[args.mode](args))
    if args.json:
        print(json.dumps(result))
    else:
        for name, value in result.items():
            print(f"{name:>32}: {value}")


if __name__ == "__main__":
    main()
