"""shipments: the check priority class and the person whose turn a shipment counts in
(`check_owner`, the first person tracking it), and a due index in that order, so a claim
under a short budget takes the likeliest changes first and in turns across people while
reading the index alone (`parcelwatch.sync.priority`)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 00:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DUE_TEST = [
    "status",
    "auto_refresh_enabled",
    "created_at",
    "auto_refresh_fail_count",
    "last_manual_refresh",
]
# The class of the status alone (never checked: moving); the estimate refines in-transit
# ones at their next check.
BACKFILL = """
UPDATE shipments SET
  check_priority = CASE
    WHEN status IN ('out_for_delivery', 'delivery_attempted', 'exception',
                    'available_for_pickup') THEN 0
    WHEN status = 'pending' AND last_auto_refresh IS NULL THEN 2
    WHEN status IN ('pending', 'info_received', 'delivered', 'returned', 'cancelled',
                    'expired') THEN 3
    ELSE 2 END,
  check_owner = (SELECT min(trackers.user_id) FROM trackers
                 WHERE trackers.shipment_id = shipments.id)
"""


def upgrade() -> None:
    # Plain ALTER TABLE (no batch copy): SQLite would copy the table, and its events would go
    # with the old one through their ON DELETE CASCADE.
    op.add_column(
        "shipments",
        sa.Column("check_priority", sa.SmallInteger(), nullable=False, server_default="2"),
    )
    op.add_column("shipments", sa.Column("check_owner", sa.Integer(), nullable=True))
    op.execute(BACKFILL)
    op.create_index(
        "ix_shipments_priority_due",
        "shipments",
        ["carrier", "check_priority", "check_owner", "next_check_at", *DUE_TEST],
        unique=False,
        sqlite_where=sa.text("next_check_at IS NOT NULL"),
        postgresql_where=sa.text("next_check_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_shipments_priority_due", table_name="shipments")
    op.drop_column("shipments", "check_owner")  # SQLite 3.35+ drops a column in place
    op.drop_column("shipments", "check_priority")
