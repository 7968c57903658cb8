"""The machinery behind every provider's status tables: building a table, looking a code up,
and normalizing a provider's codes to `ShipmentStatus`. The tables themselves live in each
provider's module (`usps.USPS_EVENT_CODES`, ...) and are listed in its `PROVIDER` spec.

Every code a carrier documents is listed; nothing is guessed from text ("undeliverable" is
not "delivered"). A code no table maps becomes `UNKNOWN`: the raw code and text stay on the
event, and the miss is logged and counted in `parcelwatch_unknown_status_codes_total`.
Keys are compared case-insensitively with surrounding blanks removed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from parcelwatch.domain import ShipmentStatus as S
from parcelwatch.logs import get_logger
from parcelwatch.ops.metrics import UNKNOWN_STATUS_CODES

__all__ = ["StatusTable", "lookup", "normalize_status", "status_table"]

log = get_logger(__name__)

StatusTable = Mapping[str, S]


def _key(code: str) -> str:
    return " ".join(code.split()).casefold()


def status_table(entries: Mapping[str, S]) -> StatusTable:
    """A table from a provider's codes (as the provider documents them) to our statuses."""
    return {_key(code): status for code, status in entries.items()}


def lookup(table: StatusTable, code: str | None) -> S | None:
    """The table's status for `code`, or None (no side effects)."""
    if not code:
        return None
    return table.get(_key(code))


def normalize_status(
    carrier: str,
    candidates: Sequence[tuple[StatusTable, str | None]],
    *,
    text: str | None = None,
) -> S:
    """The first candidate code its table maps; otherwise `UNKNOWN`, logged and counted.

    `candidates` goes from most to least specific, e.g. FedEx `[(codes, "FD"),
    (derived, "RL")]`. A candidate without a code is skipped."""
    for table, code in candidates:
        status = lookup(table, code)
        if status is not None:
            return status
    codes = [code for _table_, code in candidates if code]
    UNKNOWN_STATUS_CODES.labels(provider=carrier).inc()
    log.warning("unmapped carrier status", carrier=carrier, codes=codes, text=text)
    return S.UNKNOWN
