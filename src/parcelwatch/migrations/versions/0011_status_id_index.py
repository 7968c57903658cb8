"""shipments: an index on (status, id), so a list filtered by status walks it newest first and
stops after one page (without it SQLite gathered every shipment of that status, 97,000 pending
ones in the load benchmark, and sorted them for each page: 25 to 90 ms a request)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 05:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_shipments_status_id", "shipments", ["status", "id"])


def downgrade() -> None:
    op.drop_index("ix_shipments_status_id", table_name="shipments")
