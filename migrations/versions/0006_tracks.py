"""The investigator search index: one row per confirmed track (camera, area, class,
colour, first and last sighting, thumbnail and clip), searched by time, by camera and
time, and by class and colour.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tracks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("camera_name", sa.String(200), nullable=False),
        sa.Column("county", sa.String(64)),
        sa.Column("township", sa.String(64)),
        sa.Column("village", sa.String(64)),
        sa.Column("grid", sa.String(64)),
        sa.Column("track_id", sa.Integer, nullable=False),
        sa.Column("object_class", sa.String(64), nullable=False),
        sa.Column("colour", sa.String(16)),
        sa.Column("first_seen", sa.Float, nullable=False),
        sa.Column("last_seen", sa.Float, nullable=False),
        sa.Column("frames", sa.Integer, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("thumbnail_path", sa.String(500)),
        sa.Column("clip_path", sa.String(500)),
        sa.Column("clip_sha256", sa.String(64)),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_tracks_first_seen", "tracks", ["first_seen"])
    op.create_index("ix_tracks_camera_first_seen", "tracks", ["camera_id", "first_seen"])
    op.create_index("ix_tracks_class_colour", "tracks", ["object_class", "colour"])


def downgrade() -> None:
    op.drop_index("ix_tracks_class_colour", "tracks")
    op.drop_index("ix_tracks_camera_first_seen", "tracks")
    op.drop_index("ix_tracks_first_seen", "tracks")
    op.drop_table("tracks")
