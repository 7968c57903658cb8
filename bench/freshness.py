"""Freshness: how soon parcelwatch knows what happened to a parcel, against a plain poller.

A simulated week (default 2,000 shipments registered over its first five and a half days,
spread evenly over USPS, UPS, FedEx, DHL and ShipEngine) runs through the real sync engine
(claims, priority classes, scheduling, paced budgets in the database, the writer) on a
simulated clock, one pass every `--tick` (5 minutes). Carriers answer in-process from the
emulator's storylines (`emulator/storylines.py`: the same weights, timelines and events the
emulator serves) and enforce each provider's default hour and day allowance the way the
emulator does (429 once a window is spent). Windows shorter than an hour (DHL's 1/s, FedEx's
1,400/10 s, ShipEngine's 200/minute) are the real-time pacer's business, measured by
`bench/sync_throughput.py`; over a simulated minute they never bind here.

Beside it, a plain fixed-interval poller: every active shipment in turn (round robin,
the same numbers per request), at an even rate that spends per provider what parcelwatch
spent (within the same allowance), stopping a shipment once it saw it final.

Printed per milestone (out for delivery, delivered, ...): the mean and p95 delay between the
carrier's event (or the registration, when the event came before it) and the first answer
that carried it; per provider the calls spent, its allowance, 429s, the busiest day, status
changes learned and calls per change. Events of the last simulated day are left out (the
week ends before they could be known).

    .venv/bin/python bench/freshness.py                     # 2,000 shipments, a week
    .venv/bin/python bench/freshness.py --shipments 500 --days 2 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import tempfile
import time
from collections import Counter, defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert

from parcelwatch.carriers.base import Provider, TrackResult
from parcelwatch.carriers.errors import RateLimitedError
from parcelwatch.carriers.quotas import parse_quota
from parcelwatch.config import Settings, load_settings
from parcelwatch.db import create_db_engine
from parcelwatch.domain import Location, ShipmentStatus, TrackEvent, TrackInfo
from parcelwatch.emulator.faults import QuotaCounter
from parcelwatch.emulator.storylines import (
    EventKind,
    Region,
    Storyline,
    Timeline,
    build_timeline,
    choose_storyline,
    stable_hash,
)
from parcelwatch.logs import configure_logging
from parcelwatch.migrate import upgrade
from parcelwatch.models import Shipment
from parcelwatch.sync.engine import EngineOptions, SyncEngine
from parcelwatch.sync.outcomes import PassTrigger
from parcelwatch.sync.retry import ProviderRetryPolicy
from parcelwatch.sync.testing import StaticProviders

START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday, 00:00 UTC
PROVIDERS: dict[str, tuple[str, Region, int]] = {  # provider -> (carrier, region, per request)
    "usps": ("usps", "us", 35),
    "ups": ("ups", "us", 1),
    "fedex": ("fedex", "us", 10),
    "dhl": ("dhl", "eu", 1),
    "shipengine": ("canada_post", "us", 1),
}
STATUS = {
    EventKind.LABEL_CREATED: ShipmentStatus.INFO_RECEIVED,
    EventKind.ACCEPTED: ShipmentStatus.IN_TRANSIT,
    EventKind.DEPARTED_FACILITY: ShipmentStatus.IN_TRANSIT,
    EventKind.ARRIVED_FACILITY: ShipmentStatus.IN_TRANSIT,
    EventKind.IN_TRANSIT: ShipmentStatus.IN_TRANSIT,
    EventKind.ARRIVED_DESTINATION: ShipmentStatus.IN_TRANSIT,
    EventKind.OUT_FOR_DELIVERY: ShipmentStatus.OUT_FOR_DELIVERY,
    EventKind.DELIVERED: ShipmentStatus.DELIVERED,
    EventKind.DELIVERY_ATTEMPTED: ShipmentStatus.DELIVERY_ATTEMPTED,
    EventKind.DELAYED: ShipmentStatus.EXCEPTION,
    EventKind.HELD: ShipmentStatus.EXCEPTION,
    EventKind.RETURNING: ShipmentStatus.RETURNING_TO_SENDER,
    EventKind.RETURNED: ShipmentStatus.RETURNED,
    EventKind.AVAILABLE_FOR_PICKUP: ShipmentStatus.AVAILABLE_FOR_PICKUP,
    EventKind.CANCELLED: ShipmentStatus.CANCELLED,
}
MILESTONES = {  # what the report groups events by
    EventKind.OUT_FOR_DELIVERY: "out_for_delivery",
    EventKind.DELIVERED: "delivered",
    EventKind.DELIVERY_ATTEMPTED: "delivery_attempted",
    EventKind.AVAILABLE_FOR_PICKUP: "available_for_pickup",
    EventKind.DELAYED: "exception",
    EventKind.HELD: "exception",
    EventKind.RETURNING: "returning",
    EventKind.RETURNED: "returned",
    EventKind.CANCELLED: "cancelled",
    EventKind.LABEL_CREATED: "label_created",
}


class SimClock:
    def __init__(self, start: datetime) -> None:
        self.moment = start

    def now(self) -> datetime:
        return self.moment


@dataclass
class Parcel:
    number: str
    provider: str
    registered_at: datetime
    timeline: Timeline


@dataclass
class Observer:
    """What one poller learned: when it first saw each event, and each status change."""

    known: dict[tuple[str, int], datetime] = field(default_factory=dict)
    status: dict[str, ShipmentStatus] = field(default_factory=dict)
    changes: Counter[str] = field(default_factory=Counter)  # per provider
    calls: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)  # 429s
    daily: defaultdict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))

    def saw(self, parcel: Parcel, now: datetime) -> TrackResult:
        visible = parcel.timeline.visible(now)
        if parcel.timeline.storyline is Storyline.NOT_FOUND or not visible:
            return TrackResult.not_found(parcel.number)
        for index, event in enumerate(parcel.timeline.events):
            if event.at <= now:
                self.known.setdefault((parcel.number, index), now)
        newest = STATUS[visible[0].kind]
        if self.status.get(parcel.number, ShipmentStatus.PENDING) is not newest:
            self.changes[parcel.provider] += 1
        self.status[parcel.number] = newest
        return TrackResult.found(parcel.number, info(parcel, visible))


def info(parcel: Parcel, visible: Sequence[Any]) -> TrackInfo:
    status = STATUS[visible[0].kind]
    events = tuple(
        TrackEvent(
            occurred_at=event.at,
            status=STATUS[event.kind],
            description=event.kind.value.replace("_", " "),
            carrier_status_code=event.kind.value[:16],
            location=Location(
                city=event.clock_place.city,
                state=event.clock_place.state,
                country=event.clock_place.country_code,
            ),
            # The local offset of the scan, as UPS (gmtOffset), FedEx (ISO dates), USPS
            # (GMTOffset) and DHL (where its timestamp has one) give it.
            utc_offset_minutes=event.clock_place.utc_offset_minutes,
        )
        for event in visible
    )
    in_transit = status is ShipmentStatus.IN_TRANSIT
    return TrackInfo(
        status=status,
        status_detail=visible[0].kind.value,
        events=events,
        estimated_delivery=parcel.timeline.planned_delivery if in_transit else None,
        delivered_at=visible[0].at if status is ShipmentStatus.DELIVERED else None,
    )


class SimProvider(Provider):
    """A provider answering from the storylines at the simulated time, enforcing its
    counted windows as the emulator does (429 with the wait until the reset)."""

    def __init__(
        self,
        code: str,
        max_batch: int,
        parcels: dict[str, Parcel],
        observer: Observer,
        clock: SimClock,
        quota: str,
    ) -> None:
        super().__init__(client=httpx.AsyncClient())
        self.code = code  # type: ignore[misc]
        self.max_batch = max_batch
        self.own_batch_size = code == "usps"
        self.parcels, self.observer, self.clock = parcels, observer, clock
        self.quota = QuotaCounter(quota, now=clock.now) if quota else None

    async def track(self, numbers: Sequence[str], *, carrier: str) -> list[TrackResult]:
        now = self.clock.now()
        refused = self.quota.take() if self.quota else None
        if refused is not None:
            self.observer.refused[self.code] += 1
            wait = (refused - now).total_seconds()
            raise RateLimitedError("quota spent", provider=self.code, retry_after=wait)
        self.observer.calls[self.code] += 1
        self.observer.daily[self.code][(now - START).days] += 1
        return [self.observer.saw(self.parcels[number], now) for number in numbers]

    async def check(self) -> None:
        return None


def counted_quota(settings: Settings, provider: str) -> str:
    """The provider's default hour and day windows (what the simulation enforces)."""
    windows = parse_quota(str(getattr(settings, f"{provider}_quota")))
    return ",".join(w.text for w in windows if w.counted)


def make_parcels(args: argparse.Namespace) -> list[Parcel]:
    parcels = []
    span = args.register_days * 86400
    for index in range(args.shipments):
        provider = list(PROVIDERS)[index % len(PROVIDERS)]
        carrier, region, _ = PROVIDERS[provider]
        number = f"SIM{provider.upper()}{index:08d}"
        fraction = stable_hash(args.seed, number, "registered") / 2**64
        registered = START + timedelta(seconds=int(fraction * span))
        # People register a label some hours after it was made (up to half a day).
        head = timedelta(hours=12 * stable_hash(args.seed, number, "head") / 2**64)
        storyline = choose_storyline(number, args.seed)
        timeline = build_timeline(
            number, storyline, registered - head, region=region, seed=args.seed
        )
        parcels.append(Parcel(number, provider, registered, timeline))
    return sorted(parcels, key=lambda p: p.registered_at)


async def run_parcelwatch(args: argparse.Namespace, parcels: list[Parcel]) -> Observer:
    # The database of a simulation need not survive a power cut: in memory when there is room.
    workdir = Path(tempfile.mkdtemp(prefix="parcelwatch-freshness-", dir=args.workdir))
    url = args.database or f"sqlite:///{workdir / 'freshness.db'}"
    values: dict[str, Any] = {
        "database_url": url,
        "auto_update_enabled": False,
        "auto_archive_days": 0,
        "log_level": "warning",
        "_env_file": None,
    }
    defaults = load_settings(_env_file=None)
    for provider in PROVIDERS:
        values[f"{provider}_rate_limit"] = 1000.0  # sub-hour pacing is real-time; see above
        values[f"{provider}_max_concurrency"] = 8
        values[f"{provider}_quota"] = counted_quota(defaults, provider)
    settings = load_settings(**values)
    db = create_db_engine(settings.sqlalchemy_url)
    upgrade(db)
    clock = SimClock(START)
    observer = Observer()
    by_number = {p.number: p for p in parcels}
    providers: dict[str, Provider] = {
        PROVIDERS[code][0]: SimProvider(
            code, PROVIDERS[code][2], by_number, observer, clock, counted_quota(defaults, code)
        )
        for code in PROVIDERS
    }
    engine = SyncEngine(
        settings=settings,
        db=db,
        providers=StaticProviders(providers),
        kind="bench",
        # Any wait the budget or a carrier asks for ends the batch (deferred): the simulated
        # clock stands still within a pass.
        options=EngineOptions(retry=ProviderRetryPolicy(retries=0, max_retry_after=0.0)),
        clock=clock.now,
    )
    pending = deque(parcels)
    end = START + timedelta(days=args.days)
    tick = timedelta(minutes=args.tick)
    try:
        while clock.moment < end:
            rows = []
            while pending and pending[0].registered_at <= clock.moment:
                parcel = pending.popleft()
                rows.append(
                    {
                        "carrier": PROVIDERS[parcel.provider][0],
                        "tracking_number": parcel.number,
                        "status": ShipmentStatus.PENDING,
                        "created_at": parcel.registered_at,
                        "updated_at": parcel.registered_at,
                        "next_check_at": parcel.registered_at,
                        "auto_refresh_enabled": True,
                        "auto_refresh_count": 0,
                        "auto_refresh_fail_count": 0,
                    }
                )
            if rows:
                with db.begin() as connection:
                    connection.execute(insert(Shipment), rows)
            await engine.run_pass(trigger=PassTrigger.BENCH)
            clock.moment += tick
    finally:
        await engine.aclose()
        for answering in providers.values():
            await answering.client.aclose()
        db.dispose()
    return observer


def run_plain(
    args: argparse.Namespace, parcels: list[Parcel], spend: Counter[str], quotas: dict[str, str]
) -> Observer:
    """Every active shipment in turn, at an even rate spending `spend` calls a provider."""
    observer = Observer()
    ticks = args.days * 24 * 60 // args.tick
    clock = SimClock(START)
    counters = {code: QuotaCounter(q, now=clock.now) for code, q in quotas.items() if q}
    turns: dict[str, deque[Parcel]] = {code: deque() for code in PROVIDERS}
    credit: Counter[str] = Counter()
    pending = deque(parcels)
    for _ in range(ticks):
        while pending and pending[0].registered_at <= clock.moment:
            parcel = pending.popleft()
            turns[parcel.provider].append(parcel)
        for code, queue in turns.items():
            credit[code] += spend[code] / ticks
            while credit[code] >= 1 and queue:
                credit[code] -= 1
                counter = counters.get(code)
                if counter is not None and counter.take() is not None:
                    observer.refused[code] += 1
                    continue
                observer.calls[code] += 1
                observer.daily[code][(clock.moment - START).days] += 1
                batch = [queue.popleft() for _ in range(min(PROVIDERS[code][2], len(queue)))]
                for parcel in batch:
                    observer.saw(parcel, clock.moment)
                    status = observer.status.get(parcel.number)
                    if status is None or not status.is_final:
                        queue.append(parcel)
        clock.moment += timedelta(minutes=args.tick)
    return observer


def delays(parcels: list[Parcel], observer: Observer, end: datetime) -> dict[str, list[float]]:
    """Minutes from each event (or the registration after it) to its first answer, by
    milestone; an event never answered counts until the end of the week."""
    found: dict[str, list[float]] = defaultdict(list)
    horizon = end - timedelta(days=1)
    for parcel in parcels:
        for index, event in enumerate(parcel.timeline.events):
            since = max(event.at, parcel.registered_at)
            if since > horizon:
                continue
            known = observer.known.get((parcel.number, index), end)
            milestone = MILESTONES.get(event.kind, "in_transit")
            found[milestone].append((known - since).total_seconds() / 60)
    return found


def summary(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "mean_min": None, "p95_min": None}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
    return {
        "n": len(values),
        "mean_min": round(statistics.fmean(values), 1),
        "p95_min": round(p95, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shipments", type=int, default=2000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--register-days", type=float, default=5.5)
    parser.add_argument("--tick", type=int, default=5, help="minutes between passes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database", default=None, help="a database URL (default: SQLite)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    shm = Path("/dev/shm")
    args.workdir = str(shm) if shm.is_dir() else None
    configure_logging("warning", "console")
    parcels = make_parcels(args)
    defaults = load_settings(_env_file=None)
    quotas = {code: counted_quota(defaults, code) for code in PROVIDERS}

    started = time.perf_counter()
    ours = asyncio.run(run_parcelwatch(args, parcels))
    seconds = time.perf_counter() - started
    plain = run_plain(args, parcels, ours.calls, quotas)
    end = START + timedelta(days=args.days)
    mine, theirs = delays(parcels, ours, end), delays(parcels, plain, end)
    milestones = {
        name: {"parcelwatch": summary(mine[name]), "plain": summary(theirs[name])}
        for name in sorted(set(mine) | set(theirs))
    }
    by_provider = {  # where the delays come from: each provider's mean, both pollers
        code: {
            name: {
                who: summary(values[name])["mean_min"]
                for who, values in (
                    ("parcelwatch", delays([p for p in parcels if p.provider == code], ours, end)),
                    ("plain", delays([p for p in parcels if p.provider == code], plain, end)),
                )
            }
            for name in ("out_for_delivery", "delivered")
        }
        for code in PROVIDERS
    }
    providers: dict[str, dict[str, Any]] = {}
    for code in PROVIDERS:
        limit = [w for w in parse_quota(quotas[code]) if w.seconds == 86400]
        providers[code] = {
            "allowance": quotas[code] or "none counted",
            **{
                f"{who}_{what}": value
                for who, observer in (("parcelwatch", ours), ("plain", plain))
                for what, value in (
                    ("calls", observer.calls[code]),
                    ("429s", observer.refused[code]),
                    ("busiest_day", max(observer.daily[code].values(), default=0)),
                    ("changes", observer.changes[code]),
                    (
                        "calls_per_change",
                        round(observer.calls[code] / observer.changes[code], 2)
                        if observer.changes[code]
                        else None,
                    ),
                )
            },
            "day_limit": limit[0].amount if limit else None,
        }
    result = {
        "shipments": args.shipments,
        "days": args.days,
        "tick_minutes": args.tick,
        "simulation_seconds": round(seconds, 1),
        "milestones": milestones,
        "mean_min_by_provider": by_provider,
        "providers": providers,
        "calls": {"parcelwatch": sum(ours.calls.values()), "plain": sum(plain.calls.values())},
        "changes": {
            "parcelwatch": sum(ours.changes.values()),
            "plain": sum(plain.changes.values()),
        },
        "http_429": {
            "parcelwatch": sum(ours.refused.values()),
            "plain": sum(plain.refused.values()),
        },
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"{args.shipments} shipments, {args.days} simulated days in {seconds:.0f} s, "
        f"a pass every {args.tick} minutes"
    )
    print(f"{'milestone':22}{'n':>6}  {'parcelwatch mean / p95':>24}  {'plain mean / p95':>22}")
    for name, row in milestones.items():
        ours_row, plain_row = row["parcelwatch"], row["plain"]
        print(
            f"{name:22}{ours_row['n']:>6}  "
            f"{_minutes(ours_row['mean_min']):>11} / {_minutes(ours_row['p95_min']):>10}  "
            f"{_minutes(plain_row['mean_min']):>9} / {_minutes(plain_row['p95_min']):>10}"
        )
    for code, row in providers.items():
        print(f"  {code:11} {row}")
    for code, means in by_provider.items():
        print(f"  {code:11} mean minutes (parcelwatch / plain): {means}")
    for key in ("calls", "changes", "http_429"):
        print(f"{key:10} {result[key]}")


def _minutes(value: float | int | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f} min" if value < 120 else f"{value / 60:.1f} h"


if __name__ == "__main__":
    main()
