"""carrier budgets: what each provider spent of its counted quota windows, and blocks

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from parcelwatch.db import UTCDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "carrier_budgets",
        sa.Column("provider", sa.String(32), primary_key=True),
        sa.Column("window", sa.String(16), primary_key=True),
        sa.Column("period_start", UTCDateTime(), nullable=False),
        sa.Column("resets_at", UTCDateTime(), nullable=False),
        sa.Column("spent", sa.Integer(), nullable=False),
        sa.Column("quota", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "carrier_blocks",
        sa.Column("provider", sa.String(32), primary_key=True),
        sa.Column("blocked_until", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.String(300), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("carrier_blocks")
    op.drop_table("carrier_budgets")
