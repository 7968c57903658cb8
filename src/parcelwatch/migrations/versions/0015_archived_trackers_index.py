"""trackers: a partial index of the archived ones, by (user_id, shipment_id)

Every list page asks "not archived by me" of each shipment it shows. PostgreSQL, expecting
next to no archived trackers and having no index to find them by, read the whole trackers
table once a page (6.5 ms on 100,000 trackers, `bench/api_load.py`); this index holds only
the archived ones, so the question is a probe of a small index on either database.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 07:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ARCHIVED = sa.text("archived_at IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_trackers_archived",
        "trackers",
        ["user_id", "shipment_id"],
        postgresql_where=ARCHIVED,
        sqlite_where=ARCHIVED,
    )


def downgrade() -> None:
    op.drop_index("ix_trackers_archived", table_name="trackers")
