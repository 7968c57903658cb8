"""remember webhook pushes already received; SQLite never gives a shipment id twice

`webhook_pushes` holds the id of every provider push applied while its signature is still
accepted (ShipEngine: 5 minutes either side of its timestamp), so a replayed push is answered
as a duplicate and changes nothing; expired rows are pruned as pushes arrive.

On SQLite the shipments table is rebuilt with AUTOINCREMENT: an id freed by a delete is never
given to a later shipment (without it SQLite hands out max(id) + 1, so deleting the newest
shipment gave its id to the next one). PostgreSQL's sequence already never reuses an id.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
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
KEPT_EVENTS = "_keep_tracking_events"


def upgrade() -> None:
    op.create_table(
        "webhook_pushes",
        sa.Column("push_id", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("push_id"),
    )
    op.create_index("ix_webhook_pushes_expires_at", "webhook_pushes", ["expires_at"])
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_shipments(autoincrement=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_shipments(autoincrement=False)
    op.drop_index("ix_webhook_pushes_expires_at", table_name="webhook_pushes")
    op.drop_table("webhook_pushes")


def _rebuild_shipments(*, autoincrement: bool) -> None:
    """Rebuild `shipments` (SQLite cannot add AUTOINCREMENT in place), keeping every row and
    id. The rebuild drops the old table, and with foreign keys on (they cannot be switched
    off inside the migration's transaction) that deletes every event through ON DELETE
    CASCADE: the events are kept aside and put back."""
    op.execute(f"CREATE TEMP TABLE {KEPT_EVENTS} AS SELECT * FROM tracking_events")
    with op.batch_alter_table(
        "shipments", recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
    ):
        pass
    op.execute(f"INSERT INTO tracking_events SELECT * FROM {KEPT_EVENTS}")
    op.execute(f"DROP TABLE {KEPT_EVENTS}")
    # The partial due indexes, as 0004 made them (whatever the rebuild's reflection kept).
    with op.batch_alter_table("shipments") as batch_op:
        batch_op.drop_index("ix_shipments_due")
        batch_op.drop_index("ix_shipments_carrier_due")
        batch_op.create_index(
            "ix_shipments_due", ["next_check_at", "carrier", *DUE_TEST], unique=False, **PARTIAL
        )
        batch_op.create_index(
            "ix_shipments_carrier_due",
            ["carrier", "next_check_at", *DUE_TEST],
            unique=False,
            **PARTIAL,
        )
