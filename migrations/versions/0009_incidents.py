"""Incidents: repeated alerts of one camera × rule × zone are gathered in the incident
their first alert opened (``alerts`` gains its count, last time and alert, suppressed
flag and last notification; ``alert_occurrences`` lists every alert, each in its
incident). Every existing alert becomes its own incident of one.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("alert_count", sa.Integer, nullable=False,
                                   server_default="1"))  # fmt: skip
        batch.add_column(sa.Column("last_at", sa.Float))
        batch.add_column(sa.Column("last_alert_id", sa.String(36)))
        batch.add_column(sa.Column("suppressed", sa.Boolean, nullable=False,
                                   server_default="0"))  # fmt: skip
        batch.add_column(sa.Column("notified_at", sa.Float))
    op.execute("UPDATE alerts SET last_at = created_at, last_alert_id = id")
    op.create_index("ix_alerts_incident_key", "alerts", ["camera_id", "rule", "zone", "last_at"])
    op.create_table(
        "alert_occurrences",
        sa.Column("alert_id", sa.String(36), primary_key=True),
        sa.Column("incident_id", sa.String(36), sa.ForeignKey("alerts.id"), nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("rule", sa.String(100), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("track_ids_json", sa.Text, nullable=False),
        sa.Column("measured", sa.Float, nullable=False),
        sa.Column("explanation", sa.Text, nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("evidence_json", sa.Text),
        sa.Column("suppressed", sa.Boolean, nullable=False, server_default="0"),
    )
    op.create_index("ix_alert_occurrences_incident_id", "alert_occurrences", ["incident_id"])
    # Each alert so far is its own incident: its only occurrence is itself. The
    # evidence is copied as the repository writes it ({kind: [path, sha256, start, end]}).
    evidence = _evidence_sql(op.get_bind().dialect.name)
    op.execute(
        "INSERT INTO alert_occurrences (alert_id, incident_id, camera_id, rule, at, "
        "track_ids_json, measured, explanation, confidence, evidence_json, suppressed) "
        f"SELECT id, id, camera_id, rule, created_at, COALESCE(track_ids_json, '[]'), "
        f"measured, COALESCE(explanation, ''), COALESCE(confidence, 0), {evidence}, "
        f"{'false' if op.get_bind().dialect.name == 'postgresql' else '0'} FROM alerts"
    )


def _evidence_sql(dialect: str) -> str:
    """SQL building the evidence JSON of an alert row (NULL when it has none)."""
    if dialect == "postgresql":
        parts = (
            "CASE WHEN snapshot_path IS NOT NULL THEN jsonb_build_object('snapshot', "
            "jsonb_build_array(snapshot_path, snapshot_sha256, NULL, NULL)) ELSE '{}'::jsonb END",
            "CASE WHEN annotated_path IS NOT NULL THEN jsonb_build_object('annotated_snapshot', "
            "jsonb_build_array(annotated_path, annotated_sha256, NULL, NULL)) "
            "ELSE '{}'::jsonb END",
            "CASE WHEN clip_path IS NOT NULL THEN jsonb_build_object('clip', "
            "jsonb_build_array(clip_path, clip_sha256, clip_start, clip_end)) "
            "ELSE '{}'::jsonb END",
        )
        merged = " || ".join(f"({p})" for p in parts)
        return f"NULLIF(({merged})::text, '{{}}')"
    parts = (
        "CASE WHEN snapshot_path IS NOT NULL THEN json_object('snapshot', "
        "json_array(snapshot_path, snapshot_sha256, NULL, NULL)) ELSE '{}' END",
        "CASE WHEN annotated_path IS NOT NULL THEN json_object('annotated_snapshot', "
        "json_array(annotated_path, annotated_sha256, NULL, NULL)) ELSE '{}' END",
        "CASE WHEN clip_path IS NOT NULL THEN json_object('clip', "
        "json_array(clip_path, clip_sha256, clip_start, clip_end)) ELSE '{}' END",
    )
    merged = f"json_patch(json_patch({parts[0]}, {parts[1]}), {parts[2]})"
    return f"NULLIF({merged}, '{{}}')"


def downgrade() -> None:
    op.drop_index("ix_alert_occurrences_incident_id", "alert_occurrences")
    op.drop_table("alert_occurrences")
    op.drop_index("ix_alerts_incident_key", "alerts")
    with op.batch_alter_table("alerts") as batch:
        for column in ("notified_at", "suppressed", "last_alert_id", "last_at", "alert_count"):
            batch.drop_column(column)
