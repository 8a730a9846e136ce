"""Incidents through the alert service and the SQL adapter, on SQLite and PostgreSQL:
repeated alerts gather in one incident (one row for the operator, one created message,
throttled updates), redeliveries and late clips of a gathered alert are handled, a
closed incident or a passed gap opens a new one, and the hourly cap suppresses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.adapters.sql import AlertRecord, OccurrenceRecord, OutboxRecord, SqlUnitOfWork
from alerts.domain.incidents import IncidentPolicy
from alerts.domain.model import EvidenceRef
from alerts.domain.routing import Router, Target
from alerts.messages import ClipMessage, EventMessage
from alerts.service import AlertService
from analytics.types import Event
from core.area import Area
from shaobing.db import open_database
from tests.databases import pg_schema


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    if request.param == "sqlite":
        engine, factory = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
        yield factory
        engine.dispose()
        return
    with pg_schema() as url:
        engine, factory = open_database(url)
        yield factory
        engine.dispose()


def router() -> Router:
    return Router(rules=[], departments={}, targets={"centre": Target("centre")})


def message(alert_id: str, at: float, *, zone: str = "fence", track: int = 7) -> EventMessage:
    event = Event(camera_id="cam", rule="fence", type="intrusion", ts=0.0, pts=12.0,
                  track_ids=[track], object_class="person", zone=zone, severity="low",
                  measured=2.0, threshold=2.0, unit="s", explanation="person in zone",
                  confidence=0.8, box=(1.0, 2.0, 3.0, 4.0), started_pts=10.0)  # fmt: skip
    evidence = {"snapshot": EvidenceRef(f"s/{alert_id}.jpg", "cd" * 32)}
    return EventMessage(alert_id, event, "北门", Area(county="示例县"), at, evidence)


def service(sessions: sessionmaker[Session], **policy: object) -> AlertService:
    return AlertService(lambda: SqlUnitOfWork(sessions), router,
                        incidents=IncidentPolicy(**policy))  # type: ignore[arg-type]


def rows(sessions: sessionmaker[Session]) -> tuple[int, int, list[str]]:
    with sessions() as s:
        alerts = s.scalar(select(func.count()).select_from(AlertRecord)) or 0
        occurrences = s.scalar(select(func.count()).select_from(OccurrenceRecord)) or 0
        keys = list(s.scalars(select(OutboxRecord.idempotency_key).order_by(OutboxRecord.id)))
    return alerts, occurrences, [k or "" for k in keys]


def test_repeated_alerts_gather_in_one_incident(sessions: sessionmaker[Session]) -> None:
    svc = service(sessions)
    first = svc.create(message("a-1", 1000.0, track=1))
    assert first is not None and first.count == 1
    for i, at in enumerate((1010.0, 1030.0, 1050.0), start=2):
        incident = svc.create(message(f"a-{i}", at, track=i))
        assert incident is not None and incident.id == "a-1"
    assert svc.create(message("a-3", 1030.0)) is None  # a redelivered message
    stored = svc.get("a-1")
    assert stored is not None
    assert (stored.count, stored.created_at, stored.last_at, stored.last_alert_id) == (
        4, 1000.0, 1050.0, "a-4"
    )  # fmt: skip
    assert stored.track_ids == [1, 2, 3, 4] and not stored.suppressed
    alerts, occurrences, keys = rows(sessions)
    assert (alerts, occurrences) == (1, 4)
    # one created message, then one update per minute at most (with the count)
    assert keys == ["a-1:alert.created:1", "a-1:alert.updated:2"]
    assert (svc.counters.created, svc.counters.joined, svc.counters.duplicates) == (1, 3, 1)
    with sessions() as s:
        body = json.loads(s.scalars(select(OutboxRecord.body).order_by(OutboxRecord.id)).all()[1])
    assert body["change"] == {"action": "repeated", "count": 2, "last_at": 1010.0,
                              "alert_id": "a-2"}  # fmt: skip
    assert body["alert"]["incident"]["count"] == 2


def test_handling_applies_to_the_incident_and_closing_starts_a_new_one(
    sessions: sessionmaker[Session],
) -> None:
    svc = service(sessions)
    svc.create(message("a-1", 1000.0))
    svc.create(message("a-2", 1005.0))
    resolved = svc.transition("a-1", "resolve", actor="op")
    assert resolved.status == "resolved" and resolved.count == 2
    again = svc.create(message("a-3", 1010.0))
    assert again is not None and again.id == "a-3" and again.count == 1
    later = svc.create(message("a-4", 1010.0 + 61.0))  # intrusion gap: 60 s
    assert later is not None and later.id == "a-4"
    other_zone = svc.create(message("a-5", 1072.0, zone="gate"))
    assert other_zone is not None and other_zone.id == "a-5"
    _, _, keys = rows(sessions)
    assert keys[-1] == "a-5:alert.created:1"
    with sessions() as s:
        body = json.loads(s.scalars(select(OutboxRecord.body)
                                    .where(OutboxRecord.idempotency_key == "a-1:alert.updated:3"))
                          .one())  # fmt: skip
    assert body["change"]["to"] == "resolved" and body["change"]["count"] == 2


def test_clip_of_a_gathered_alert_lands_on_its_occurrence(sessions: sessionmaker[Session]) -> None:
    svc = service(sessions)
    svc.create(message("a-1", 1000.0))
    svc.create(message("a-2", 1005.0))
    clip = ClipMessage(alert_id="a-2", path="c/a-2.mp4", sha256="ef" * 32, start=1000.0,
                       end=1010.0)  # fmt: skip
    assert svc.attach_clip(clip) is True
    assert svc.attach_clip(clip) is False
    head = svc.get("a-1")
    assert head is not None and "clip" not in head.evidence  # the incident's own alert's
    with sessions() as s:
        evidence = json.loads(s.get(OccurrenceRecord, "a-2").evidence_json)  # type: ignore[union-attr]
    assert evidence["clip"][:2] == ["c/a-2.mp4", "ef" * 32]
    assert evidence["snapshot"][:2] == ["s/a-2.jpg", "cd" * 32]
    own = ClipMessage(alert_id="a-1", path="c/a-1.mp4", sha256="ab" * 32, start=990.0, end=1000.0)
    assert svc.attach_clip(own) is True
    head = svc.get("a-1")
    assert head is not None and head.evidence["clip"].path == "c/a-1.mp4"


def test_the_hourly_cap_suppresses_instead_of_opening(sessions: sessionmaker[Session]) -> None:
    svc = service(sessions, hourly_cap=3)
    for i in range(1, 4):  # three incidents this hour, each closed
        svc.create(message(f"a-{i}", 1000.0 + 100 * i))
        svc.transition(f"a-{i}", "resolve", actor="op")
    capped = svc.create(message("a-4", 1400.0))
    assert capped is not None and capped.id == "a-3" and capped.suppressed and capped.count == 2
    assert svc.create(message("a-5", 1500.0)) is not None
    alerts, occurrences, keys = rows(sessions)
    assert (alerts, occurrences) == (3, 5)  # counted, never dropped
    assert keys.count("a-3:alert.updated:3") == 1  # the one "suppressed" message
    assert not any(k.startswith("a-3:alert.updated:4") for k in keys)
    assert svc.counters.suppressed == 2
    after_an_hour = svc.create(message("a-6", 1300.0 + 3601.0 + 200))
    assert after_an_hour is not None and after_an_hour.id == "a-6"


def test_alerts_gathered_in_an_incident_do_not_use_up_the_cap(
    sessions: sessionmaker[Session],
) -> None:
    svc = service(sessions, hourly_cap=2)
    for i in range(10):  # one incident of ten alerts
        svc.create(message(f"a-{i}", 1000.0 + 10 * i))
    svc.transition("a-0", "resolve", actor="op")
    second = svc.create(message("b-1", 1200.0))
    assert second is not None and second.id == "b-1" and not second.suppressed
