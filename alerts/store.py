"""SQL storage of alerts and the dispatch outbox.

An alert and one outbox row per dispatch target are written in one
transaction, so an alert is never stored without its deliveries (or the
reverse), and pending deliveries survive a restart.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, ForeignKey, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from shaobing.db import Base

ALERT_STATUSES = ("new", "acknowledged", "dispatched", "in_progress", "resolved", "false_alarm")


class AlertRecord(Base):
    __tablename__ = "alerts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    camera_id: Mapped[str] = mapped_column(String(64), index=True)
    camera_name: Mapped[str] = mapped_column(String(200), default="")
    rule: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(32), index=True)
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="new", index=True)
    created_at: Mapped[float] = mapped_column(Float, index=True)
    started_at: Mapped[float] = mapped_column(Float)
    object_class: Mapped[str] = mapped_column(String(32))
    track_ids_json: Mapped[str] = mapped_column(Text, default="[]")
    zone: Mapped[str] = mapped_column(String(100))
    county: Mapped[str | None] = mapped_column(String(64))
    township: Mapped[str | None] = mapped_column(String(64))
    village: Mapped[str | None] = mapped_column(String(64))
    grid: Mapped[str | None] = mapped_column(String(64))
    measured: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(16))
    explanation: Mapped[str] = mapped_column(Text)
    confidence: Mapped[float] = mapped_column(Float)
    box_json: Mapped[str | None] = mapped_column(Text)
    pts: Mapped[float] = mapped_column(Float)
    details_json: Mapped[str | None] = mapped_column(Text)  # rule-specific (counts, fault...)
    snapshot_path: Mapped[str | None] = mapped_column(String(500))
    snapshot_sha256: Mapped[str | None] = mapped_column(String(64))
    annotated_path: Mapped[str | None] = mapped_column(String(500))
    annotated_sha256: Mapped[str | None] = mapped_column(String(64))


class OutboxRecord(Base):
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id"), index=True)
    target: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float, index=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_status: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float)
    delivered_at: Mapped[float | None] = mapped_column(Float)


def save_alert(session: Session, alert: AlertRecord, targets: list[str]) -> None:
    """Add the alert and its outbox rows (the caller's transaction commits both)."""
    session.add(alert)
    now = time.time()
    for target in targets:
        session.add(
            OutboxRecord(
                alert_id=alert.id,
                target=target,
                state="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )


@dataclass
class AlertQuery:
    camera_id: str | None = None
    type: str | None = None
    status: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 50
    offset: int = 0


def query_alerts(session: Session, q: AlertQuery) -> tuple[list[AlertRecord], int]:
    """Alerts matching ``q``, newest first, and the total count before paging."""
    stmt = select(AlertRecord)
    if q.camera_id:
        stmt = stmt.where(AlertRecord.camera_id == q.camera_id)
    if q.type:
        stmt = stmt.where(AlertRecord.type == q.type)
    if q.status:
        stmt = stmt.where(AlertRecord.status == q.status)
    if q.since is not None:
        stmt = stmt.where(AlertRecord.created_at >= q.since)
    if q.until is not None:
        stmt = stmt.where(AlertRecord.created_at < q.until)
    total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    rows = session.execute(
        stmt.order_by(AlertRecord.created_at.desc(), AlertRecord.id).limit(q.limit).offset(q.offset)
    ).scalars()
    return list(rows), int(total)


def deliveries(session: Session, alert_id: str) -> list[OutboxRecord]:
    stmt = select(OutboxRecord).where(OutboxRecord.alert_id == alert_id).order_by(OutboxRecord.id)
    return list(session.execute(stmt).scalars())


def alert_payload(alert: AlertRecord, *, base_url: str = "") -> dict[str, Any]:
    """The alert as JSON: the dispatch payload and the API's alert body (one schema)."""
    snapshot_url = f"{base_url}/api/alerts/{alert.id}/snapshot.jpg" if alert.snapshot_path else None
    annotated_url = (
        f"{base_url}/api/alerts/{alert.id}/snapshot.jpg?annotated=true"
        if alert.annotated_path
        else None
    )
    return {
        "id": alert.id,
        "type": alert.type,
        "rule": alert.rule,
        "severity": alert.severity,
        "status": alert.status,
        "camera": {"id": alert.camera_id, "name": alert.camera_name},
        "area": {
            "county": alert.county,
            "township": alert.township,
            "village": alert.village,
            "grid": alert.grid,
        },
        "created_at": alert.created_at,
        "started_at": alert.started_at,
        "object_class": alert.object_class,
        "track_ids": json.loads(alert.track_ids_json),
        "zone": alert.zone,
        "trace": {
            "measured": alert.measured,
            "threshold": alert.threshold,
            "unit": alert.unit,
            "explanation": alert.explanation,
            "details": json.loads(alert.details_json) if alert.details_json else {},
        },
        "confidence": round(alert.confidence, 3),
        "box": json.loads(alert.box_json) if alert.box_json else None,
        "evidence": {
            "snapshot": {"url": snapshot_url, "sha256": alert.snapshot_sha256},
            "annotated_snapshot": {"url": annotated_url, "sha256": alert.annotated_sha256},
        },
    }
