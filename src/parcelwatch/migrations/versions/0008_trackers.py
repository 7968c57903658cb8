"""accounts: trackers (a person's follow of a shipment) and their labels; every existing
shipment is given a tracker of the first account, with the shipment's description

Shipments registered before any account exists are adopted when the owner is created
(`parcelwatch.shipments.trackers.adopt_untracked`). `shipments.description` stays, unused,
so that a downgrade loses nothing.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from parcelwatch.db import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "trackers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "shipment_id",
            sa.Integer(),
            sa.ForeignKey("shipments.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("description", sa.String(500), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("archived_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("user_id", "shipment_id", name="uq_trackers_user_shipment"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_trackers_shipment", "trackers", ["shipment_id"])
    op.create_table(
        "tracker_labels",
        sa.Column(
            "tracker_id",
            sa.Integer(),
            sa.ForeignKey("trackers.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("name", sa.String(40), primary_key=True),
    )
    # Every shipment so far belongs to the first account (the owner), if there is one yet.
    op.execute(
        """
        INSERT INTO trackers (user_id, shipment_id, description, created_at, updated_at)
        SELECT owner_account.id, shipments.id, shipments.description, shipments.created_at,
               shipments.updated_at
        FROM shipments, (SELECT id FROM users ORDER BY id LIMIT 1) AS owner_account
        ORDER BY shipments.id
        """
    )


def downgrade() -> None:
    op.drop_table("tracker_labels")
    op.drop_index("ix_trackers_shipment", table_name="trackers")
    op.drop_table("trackers")
