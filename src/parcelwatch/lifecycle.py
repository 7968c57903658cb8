"""What "open", "active", "due", "overdue" and "stale" mean: the one definition that the sync
engine's selection, health, metrics, `sync --stats` and the dashboard all read.

- **open**: not final (delivered, returned, cancelled and expired are final). What a person
  still waits for; the dashboard's "Active" view.
- **active**: open, auto-refresh on, under `AUTO_UPDATE_MAX_RETRIES` consecutive failures, and
  registered within `AUTO_UPDATE_CUTOFF_DAYS`. What the updater keeps current.
- **tracked**: of a carrier some configured provider tracks (`carriers.registry.Routing.tracked`).
- **scheduled**: `next_check_at` has come. The writer and the services clear it when a
  shipment turns final or auto-refresh goes off, but a manual refresh of such a shipment
  leases it through `next_check_at` too, so the due test still reads status and auto-refresh
  (the due indexes carry both, and every other column of the test).
- **waiting for carrier**: active and scheduled, but untracked: it would be due if its carrier
  were configured. Counted apart, never as due, overdue or stale, since no pass can check it.
- **due**: active, tracked, scheduled, and not refreshed by hand within `MANUAL_COOLDOWN`. What
  a plain pass claims. **Overdue** is due; by how much is `now - next_check_at`.
- **stale**: active and tracked, and neither the updater nor a person checked it within
  `HEALTH_STALE_HOURS` (never checked: since registration).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, false, func, not_, or_, true

from parcelwatch.config import Settings
from parcelwatch.domain import FINAL_STATUSES
from parcelwatch.models import Shipment

__all__ = ["MANUAL_COOLDOWN", "Lifecycle", "open_filter", "sync_failing_filter"]

MANUAL_COOLDOWN = timedelta(minutes=5)


def open_filter() -> ColumnElement[bool]:
    """Open: not in a final status."""
    return Shipment.status.not_in(list(FINAL_STATUSES))


def sync_failing_filter() -> ColumnElement[bool]:
    """Open shipments whose automatic updates are off or failing."""
    return and_(
        open_filter(),
        or_(Shipment.auto_refresh_enabled.is_(False), Shipment.auto_refresh_fail_count > 0),
    )


def _of(carriers: Collection[str]) -> ColumnElement[bool]:
    if not carriers:
        return false()
    codes = sorted(carriers)
    return Shipment.carrier == codes[0] if len(codes) == 1 else Shipment.carrier.in_(codes)


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """The thresholds the definitions depend on, and the carriers some provider tracks."""

    tracked_carriers: frozenset[str]
    max_failures: int = 10
    cutoff: timedelta = timedelta(days=30)
    stale_after: timedelta = timedelta(hours=24)

    @classmethod
    def from_settings(cls, settings: Settings, *, tracked: Collection[str]) -> Lifecycle:
        """The thresholds from the settings; `tracked` from `Routing(settings).tracked()` or
        an engine's own providers."""
        return cls(
            tracked_carriers=frozenset(tracked),
            max_failures=settings.auto_update_max_retries,
            cutoff=timedelta(days=settings.auto_update_cutoff_days),
            stale_after=timedelta(hours=settings.health_stale_hours),
        )

    def current(self, now: datetime) -> ColumnElement[bool]:
        """Under the failure threshold and registered within the cut-off."""
        return and_(
            Shipment.auto_refresh_fail_count < self.max_failures,
            Shipment.created_at >= now - self.cutoff,
        )

    def active(self, now: datetime) -> ColumnElement[bool]:
        return and_(open_filter(), Shipment.auto_refresh_enabled.is_(True), self.current(now))

    def tracked(self, carriers: Collection[str] | None = None) -> ColumnElement[bool]:
        """Of a tracked carrier; `carriers` narrows the set (an engine's carrier group)."""
        if carriers is None:
            return _of(self.tracked_carriers)
        return _of([code for code in carriers if code in self.tracked_carriers])

    def waiting_for_carrier(self, now: datetime) -> ColumnElement[bool]:
        """Would be due, but no configured provider tracks its carrier."""
        untracked = not_(self.tracked()) if self.tracked_carriers else true()
        return and_(untracked, self.scheduled(now), self.active(now))

    @staticmethod
    def scheduled(now: datetime) -> ColumnElement[bool]:
        return and_(Shipment.next_check_at.is_not(None), Shipment.next_check_at <= now)

    @staticmethod
    def cooled_down(now: datetime) -> ColumnElement[bool]:
        """Not refreshed by hand within `MANUAL_COOLDOWN`."""
        return or_(
            Shipment.last_manual_refresh.is_(None),
            Shipment.last_manual_refresh <= now - MANUAL_COOLDOWN,
        )

    def due(self, now: datetime, carriers: Collection[str] | None = None) -> ColumnElement[bool]:
        """Active, tracked, scheduled and cooled down."""
        return and_(
            self.tracked(carriers),
            self.scheduled(now),
            self.active(now),
            self.cooled_down(now),
        )

    def stale(self, now: datetime) -> ColumnElement[bool]:
        limit = now - self.stale_after
        # "last checked" is the later of the two refresh times, or creation when never checked.
        return and_(
            self.active(now),
            self.tracked(),
            func.coalesce(Shipment.last_auto_refresh, Shipment.created_at) < limit,
            func.coalesce(Shipment.last_manual_refresh, Shipment.created_at) < limit,
        )
