"""Recording (录像): the segment index and the ranges held for a case (保全).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recording_segments",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("key", sa.String(500), nullable=False),
        sa.Column("start", sa.Float, nullable=False),
        sa.Column("end", sa.Float, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("codec", sa.String(16), nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("alert_count", sa.Integer, nullable=False),
        sa.Column("repaired", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_recording_segments_camera_start", "recording_segments",
                    ["camera_id", "start"])  # fmt: skip
    op.create_index("ix_recording_segments_start", "recording_segments", ["start"])
    op.create_table(
        "recording_holds",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("start", sa.Float, nullable=False),
        sa.Column("end", sa.Float, nullable=False),
        sa.Column("case_number", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_recording_holds_camera", "recording_holds", ["camera_id"])


def downgrade() -> None:
    op.drop_index("ix_recording_holds_camera", "recording_holds")
    op.drop_table("recording_holds")
    op.drop_index("ix_recording_segments_start", "recording_segments")
    op.drop_index("ix_recording_segments_camera_start", "recording_segments")
    op.drop_table("recording_segments")
