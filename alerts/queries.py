"""Read side of alerts for the API: search with filters, scope and paging; detail with
history and deliveries. SQL only; results are domain alerts."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from alerts.adapters.sql import (
    AlertDepartmentRecord,
    AlertHistoryRecord,
    AlertRecord,
    OccurrenceRecord,
    OutboxRecord,
    history_entry,
    occurrence_of,
    to_domain,
)
from alerts.domain.incidents import Occurrence
from alerts.domain.model import Alert, HistoryEntry
from core.area import LEVELS, Area


@dataclass(frozen=True)
class Scope:
    """Which alerts a reader may see: everything, an area, or a department's / person's."""

    everything: bool = False
    area: Area | None = None
    department_id: str | None = None
    username: str | None = None


@dataclass
class AlertQuery:
    camera_id: str | None = None
    type: str | None = None
    status: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 50
    offset: int = 0
    department_id: str | None = None
    severity: str | None = None
    #: an area path (county, township, village), the leading levels only: its alerts
    area: tuple[str, ...] = ()


def scoped(stmt: Select[tuple[AlertRecord]], scope: Scope) -> Select[tuple[AlertRecord]]:
    if scope.everything:
        return stmt
    if scope.department_id is not None:
        mine = select(AlertDepartmentRecord.alert_id).where(
            AlertDepartmentRecord.department_id == scope.department_id
        )
        return stmt.where(or_(AlertRecord.id.in_(mine), AlertRecord.assignee == scope.username))
    area = scope.area or Area()
    for level, value in zip(LEVELS, area.path(), strict=False):
        stmt = stmt.where(getattr(AlertRecord, level) == value)
    return stmt


def _departments(session: Session, ids: list[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    if ids:
        rows = session.execute(
            select(AlertDepartmentRecord.alert_id, AlertDepartmentRecord.department_id).where(
                AlertDepartmentRecord.alert_id.in_(ids)
            )
        )
        for alert_id, dep in rows:
            out[alert_id].add(dep)
    return out


def search(session: Session, q: AlertQuery, scope: Scope) -> tuple[list[Alert], int]:
    """Alerts matching ``q`` inside ``scope``, newest first, and the total before paging."""
    stmt = scoped(select(AlertRecord), scope)
    for column, value in (
        (AlertRecord.camera_id, q.camera_id), (AlertRecord.type, q.type),
        (AlertRecord.status, q.status), (AlertRecord.severity, q.severity),
    ):  # fmt: skip
        if value:
            stmt = stmt.where(column == value)
    for level, value in zip(LEVELS, q.area, strict=False):
        stmt = stmt.where(getattr(AlertRecord, level) == value)
    if q.department_id:
        stmt = stmt.where(
            AlertRecord.id.in_(
                select(AlertDepartmentRecord.alert_id).where(
                    AlertDepartmentRecord.department_id == q.department_id
                )
            )
        )
    if q.since is not None:
        stmt = stmt.where(AlertRecord.created_at >= q.since)
    if q.until is not None:
        stmt = stmt.where(AlertRecord.created_at < q.until)
    total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    records: list[AlertRecord] = list(
        session.scalars(
            stmt.order_by(AlertRecord.created_at.desc(), AlertRecord.id)
            .limit(q.limit)
            .offset(q.offset)
        )
    )
    deps = _departments(session, [r.id for r in records])
    return [to_domain(r, deps[r.id]) for r in records], int(total)


def get_alert(session: Session, alert_id: str) -> Alert | None:
    record = session.get(AlertRecord, alert_id)
    if record is None:
        return None
    return to_domain(record, _departments(session, [alert_id])[alert_id])


def history(session: Session, alert_id: str) -> list[HistoryEntry]:
    stmt = (
        select(AlertHistoryRecord)
        .where(AlertHistoryRecord.alert_id == alert_id)
        .order_by(AlertHistoryRecord.at, AlertHistoryRecord.id)
    )
    return [history_entry(r) for r in session.execute(stmt).scalars()]


def deliveries(session: Session, alert_id: str) -> list[OutboxRecord]:
    stmt = select(OutboxRecord).where(OutboxRecord.alert_id == alert_id).order_by(OutboxRecord.id)
    return list(session.execute(stmt).scalars())


def pending_deliveries(session: Session) -> int:
    return int(
        session.execute(select(func.count()).where(OutboxRecord.state == "pending")).scalar_one()
    )


def occurrences(session: Session, incident_id: str, limit: int = 500) -> list[Occurrence]:
    """The alerts of an incident, oldest first (the first ``limit``)."""
    rows = session.execute(
        select(OccurrenceRecord).where(OccurrenceRecord.incident_id == incident_id)
        .order_by(OccurrenceRecord.at, OccurrenceRecord.alert_id).limit(limit)
    ).scalars()  # fmt: skip
    return [occurrence_of(r) for r in rows]


def occurrence(session: Session, incident_id: str, alert_id: str) -> Occurrence | None:
    """One alert of an incident (None: not in this incident)."""
    r = session.get(OccurrenceRecord, alert_id)
    return None if r is None or r.incident_id != incident_id else occurrence_of(r)
