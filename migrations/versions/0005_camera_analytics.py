"""Zones, rules and motion gate of a camera as edited in the console.

They override the camera's config (file or import) until cleared, so an edit
survives a restart; who changed them and when is kept beside them.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "camera_analytics",
        sa.Column("camera_id", sa.String(64), primary_key=True),
        sa.Column("data_json", sa.Text, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("camera_analytics")
