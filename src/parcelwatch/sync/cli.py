"""`parcelwatch sync`: one pass of the sync engine, for cron (exit 0 all synced, 1 some
shipments failed or were deferred, 2 fatal: configuration, database, every carrier down)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from parcelwatch.carriers.catalog import CARRIERS
from parcelwatch.carriers.registry import open_registry
from parcelwatch.cli.common import (
    carrier_settings,
    console,
    err_console,
    fail,
    print_json,
    settings_or_exit,
)
from parcelwatch.config import Settings
from parcelwatch.db import create_db_engine
from parcelwatch.errors import ServiceError
from parcelwatch.models import Shipment
from parcelwatch.ops.budgets import provider_budgets
from parcelwatch.shipments.service import find_shipment
from parcelwatch.sync import report
from parcelwatch.sync.engine import EngineOptions, ProviderLookup, SyncEngine
from parcelwatch.sync.outcomes import PassOutcome, PassTrigger
from parcelwatch.sync.runs import PassSummary
from parcelwatch.sync.selection import Selection

__all__ = ["EXIT_FATAL", "EXIT_SOME_FAILED", "sync"]

EXIT_SOME_FAILED = 1
EXIT_FATAL = 2
STOP_DEADLINE = 10.0


def sync(
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show what would be synced and why; no carrier calls, no writes."
    ),
    force: bool = typer.Option(
        False, "--force", help="Sync every active shipment, due or not, ignoring cool-downs."
    ),
    shipments: str | None = typer.Option(
        None, "--shipments", help="Only these shipments: ID,ID (ids or tracking numbers)."
    ),
    carrier: str | None = typer.Option(None, "--carrier", help="Only this carrier's shipments."),
    show_stats: bool = typer.Option(
        False, "--stats", help="Counts, due now, failing, disabled and recent runs; no sync."
    ),
    concurrency: int | None = typer.Option(
        None, "--concurrency", min=1, max=1000, help="Requests in flight per provider."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="List every shipment's outcome."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON summary on stdout."),
) -> None:
    """Sync due shipments once with the same engine the server runs (for cron)."""
    settings = settings_or_exit()
    db = create_db_engine(settings.sqlalchemy_url)
    try:
        _check_database(db)
        with carrier_settings(settings) as asked_with:
            code = asyncio.run(
                _main(
                    asked_with,
                    db,
                    dry_run=dry_run,
                    force=force,
                    references=shipments,
                    carrier=carrier,
                    show_stats=show_stats,
                    concurrency=concurrency,
                    verbose=verbose,
                    json_output=json_output,
                )
            )
    finally:
        db.dispose()
    raise typer.Exit(code)


def _say(line: str, *, err: bool = False) -> None:
    (err_console if err else console).print(line, markup=False, highlight=False, soft_wrap=True)


def _check_database(db: Engine) -> None:
    try:
        with db.connect() as connection:
            connection.execute(text("SELECT 1"))
            connection.execute(select(func.count()).select_from(Shipment).limit(1))
    except Exception as error:
        fail(f"database unavailable: {type(error).__name__}: {error}", code=EXIT_FATAL)


def _resolve(db: Engine, references: str) -> list[int]:
    ids: list[int] = []
    with Session(db) as session:
        for reference in (item.strip() for item in references.split(",")):
            if not reference:
                continue
            try:
                ids.append(find_shipment(session, reference).id)
            except ServiceError as error:
                fail(error.detail, code=EXIT_FATAL)
    if not ids:
        fail("--shipments names no shipment", code=EXIT_FATAL)
    return ids


async def _main(
    settings: Settings,
    db: Engine,
    *,
    dry_run: bool,
    force: bool,
    references: str | None,
    carrier: str | None,
    show_stats: bool,
    concurrency: int | None,
    verbose: bool,
    json_output: bool,
) -> int:
    async with open_registry(settings) as registry:
        sync_engine = SyncEngine(
            settings=settings,
            db=db,
            providers=registry,
            kind="sync",
            options=EngineOptions(concurrency=concurrency, record_outcomes=True),
        )
        try:
            configured = sync_engine.configured_carriers()
            if show_stats:
                with Session(db) as session:
                    document = report.stats(session, settings, configured)
                    budgets = provider_budgets(session, settings)
                document["budgets"] = [budget.as_dict() for budget in budgets]
                _output_stats(document, json_output)
                return 0
            carriers = _carrier_filter(carrier, registry)
            ids = _resolve(db, references) if references else None
            selection = Selection(force=force, shipment_ids=ids, carriers=carriers)
            if dry_run:
                return _dry_run(db, settings, registry, selection, json_output)
            if not sync_engine.configured_carriers(carriers):
                return _nothing_configured(db, settings, selection, json_output)
            try:
                summary = await _run(sync_engine, selection, db, settings, force=force)
            except SQLAlchemyError as error:
                fail(f"database error during the sync: {type(error).__name__}: {error}", EXIT_FATAL)
        finally:
            await sync_engine.aclose()
    _output_summary(summary, json_output, verbose)
    return _exit_code(summary)


def _carrier_filter(carrier: str | None, registry: ProviderLookup) -> list[str] | None:
    if carrier is None:
        return None
    code = carrier.strip().lower()
    if code not in CARRIERS:
        fail(f"unknown carrier '{carrier}'; known: {', '.join(sorted(CARRIERS))}", EXIT_FATAL)
    if registry.provider_for(code) is None:
        fail(f"{code} is not configured: {registry.unconfigured_reason(code)}", EXIT_FATAL)
    return [code]


def _nothing_configured(
    db: Engine, settings: Settings, selection: Selection, json_output: bool
) -> int:
    with Session(db) as session:
        waiting = report.count_due(session, settings, list(CARRIERS))
    message = "no carrier is configured: set a carrier's credentials (see `parcelwatch carriers`)"
    if json_output:
        print_json({"outcome": "failed" if waiting else "ok", "error": message, "due": waiting})
    else:
        _say(f"parcelwatch: {message}", err=True)
    return EXIT_FATAL if waiting else 0


def _dry_run(
    db: Engine,
    settings: Settings,
    providers: ProviderLookup,
    selection: Selection,
    json_output: bool,
) -> int:
    with Session(db) as session:
        entries, total = report.plan(session, settings, providers, selection)
    to_sync = sum(1 for entry in entries if entry.action == "sync")
    if json_output:
        print_json(
            {
                "dry_run": True,
                "total": total,
                "listed": len(entries),
                "would_sync": to_sync,
                "shipments": [asdict(entry) for entry in entries],
            }
        )
        return 0
    for entry in entries:
        _say(
            f"{entry.action:4}  #{entry.id:<6} {entry.carrier:10} {entry.tracking_number:24} "
            f"{entry.status:20} {entry.reason}"
        )
    more = f" (first {len(entries)} listed)" if total > len(entries) else ""
    _say(f"dry run: {to_sync} of {total} shipments would be synced{more}")
    return 0


@contextmanager
def _progress(total: int) -> Iterator[Progress | None]:
    if not err_console.is_terminal or total == 0:
        yield None
        return
    with Progress(
        TextColumn("syncing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        yield progress


async def _run(
    sync_engine: SyncEngine, selection: Selection, db: Engine, settings: Settings, *, force: bool
) -> PassSummary:
    with Session(db) as session:
        if selection.shipment_ids is not None:
            total = len(selection.shipment_ids)
        elif force:
            total = report.plan(session, settings, sync_engine.providers, selection, limit=0)[1]
        else:
            total = report.count_due(
                session, settings, sync_engine.configured_carriers(selection.carriers)
            )
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []

    def interrupted() -> None:
        _say("parcelwatch: stopping after the batches in flight…", err=True)
        deadline = 0.0 if stopping else STOP_DEADLINE
        stopping.append(loop.create_task(sync_engine.stop(deadline)))

    loop.add_signal_handler(signal.SIGINT, interrupted)
    try:
        with _progress(total) as progress:
            task = progress.add_task("sync", total=total) if progress else None

            def advance(summary: PassSummary) -> None:
                if progress is not None and task is not None:
                    done = summary.synced + summary.failed + summary.deferred + summary.skipped
                    done += summary.waiting
                    progress.update(task, completed=done)

            trigger = (
                PassTrigger.SYNC_FORCE if force or selection.shipment_ids else PassTrigger.SYNC
            )
            summary = await sync_engine.run_pass(selection, trigger=trigger, progress=advance)
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        for pending in stopping:
            await pending
    if selection.shipment_ids and not sync_engine.stopping:
        _explain_skipped(db, settings, sync_engine, selection.shipment_ids, summary)
    return summary


def _explain_skipped(
    db: Engine,
    settings: Settings,
    sync_engine: SyncEngine,
    ids: Sequence[int],
    summary: PassSummary,
) -> None:
    """Named shipments the pass did not sync (final, disabled, leased elsewhere...): why."""
    missing = [shipment_id for shipment_id in ids if shipment_id not in summary.outcomes]
    if not missing:
        return
    with Session(db) as session:
        entries, _ = report.plan(
            session, settings, sync_engine.providers, Selection(shipment_ids=missing)
        )
    for entry in entries:
        summary.outcomes[entry.id] = f"skipped: {entry.reason}"
        summary.skipped += 1


def _exit_code(summary: PassSummary) -> int:
    if summary.outcome is PassOutcome.FAILED:
        return EXIT_FATAL
    if summary.outcome in (PassOutcome.PARTIAL, PassOutcome.STOPPED, PassOutcome.ERROR):
        return EXIT_SOME_FAILED
    return 0


def _output_summary(summary: PassSummary, json_output: bool, verbose: bool) -> None:
    data = summary.as_dict()
    if not verbose:
        data.pop("outcomes")
    if json_output:
        print_json(data)
        return
    line = (
        f"sync {summary.outcome}: {summary.checked} checked, {summary.updated} updated, "
        f"{summary.unchanged} unchanged, {summary.not_found} not found, "
        f"{summary.failed} failed, {summary.deferred} deferred, {summary.disabled} disabled, "
        f"{summary.api_calls} API calls in {summary.duration_seconds:.1f}s"
    )
    if summary.waiting:
        line += f" ({summary.waiting} waiting for their provider's budget)"
    console.print(line, markup=False, highlight=False, soft_wrap=True)
    if summary.taken_over:
        _say(f"  took over {summary.taken_over} leases of engines that are gone (crashed)")
    for provider, error in summary.carriers_down.items():
        _say(f"  {provider} down: {error}")
    if verbose:
        for shipment_id, outcome in sorted(summary.outcomes.items()):
            _say(f"  #{shipment_id}: {outcome}")
    for error in summary.errors[:10] if (summary.failed or summary.deferred) else []:
        _say(f"  error: {error}")


def _output_stats(document: dict[str, Any], json_output: bool) -> None:
    if json_output:
        print_json(document)
        return
    _say(f"shipments: {document['total']}  active: {document['active']}")
    _say(
        f"due now: {document['due_now']}  failing: {document['failing']}  "
        f"disabled: {document['disabled']}  next due: {document['next_due_at'] or '-'}"
    )
    if document["due_but_carrier_not_configured"]:
        _say(f"due but carrier not configured: {document['due_but_carrier_not_configured']}")
    for key in ("by_status", "by_carrier"):
        counts = ", ".join(f"{name} {count}" for name, count in document[key].items())
        _say(f"{key.replace('_', ' ')}: {counts or '-'}")
    _say("budgets:")
    for budget in document["budgets"]:
        _say(f"  {budget['provider']:10} {_budget_line(budget)}")
    _say("last runs:")
    for run in document["last_runs"]:
        _say(
            f"  #{run['id']} {run['trigger']:10} {run['outcome']:8} "
            f"{run['started_at']:%Y-%m-%d %H:%M:%S} checked {run['checked']} "
            f"updated {run['updated']} failed "
            f"{run['failed']} error rate {run['error_rate']:.0%}"
        )


def _budget_line(budget: dict[str, Any]) -> str:
    """`1/s; 250/day@00:00Z 37 spent, 213 left, resets 2026-12-05 00:00Z`."""
    rate = budget["rate_per_s"]
    parts = [f"{rate:.4g}/s"]
    used = budget["rate_in_use_per_s"]
    if used is not None and used < rate:
        parts[0] += f" (lowered to {used:.4g}/s after 429s)"
    for window in budget["windows"]:
        if window["name"] == "1s":
            continue  # it is the rate above
        text = window["window"]
        if window["counted"]:
            resets = window["resets_at"][:16].replace("T", " ") + "Z"
            text += f" {window['spent']} spent, {window['remaining']} left, resets {resets}"
        parts.append(text)
    if budget["blocked_until"]:
        until = budget["blocked_until"][:16].replace("T", " ")
        parts.append(f"stopped until {until}Z: {budget['blocked_reason']}")
    if budget["note"]:
        parts.append(budget["note"])
    return "; ".join(parts)
