"""Builders of domain objects and stored alerts for tests (no I/O but the database)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from alerts.adapters.sql import SqlUnitOfWork
from alerts.domain.model import Alert, EvidenceRef
from core.area import Area


def make_alert(i: int = 1, **over: Any) -> Alert:
    """A realistic new alert; ``over`` sets any field."""
    fields: dict[str, Any] = dict(
        id=f"00000000-0000-0000-0000-{i:012d}", camera_id="cam-a", camera_name="村口",
        rule="r", type="loitering", severity="low", created_at=1000.0 + i,
        started_at=990.0 + i, object_class="person", track_ids=[1], zone="z",
        area=Area(county="示例县", township="城关镇"), measured=12.0, threshold=10.0,
        unit="s", explanation="person (track 1) in zone 'z' for 12.0 s ≥ 10 s",
        confidence=0.9, box=None, pts=float(i),
    )  # fmt: skip
    fields.update(over)
    return Alert(**fields)


def store(
    sessions: sessionmaker[Session],
    alert: Alert,
    targets: list[str] | None = None,
    departments: list[str] | None = None,
) -> Alert:
    """Store ``alert`` as the alert service would: history and one message per target."""
    alert.targets = set(targets or [])
    alert.departments = set(departments or [])
    alert.opened()
    with SqlUnitOfWork(sessions) as uow:
        uow.alerts.add(alert)
        uow.commit()
    return alert


def with_snapshot(alert: Alert, path: str, sha256: str) -> Alert:
    alert.evidence["snapshot"] = EvidenceRef(path, sha256)
    return alert
