"""accounts: share links, a read-only public page of one shipment; trackers.kept (restored
by hand, so AUTO_ARCHIVE_DAYS leaves it in the list)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 04:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from parcelwatch.db import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "share_links",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "tracker_id",
            sa.Integer(),
            sa.ForeignKey("trackers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("token_hash", name="uq_share_links_hash"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_share_links_tracker", "share_links", ["tracker_id"])
    with op.batch_alter_table("trackers") as trackers:
        trackers.add_column(
            sa.Column("kept", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("trackers") as trackers:
        trackers.drop_column("kept")
    op.drop_index("ix_share_links_tracker", table_name="share_links")
    op.drop_table("share_links")
