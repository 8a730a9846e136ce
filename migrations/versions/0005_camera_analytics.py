"""Zones, rules and motion gate of a camera as edited in the console; the camera's
GB/T 28181 channel id on alerts.

The console's zones and rules override the camera's config (file or import) until
cleared, so an edit survives a restart; who changed them and when is kept beside
them. Alerts carry their camera's GB/T 28181 id for platforms that address
cameras by it (WVP-GB28181-pro, the provincial platforms above). Two outbox indexes
keep claiming fast when thousands of deliveries are pending.

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
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("camera_gb28181_id", sa.String(20)))
    # Claiming outbox rows stays fast with a backlog (see OutboxRecord).
    op.create_index("ix_outbox_due", "outbox", ["target", "state", "next_attempt_at"])
    op.create_index("ix_outbox_alert_target_seq", "outbox", ["alert_id", "target", "seq"])


def downgrade() -> None:
    op.drop_index("ix_outbox_alert_target_seq", "outbox")
    op.drop_index("ix_outbox_due", "outbox")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("camera_gb28181_id")
    op.drop_table("camera_analytics")
