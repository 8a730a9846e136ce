"""Linkage rules (issue 27): ``linkage_rules`` holds the rules of the config file (origin
``config``, rewritten at every start) and those added through the API (``api``), in the
order they run.

Revision ID: 0013
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "linkage_rules",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("position", sa.Float, nullable=False),
        sa.Column("config_json", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("linkage_rules")
