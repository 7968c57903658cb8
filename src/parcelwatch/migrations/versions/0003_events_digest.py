"""remember which event list a shipment's events were last written from

`shipments.events_digest` is a hash of the dedupe keys of the events the carrier last sent.
When a poll brings the same list again (most polls), the writer inserts nothing instead of
offering every event again to ON CONFLICT DO NOTHING.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 16:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("events_digest", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.drop_column("events_digest")
