"""index due shipments per carrier

The sync engine claims each carrier's due shipments oldest first; without this index SQLite
walks every shipment of the carrier (the unique carrier+number index) and sorts them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 21:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_shipments_carrier_due",
            ["carrier", "next_check_at"],
            unique=False,
            sqlite_where=sa.text("next_check_at IS NOT NULL"),
            postgresql_where=sa.text("next_check_at IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_shipments_carrier_due",
            sqlite_where=sa.text("next_check_at IS NOT NULL"),
            postgresql_where=sa.text("next_check_at IS NOT NULL"),
        )
