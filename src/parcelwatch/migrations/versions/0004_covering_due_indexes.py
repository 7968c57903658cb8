"""the due indexes cover the whole due test

`parcelwatch.lifecycle` calls a shipment due when it is scheduled (`next_check_at` has come),
open, auto-refreshed, within the cut-off, under the failure threshold, of a tracked carrier
and out of the manual cool-down. The two due indexes carry every column of that test, so
counting the backlog at scrape time and claiming a page read the index alone.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 07:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DUE_TEST = [
    "status",
    "auto_refresh_enabled",
    "created_at",
    "auto_refresh_fail_count",
    "last_manual_refresh",
]
PARTIAL = {
    "sqlite_where": sa.text("next_check_at IS NOT NULL"),
    "postgresql_where": sa.text("next_check_at IS NOT NULL"),
}


def _indexes(batch_op: BatchOperations, due: list[str], carrier_due: list[str]) -> None:
    batch_op.drop_index("ix_shipments_due", **PARTIAL)
    batch_op.drop_index("ix_shipments_carrier_due", **PARTIAL)
    batch_op.create_index("ix_shipments_due", due, unique=False, **PARTIAL)
    batch_op.create_index("ix_shipments_carrier_due", carrier_due, unique=False, **PARTIAL)


def upgrade() -> None:
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        _indexes(
            batch_op,
            ["next_check_at", "carrier", *DUE_TEST],
            ["carrier", "next_check_at", *DUE_TEST],
        )


def downgrade() -> None:
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        _indexes(batch_op, ["next_check_at"], ["carrier", "next_check_at"])
