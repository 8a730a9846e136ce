"""The area tree edited in the console (issue 23): ``area_nodes`` holds the townships,
villages and grids added through the API, each with its GB/T 2260 code and display name
(the config file's ``areas:`` stay the file's).

Revision ID: 0011
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "area_nodes",
        sa.Column("path", sa.String(300), primary_key=True),
        sa.Column("county", sa.String(64), nullable=False),
        sa.Column("township", sa.String(64)),
        sa.Column("village", sa.String(64)),
        sa.Column("grid", sa.String(64)),
        sa.Column("code", sa.String(20), unique=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("area_nodes")
