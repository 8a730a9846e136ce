"""Recording segments count their activity: seconds with motion and with moving tracked
objects (``motion_s``, ``objects_s``), for the timeline's marks and ``record.mode:
objects``.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recording_segments") as batch:
        batch.add_column(sa.Column("motion_s", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("objects_s", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("recording_segments") as batch:
        batch.drop_column("objects_s")
        batch.drop_column("motion_s")
