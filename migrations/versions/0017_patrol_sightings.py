"""Patrol sightings: what each patrolled camera's last visit saw of its still vehicles
(``patrol_sightings``, analytics/revisit.py), compared with on its next visit to find a
stopped vehicle (违停/占道) between visits; kept across restarts and lease moves.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "patrol_sightings",
        sa.Column("camera_id", sa.String(64), primary_key=True),
        sa.Column("visited_at", sa.Float, nullable=False),
        sa.Column("data_json", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("patrol_sightings")
