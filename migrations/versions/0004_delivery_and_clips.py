"""Delivery leases and dead letters on the outbox; evidence clips on alerts.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

OUTBOX = [
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_until", sa.Float),
    sa.Column("dead_at", sa.Float),
    sa.Column("dead_reason", sa.Text),
]
ALERTS = [
    sa.Column("clip_path", sa.String(500)),
    sa.Column("clip_sha256", sa.String(64)),
    sa.Column("clip_start", sa.Float),
    sa.Column("clip_end", sa.Float),
]


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        for column in OUTBOX:
            batch.add_column(column)
    with op.batch_alter_table("alerts") as batch:
        for column in ALERTS:
            batch.add_column(column)


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        for column in ALERTS:
            batch.drop_column(column.name)
    with op.batch_alter_table("outbox") as batch:
        for column in OUTBOX:
            batch.drop_column(column.name)
