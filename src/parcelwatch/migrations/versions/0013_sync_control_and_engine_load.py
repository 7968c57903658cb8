"""sync_control: the updater's pause, shared by every engine (the admin API writes it, every
updater and worker reads it at its next batch); engine_heartbeats: what each live engine is
doing (batches in flight, shipments a second, the carriers it serves) for the admin status

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 00:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sync_control",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("engine_heartbeats") as batch_op:
        batch_op.add_column(
            sa.Column("in_flight_batches", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("shipments_per_second", sa.Float(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("carriers", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("engine_heartbeats") as batch_op:
        batch_op.drop_column("carriers")
        batch_op.drop_column("shipments_per_second")
        batch_op.drop_column("in_flight_batches")
    op.drop_table("sync_control")
