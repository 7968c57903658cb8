"""trackers: `ix_trackers_shipment` on (shipment_id, user_id) instead of (shipment_id)

"Who tracked this shipment first" (`min(user_id)` of its trackers, `trackers.check_owners`)
is then one probe of the index. Without `user_id` in it, PostgreSQL answered the `min` by
walking `uq_trackers_user_shipment` (user_id, shipment_id) in order until it met the shipment:
through every tracker of a person who tracks many. Creating the owner of an instance of
100,000 shipments registered before accounts took 46 s on PostgreSQL, 0.75 ms a shipment.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 14:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_trackers_shipment", table_name="trackers")
    op.create_index("ix_trackers_shipment", "trackers", ["shipment_id", "user_id"])


def downgrade() -> None:
    op.drop_index("ix_trackers_shipment", table_name="trackers")
    op.create_index("ix_trackers_shipment", "trackers", ["shipment_id"])
