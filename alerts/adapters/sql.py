"""SQL storage of alerts (SQLAlchemy 2; SQLite or PostgreSQL): tables, the alert
repository, the feedback log and the unit of work.

Rows are not domain objects: the repository maps an :class:`AlertRecord` to an
:class:`alerts.domain.model.Alert` and back. On commit, each alert's new history
entries and outgoing messages become ``alert_history`` and ``outbox`` rows in the
same transaction as the alert, so an alert is never stored without its
deliveries (or the reverse), and pending deliveries survive a restart.
"""

from __future__ import annotations

import json
import time
from types import TracebackType
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from alerts.domain.incidents import Occurrence
from alerts.domain.model import Alert, Deadlines, EvidenceRef, HistoryEntry, Outgoing
from alerts.links import EvidenceLinks
from alerts.payload import alert_payload
from alerts.ports import ConcurrentUpdate
from core.area import Area
from core.db import Base


class AlertRecord(Base):
    __tablename__ = "alerts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    camera_id: Mapped[str] = mapped_column(String(64), index=True)
    camera_name: Mapped[str] = mapped_column(String(200), default="")
    camera_gb28181_id: Mapped[str | None] = mapped_column(String(20))
    rule: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(32), index=True)
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="new", index=True)
    created_at: Mapped[float] = mapped_column(Float, index=True)
    started_at: Mapped[float] = mapped_column(Float)
    object_class: Mapped[str] = mapped_column(String(64))
    track_ids_json: Mapped[str] = mapped_column(Text, default="[]")
    zone: Mapped[str] = mapped_column(String(100))
    county: Mapped[str | None] = mapped_column(String(64))
    township: Mapped[str | None] = mapped_column(String(64))
    village: Mapped[str | None] = mapped_column(String(64))
    grid: Mapped[str | None] = mapped_column(String(64))
    measured: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(32))
    explanation: Mapped[str] = mapped_column(Text)
    confidence: Mapped[float] = mapped_column(Float)
    box_json: Mapped[str | None] = mapped_column(Text)
    pts: Mapped[float] = mapped_column(Float)
    details_json: Mapped[str | None] = mapped_column(Text)  # rule-specific (counts, fault...)
    snapshot_path: Mapped[str | None] = mapped_column(String(500))
    snapshot_sha256: Mapped[str | None] = mapped_column(String(64))
    annotated_path: Mapped[str | None] = mapped_column(String(500))
    annotated_sha256: Mapped[str | None] = mapped_column(String(64))
    # lifecycle (schema revision 0002)
    department_id: Mapped[str | None] = mapped_column(String(64), index=True)
    assignee: Mapped[str | None] = mapped_column(String(64), index=True)
    targets_json: Mapped[str | None] = mapped_column(Text)
    tier: Mapped[str | None] = mapped_column(String(16))
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    ack_deadline_s: Mapped[float | None] = mapped_column(Float)
    resolve_deadline_s: Mapped[float | None] = mapped_column(Float)
    due_at: Mapped[float | None] = mapped_column(Float, index=True)
    acknowledged_at: Mapped[float | None] = mapped_column(Float)
    resolved_at: Mapped[float | None] = mapped_column(Float)
    last_escalated_at: Mapped[float | None] = mapped_column(Float)
    false_alarm_reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[float | None] = mapped_column(Float)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    # evidence clip (schema revision 0004)
    clip_path: Mapped[str | None] = mapped_column(String(500))
    clip_sha256: Mapped[str | None] = mapped_column(String(64))
    clip_start: Mapped[float | None] = mapped_column(Float)
    clip_end: Mapped[float | None] = mapped_column(Float)
    # the incident this alert opened (schema revision 0009)
    alert_count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    last_at: Mapped[float | None] = mapped_column(Float)
    last_alert_id: Mapped[str | None] = mapped_column(String(36))
    suppressed: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    notified_at: Mapped[float | None] = mapped_column(Float)
    # Optimistic locking: two writers of one alert (an operator and the escalation clock)
    # must not both queue message N; the second commit fails and is retried on fresh data.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        # the newest incident of a camera × rule × zone (is a new alert a repeat?)
        Index("ix_alerts_incident_key", "camera_id", "rule", "zone", "last_at"),
    )


class OccurrenceRecord(Base):
    """Every alert, each in its incident (the first one is the incident's own alert)."""

    __tablename__ = "alert_occurrences"

    alert_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("alerts.id"), index=True)
    camera_id: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(100))
    at: Mapped[float] = mapped_column(Float)
    track_ids_json: Mapped[str] = mapped_column(Text, default="[]")
    measured: Mapped[float] = mapped_column(Float)
    explanation: Mapped[str] = mapped_column(Text, default="")
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    evidence_json: Mapped[str | None] = mapped_column(Text)
    suppressed: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class AlertDepartmentRecord(Base):
    """Every department an alert was routed, dispatched or escalated to (for scope)."""

    __tablename__ = "alert_departments"

    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id"), primary_key=True)
    department_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class AlertHistoryRecord(Base):
    __tablename__ = "alert_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id"), index=True)
    at: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    detail_json: Mapped[str | None] = mapped_column(Text)


class OutboxRecord(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        # Claiming: the due rows of one target, and whether an earlier message of the
        # same alert is still pending (without these, a claim scans the whole backlog
        # for each row: ~0.9 s per claim with 3,000 pending rows on SQLite).
        Index("ix_outbox_due", "target", "state", "next_attempt_at"),
        Index("ix_outbox_alert_target_seq", "alert_id", "target", "seq"),
    )

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
    # schema revision 0002: one row per message, not per alert
    event: Mapped[str] = mapped_column(String(32), default="alert.created")
    seq: Mapped[int] = mapped_column(Integer, default=1)
    idempotency_key: Mapped[str | None] = mapped_column(String(120))
    body: Mapped[str | None] = mapped_column(Text)  # the JSON sent, frozen when queued
    # schema revision 0004: claimed by a dispatcher (lease), dead letters
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[float | None] = mapped_column(Float)
    dead_at: Mapped[float | None] = mapped_column(Float)
    dead_reason: Mapped[str | None] = mapped_column(Text)


class FeedbackRecord(Base):
    """Feedback callbacks already applied (idempotency by the sender's message id)."""

    __tablename__ = "feedback_messages"

    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    alert_id: Mapped[str] = mapped_column(String(36), index=True)
    received_at: Mapped[float] = mapped_column(Float)
    result_json: Mapped[str] = mapped_column(Text)


class RoutingRuleRecord(Base):
    """Routing rules: from the config file (origin ``config``) or the API (``api``)."""

    __tablename__ = "routing_rules"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    origin: Mapped[str] = mapped_column(String(16), default="config")
    config_json: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[float] = mapped_column(Float)


# -- mapping ------------------------------------------------------------------------


def _loads(text: str | None, default: Any) -> Any:
    return json.loads(text) if text else default


def to_domain(r: AlertRecord, departments: set[str]) -> Alert:
    evidence: dict[str, EvidenceRef] = {}
    if r.snapshot_path and r.snapshot_sha256:
        evidence["snapshot"] = EvidenceRef(r.snapshot_path, r.snapshot_sha256)
    if r.annotated_path and r.annotated_sha256:
        evidence["annotated_snapshot"] = EvidenceRef(r.annotated_path, r.annotated_sha256)
    if r.clip_path and r.clip_sha256:
        evidence["clip"] = EvidenceRef(r.clip_path, r.clip_sha256, r.clip_start, r.clip_end)
    return Alert(
        id=r.id, camera_id=r.camera_id, camera_name=r.camera_name, rule=r.rule, type=r.type,
        camera_gb28181_id=r.camera_gb28181_id, severity=r.severity,  # type: ignore[arg-type]
        created_at=r.created_at, started_at=r.started_at, object_class=r.object_class,
        track_ids=_loads(r.track_ids_json, []), zone=r.zone,
        area=Area(county=r.county, township=r.township, village=r.village, grid=r.grid),
        measured=r.measured, threshold=r.threshold, unit=r.unit, explanation=r.explanation,
        confidence=r.confidence, box=_loads(r.box_json, None), pts=r.pts,
        details=_loads(r.details_json, {}), evidence=evidence,
        status=r.status,  # type: ignore[arg-type]
        department_id=r.department_id, assignee=r.assignee, departments=departments,
        targets=set(_loads(r.targets_json, [])),
        tier=(r.tier or "county"),  # type: ignore[arg-type]
        escalation_level=r.escalation_level or 0,
        deadlines=Deadlines(r.ack_deadline_s, r.resolve_deadline_s),
        acknowledged_at=r.acknowledged_at, resolved_at=r.resolved_at,
        false_alarm_reason=r.false_alarm_reason, last_escalated_at=r.last_escalated_at,
        updated_at=r.updated_at or r.created_at, seq=r.seq or 0,
        count=r.alert_count or 1, last_at=r.last_at or r.created_at,
        last_alert_id=r.last_alert_id or r.id, suppressed=bool(r.suppressed),
        notified_at=r.notified_at,
    )  # fmt: skip


def _evidence_json(evidence: dict[str, EvidenceRef]) -> str | None:
    if not evidence:
        return None
    return json.dumps({k: [v.path, v.sha256, v.start, v.end] for k, v in evidence.items()})


def occurrence_of(r: OccurrenceRecord) -> Occurrence:
    evidence = {k: EvidenceRef(*v) for k, v in _loads(r.evidence_json, {}).items()}
    return Occurrence(r.alert_id, r.at, tuple(_loads(r.track_ids_json, [])), r.measured,
                      r.explanation or "", r.confidence or 0.0, evidence,
                      bool(r.suppressed))  # fmt: skip


def _write(r: AlertRecord, a: Alert) -> None:
    snap = a.evidence.get("snapshot")
    ann = a.evidence.get("annotated_snapshot")
    clip = a.evidence.get("clip")
    values: dict[str, Any] = dict(
        camera_id=a.camera_id, camera_name=a.camera_name, rule=a.rule, type=a.type,
        camera_gb28181_id=a.camera_gb28181_id, severity=a.severity, status=a.status,
        created_at=a.created_at, started_at=a.started_at, object_class=a.object_class,
        track_ids_json=json.dumps(a.track_ids), zone=a.zone, county=a.area.county,
        township=a.area.township, village=a.area.village, grid=a.area.grid,
        measured=a.measured, threshold=a.threshold, unit=a.unit, explanation=a.explanation,
        confidence=a.confidence, box_json=json.dumps(a.box) if a.box is not None else None,
        pts=a.pts,
        details_json=json.dumps(a.details, ensure_ascii=False) if a.details else None,
        snapshot_path=snap.path if snap else None, snapshot_sha256=snap.sha256 if snap else None,
        annotated_path=ann.path if ann else None, annotated_sha256=ann.sha256 if ann else None,
        clip_path=clip.path if clip else None, clip_sha256=clip.sha256 if clip else None,
        clip_start=clip.start if clip else None, clip_end=clip.end if clip else None,
        department_id=a.department_id, assignee=a.assignee,
        targets_json=json.dumps(sorted(a.targets)), tier=a.tier,
        escalation_level=a.escalation_level, ack_deadline_s=a.deadlines.ack_s,
        resolve_deadline_s=a.deadlines.resolve_s, due_at=a.due_at(),
        acknowledged_at=a.acknowledged_at, resolved_at=a.resolved_at,
        last_escalated_at=a.last_escalated_at, false_alarm_reason=a.false_alarm_reason,
        updated_at=a.updated_at, seq=a.seq, alert_count=a.count, last_at=a.last_at,
        last_alert_id=a.last_alert_id, suppressed=a.suppressed, notified_at=a.notified_at,
    )  # fmt: skip
    for key, value in values.items():
        setattr(r, key, value)


def history_entry(r: AlertHistoryRecord) -> HistoryEntry:
    return HistoryEntry(
        r.at, r.actor, r.action, r.from_status, r.to_status,  # type: ignore[arg-type]
        r.note or "", _loads(r.detail_json, {}),
    )  # fmt: skip


# -- repositories -------------------------------------------------------------------


class SqlAlertRepository:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.seen: dict[str, tuple[Alert, AlertRecord | None]] = {}

    def get(self, alert_id: str) -> Alert | None:
        if alert_id in self.seen:
            return self.seen[alert_id][0]
        record = self.session.get(AlertRecord, alert_id)
        if record is None:
            return None
        alert = to_domain(record, self._departments(alert_id))
        self.seen[alert_id] = (alert, record)
        return alert

    def add(self, alert: Alert) -> None:
        self.seen[alert.id] = (alert, None)

    def due_for_escalation(self, now: float, limit: int = 100) -> list[Alert]:
        ids = self.session.execute(
            select(AlertRecord.id)
            .where(AlertRecord.due_at.is_not(None), AlertRecord.due_at <= now)
            .order_by(AlertRecord.due_at)
            .limit(limit)
        ).scalars()
        return [a for a in (self.get(i) for i in list(ids)) if a is not None]

    def latest_incident(self, camera_id: str, rule: str, zone: str) -> Alert | None:
        """The newest incident of a camera × rule × zone (None: there is none)."""
        found = self.session.execute(
            select(AlertRecord.id)
            .where(AlertRecord.camera_id == camera_id, AlertRecord.rule == rule,
                   AlertRecord.zone == zone)
            .order_by(AlertRecord.last_at.desc(), AlertRecord.created_at.desc())
            .limit(1)
        ).scalar()  # fmt: skip
        return None if found is None else self.get(found)

    def count_since(self, camera_id: str, rule: str, since: float) -> int:
        """A camera × rule's incidents opened from ``since`` on (items shown)."""
        return int(self.session.execute(
            select(func.count()).select_from(AlertRecord)
            .where(AlertRecord.camera_id == camera_id, AlertRecord.rule == rule,
                   AlertRecord.created_at >= since)
        ).scalar_one())  # fmt: skip

    def incident_of(self, alert_id: str) -> str | None:
        """The incident an alert (occurrence) belongs to (None: unknown alert)."""
        record = self.session.get(OccurrenceRecord, alert_id)
        return None if record is None else record.incident_id

    def attach_to_occurrence(self, alert_id: str, kind: str, ref: EvidenceRef) -> bool:
        """Add evidence (a clip) to an occurrence; False if it had it already."""
        record = self.session.get(OccurrenceRecord, alert_id)
        if record is None:
            return False
        evidence = _loads(record.evidence_json, {})
        value = [ref.path, ref.sha256, ref.start, ref.end]
        if evidence.get(kind) == value:
            return False
        evidence[kind] = value
        record.evidence_json = json.dumps(evidence)
        return True

    def _departments(self, alert_id: str) -> set[str]:
        stmt = select(AlertDepartmentRecord.department_id).where(
            AlertDepartmentRecord.alert_id == alert_id
        )
        return set(self.session.execute(stmt).scalars())

    def flush(self, links: EvidenceLinks | None) -> list[int]:
        """Write every alert seen with its new history and messages; the new outbox ids."""
        outbox_ids: list[int] = []
        for alert_id, (alert, record) in self.seen.items():
            if record is None:
                record = AlertRecord(id=alert_id)
                self.session.add(record)
                self.seen[alert_id] = (alert, record)
            _write(record, alert)
            self.session.flush()  # the alert row exists before rows that refer to it
            known = self._departments(alert_id)
            for dep in sorted(alert.departments - known):
                self.session.add(AlertDepartmentRecord(alert_id=alert_id, department_id=dep))
            for o in alert.drain_occurrences():
                self.session.add(OccurrenceRecord(
                    alert_id=o.alert_id, incident_id=alert_id, camera_id=alert.camera_id,
                    rule=alert.rule, at=o.at, track_ids_json=json.dumps(list(o.track_ids)),
                    measured=o.measured, explanation=o.explanation, confidence=o.confidence,
                    evidence_json=_evidence_json(dict(o.evidence)), suppressed=o.suppressed,
                ))  # fmt: skip
            history, outgoing = alert.drain()
            for h in history:
                self.session.add(AlertHistoryRecord(
                    alert_id=alert_id, at=h.at, actor=h.actor, action=h.action,
                    from_status=h.from_status, to_status=h.to_status, note=h.note,
                    detail_json=json.dumps(h.detail, ensure_ascii=False) if h.detail else None,
                ))  # fmt: skip
            rows = [self._outbox_row(alert, m, t, links) for m in outgoing for t in m.targets]
            self.session.add_all(rows)
            self.session.flush()
            outbox_ids.extend(r.id for r in rows)
        return outbox_ids

    @staticmethod
    def _outbox_row(
        alert: Alert, message: Outgoing, target: str, links: EvidenceLinks | None
    ) -> OutboxRecord:
        now = time.time()
        body = {
            "event": message.event,
            "sequence": message.seq,
            "alert": alert_payload(alert, links=links),
        }
        if message.change:
            body["change"] = message.change
        return OutboxRecord(
            alert_id=alert.id, target=target, state="pending", attempts=0,
            next_attempt_at=now, created_at=now, event=message.event, seq=message.seq,
            idempotency_key=message.idempotency_key(alert.id),
            body=json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")),
        )  # fmt: skip


class SqlFeedbackLog:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, source: str, message_id: str) -> dict[str, Any] | None:
        record = self.session.get(FeedbackRecord, (source, message_id))
        return None if record is None else json.loads(record.result_json)

    def add(self, source: str, message_id: str, alert_id: str, result: dict[str, Any]) -> None:
        self.session.add(FeedbackRecord(
            source=source, message_id=message_id, alert_id=alert_id, received_at=time.time(),
            result_json=json.dumps(result, ensure_ascii=False),
        ))  # fmt: skip


class SqlUnitOfWork:
    """One transaction: ``with uow: ...; uow.commit()``; leaving without commit rolls back."""

    def __init__(
        self, sessions: sessionmaker[Session], *, links: EvidenceLinks | None = None
    ) -> None:
        self.sessions = sessions
        self.links = links
        self.new_outbox: list[int] = []

    def __enter__(self) -> SqlUnitOfWork:
        self.session = self.sessions()
        self.alerts = SqlAlertRepository(self.session)
        self.feedback = SqlFeedbackLog(self.session)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.rollback()
        self.session.close()

    def commit(self) -> None:
        try:
            self.new_outbox = self.alerts.flush(self.links)
            self.session.commit()
        except StaleDataError as exc:
            self.session.rollback()
            raise ConcurrentUpdate(str(exc)) from exc
        self.alerts.seen.clear()

    def rollback(self) -> None:
        self.session.rollback()


# -- routing rules ------------------------------------------------------------------


def routing_rule_configs(session: Session) -> list[tuple[str, dict[str, Any]]]:
    """(origin, config) of every stored routing rule, by name."""
    rows = session.execute(select(RoutingRuleRecord).order_by(RoutingRuleRecord.name)).scalars()
    return [(r.origin, json.loads(r.config_json)) for r in rows]


def save_routing_rule(session: Session, name: str, config: dict[str, Any], origin: str) -> None:
    record = session.get(RoutingRuleRecord, name)
    if record is None:
        record = RoutingRuleRecord(name=name)
        session.add(record)
    record.origin = origin
    record.config_json = json.dumps(config, ensure_ascii=False)
    record.updated_at = time.time()


def delete_routing_rule(session: Session, name: str) -> bool:
    record = session.get(RoutingRuleRecord, name)
    if record is None:
        return False
    session.delete(record)
    return True


def sync_config_routing(session: Session, configs: dict[str, dict[str, Any]]) -> None:
    """Make the stored ``config`` rules those of the file; rules added by API stay
    (a file rule replaces an API rule of the same name)."""
    for record in session.execute(select(RoutingRuleRecord)).scalars():
        if record.origin == "config" and record.name not in configs:
            session.delete(record)
    for name, config in configs.items():
        save_routing_rule(session, name, config, "config")
