"""Indexes a worker's lease rounds read the registry by: the cameras changed since the
last read (``updated_at``) and the enabled ones (a full id sweep) — without them every
round scans the whole camera table (issue 26: a county's 100,000 cameras).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_cameras_updated_at", "cameras", ["updated_at"])
    op.create_index("ix_cameras_enabled", "cameras", ["enabled"])


def downgrade() -> None:
    op.drop_index("ix_cameras_enabled", "cameras")
    op.drop_index("ix_cameras_updated_at", "cameras")
