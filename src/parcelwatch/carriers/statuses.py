"""The machinery behind every provider's status tables: building a table, looking a code up,
and normalizing a provider's codes to `ShipmentStatus`. The tables themselves live in each
provider's module (`usps.USPS_EVENT_CODES`, ...) and are listed in its `PROVIDER` spec.

Every code a carrier documents is listed; nothing is guessed from text ("undeliverable" is
not "delivered"). A code no table maps becomes `UNKNOWN`: the raw code and text stay on the
event, and the miss is logged and counted in `parcelwatch_unknown_status_codes_total`.
Keys are compared case-insensitively with surrounding blanks removed.

A shipment's status is resolved by one rule for every provider (`resolve_status`): the
current status's codes, then the newest event's status, then the provider's simplified
status text (a documented, closed vocabulary such as UPS `simplifiedTextDescription`), and
only then `UNKNOWN`. A current status that no table maps, or that the carrier itself calls
unknown, never hides a newest event that one does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from parcelwatch.domain import ShipmentStatus as S
from parcelwatch.domain import TrackEvent
from parcelwatch.logs import get_logger
from parcelwatch.ops.metrics import UNKNOWN_STATUS_CODES

__all__ = ["StatusTable", "lookup", "normalize_status", "resolve_status", "status_table"]

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


def resolve_status(
    carrier: str,
    current: Sequence[tuple[StatusTable, str | None]],
    *,
    newest_event: TrackEvent | None,
    simplified: tuple[StatusTable, str | None] | None = None,
    text: str | None = None,
) -> S:
    """A shipment's status: the first of its current status codes a table maps to a known
    status, else the newest event's status, else the simplified text's, else `UNKNOWN`
    (logged and counted once, with every code tried).

    A code a table maps to `UNKNOWN` (UPS `NA`, ShipEngine `UN`) is the carrier saying it
    does not know, so it is passed over like an unmapped one; it is the answer only when
    nothing after it knows better (and then it is not counted as unmapped)."""
    said_unknown = False
    for table, code in current:
        status = lookup(table, code)
        if status is S.UNKNOWN:
            said_unknown = True
        elif status is not None:
            return status
    if newest_event is not None and newest_event.status is not S.UNKNOWN:
        if current and any(code for _table, code in current):
            log.info(
                "current status unmapped: newest event used",
                carrier=carrier,
                codes=[code for _table, code in current if code],
                status=newest_event.status.value,
            )
        return newest_event.status
    if simplified is not None:
        status = lookup(*simplified)
        if status is not None and status is not S.UNKNOWN:
            return status
    if said_unknown:
        return S.UNKNOWN
    codes = [code for _table, code in current if code]
    if simplified is not None and simplified[1]:
        codes.append(simplified[1])
    UNKNOWN_STATUS_CODES.labels(provider=carrier).inc()
    log.warning("unmapped carrier status", carrier=carrier, codes=codes, text=text)
    return S.UNKNOWN
