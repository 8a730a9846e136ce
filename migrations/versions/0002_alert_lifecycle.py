"""Alert lifecycle: handling columns, history, departments, per-message outbox rows,
feedback idempotency, routing rules; ``unit`` widened to 32 characters and
``object_class`` to 64.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ALERT_COLUMNS = [
    sa.Column("department_id", sa.String(64)),
    sa.Column("assignee", sa.String(64)),
    sa.Column("targets_json", sa.Text),
    sa.Column("tier", sa.String(16)),
    sa.Column("escalation_level", sa.Integer, nullable=False, server_default="0"),
    sa.Column("ack_deadline_s", sa.Float),
    sa.Column("resolve_deadline_s", sa.Float),
    sa.Column("due_at", sa.Float),
    sa.Column("acknowledged_at", sa.Float),
    sa.Column("resolved_at", sa.Float),
    sa.Column("last_escalated_at", sa.Float),
    sa.Column("false_alarm_reason", sa.Text),
    sa.Column("updated_at", sa.Float),
    sa.Column("seq", sa.Integer, nullable=False, server_default="0"),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
]


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        for column in ALERT_COLUMNS:
            batch.add_column(column)
    if op.get_bind().dialect.name != "sqlite":  # SQLite does not enforce lengths
        # "path/displacement" (17 characters) overflowed String(16) on PostgreSQL.
        op.alter_column("alerts", "unit", type_=sa.String(32), existing_type=sa.String(16),
                        existing_nullable=False)  # fmt: skip
        # A custom model's class names can be longer than COCO's.
        op.alter_column("alerts", "object_class", type_=sa.String(64),
                        existing_type=sa.String(32), existing_nullable=False)  # fmt: skip
    op.create_index("ix_alerts_department_id", "alerts", ["department_id"])
    op.create_index("ix_alerts_assignee", "alerts", ["assignee"])
    op.create_index("ix_alerts_due_at", "alerts", ["due_at"])
    # Alerts stored before this revision: one message (alert.created) was queued each.
    op.execute("UPDATE alerts SET seq = 1, updated_at = created_at, tier = 'county'")
    # Their targets are those of their outbox rows (cancelled rows never reached theirs),
    # so later updates of an old alert reach the receivers that have it.
    bind = op.get_bind()
    followers: dict[str, set[str]] = {}
    rows = bind.execute(sa.text("SELECT alert_id, target FROM outbox WHERE state <> 'cancelled'"))
    for alert_id, target in rows:
        followers.setdefault(alert_id, set()).add(target)
    if followers:
        bind.execute(
            sa.text("UPDATE alerts SET targets_json = :targets WHERE id = :id"),
            [{"id": a, "targets": json.dumps(sorted(t))} for a, t in followers.items()],
        )
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("event", sa.String(32), nullable=False,
                                   server_default="alert.created"))  # fmt: skip
        batch.add_column(sa.Column("seq", sa.Integer, nullable=False, server_default="1"))
        batch.add_column(sa.Column("idempotency_key", sa.String(120)))
        batch.add_column(sa.Column("body", sa.Text))
    op.create_table(
        "alert_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.String(36), sa.ForeignKey("alerts.id"), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_status", sa.String(16)),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("detail_json", sa.Text),
    )
    op.create_index("ix_alert_history_alert_id", "alert_history", ["alert_id"])
    op.execute(
        "INSERT INTO alert_history (alert_id, at, actor, action, from_status, to_status, note) "
        "SELECT id, created_at, 'system', 'created', NULL, status, explanation FROM alerts"
    )
    op.create_table(
        "alert_departments",
        sa.Column("alert_id", sa.String(36), sa.ForeignKey("alerts.id"), primary_key=True),
        sa.Column("department_id", sa.String(64), primary_key=True),
    )
    op.create_index("ix_alert_departments_department_id", "alert_departments", ["department_id"])
    op.create_table(
        "feedback_messages",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("message_id", sa.String(128), primary_key=True),
        sa.Column("alert_id", sa.String(36), nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("result_json", sa.Text, nullable=False),
    )
    op.create_index("ix_feedback_messages_alert_id", "feedback_messages", ["alert_id"])
    op.create_table(
        "routing_rules",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("config_json", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    # Shaobing before Alembic reads this row: 3 makes it refuse the upgraded database
    # ("newer than this Shaobing") instead of misreading it.
    op.execute("UPDATE schema_version SET version = 3")


def downgrade() -> None:
    for table in ("routing_rules", "feedback_messages", "alert_departments", "alert_history"):
        op.drop_table(table)
    op.drop_index("ix_alerts_due_at", "alerts")
    op.drop_index("ix_alerts_assignee", "alerts")
    op.drop_index("ix_alerts_department_id", "alerts")
    with op.batch_alter_table("outbox") as batch:
        for name in ("body", "idempotency_key", "seq", "event"):
            batch.drop_column(name)
    with op.batch_alter_table("alerts") as batch:
        for column in ALERT_COLUMNS:
            batch.drop_column(column.name)
    op.execute("UPDATE schema_version SET version = 2")
