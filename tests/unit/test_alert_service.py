"""The alert service over a real SQLite database: events become routed alerts once,
a failed store is retried from the bus, concurrent writers never share a message key."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.adapters.memory_bus import MemoryEventBus
from alerts.adapters.sql import OutboxRecord, SqlUnitOfWork
from alerts.domain.model import Alert
from alerts.domain.routing import Department, Router, RoutingRule, Target
from alerts.messages import EVENTS_TOPIC, EventMessage
from alerts.ports import ConcurrentUpdate
from alerts.service import AlertService, AlertWorkers
from analytics.types import Event
from core.area import Area
from shaobing.db import open_database

TOWNSHIP = Area(county="示例县", township="城关镇")


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine, factory = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    yield factory
    engine.dispose()


def router() -> Router:
    return Router(
        rules=[RoutingRule("r", departments=("pcs",), ack_deadline_s=60)],
        departments={"pcs": Department("pcs", "派出所", "police", "township", (TOWNSHIP,),
                                       ("pcs-api",)),
                     "county": Department("county", "县中心", "centre", "county",
                                          (Area(county="示例县"),), ("centre",))},
        targets={"pcs-api": Target("pcs-api", scope="routed"), "centre": Target("centre")},
    )  # fmt: skip


def message(alert_id: str = "a-1", track: int = 7) -> EventMessage:
    event = Event(camera_id="cam", rule="fence", type="intrusion", ts=0.0, pts=12.0,
                  track_ids=[track], object_class="person", zone="fence", severity="low",
                  measured=2.0, threshold=2.0, unit="s", explanation="person in zone 'fence'",
                  confidence=0.8, box=(1.0, 2.0, 3.0, 4.0), started_pts=10.0)  # fmt: skip
    return EventMessage(alert_id, event, "北门", Area(county="示例县", township="城关镇",
                                                       village="人民村"), 1000.0)  # fmt: skip


def keys(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as s:
        return list(s.scalars(select(OutboxRecord.idempotency_key).order_by(OutboxRecord.id)))


def test_event_becomes_a_routed_alert_once(sessions: sessionmaker[Session]) -> None:
    service = AlertService(lambda: SqlUnitOfWork(sessions), router)
    alert = service.create(message())
    assert alert is not None and alert.departments == {"pcs"} and alert.tier == "township"
    assert alert.started_at == 998.0 and alert.due_at() == 1060.0
    assert service.create(message()) is None  # redelivered: stored already
    assert sorted(keys(sessions)) == ["a-1:alert.created:1", "a-1:alert.created:1"]
    with sessions() as s:
        targets = sorted(s.scalars(select(OutboxRecord.target)))
    assert targets == ["centre", "pcs-api"]


def test_a_failed_store_is_retried_from_the_bus(sessions: sessionmaker[Session]) -> None:
    calls = {"n": 0}

    def flaky() -> SqlUnitOfWork:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("database is locked")
        return SqlUnitOfWork(sessions)

    bus = MemoryEventBus()
    service = AlertService(flaky, router)
    workers = AlertWorkers(service, bus, escalation_interval_s=60)
    workers.start()
    bus.publish(EVENTS_TOPIC, message().to_dict())
    deadline = time.monotonic() + 10
    while workers.pending() and time.monotonic() < deadline:
        time.sleep(0.05)
    workers.stop()
    assert workers.pending() == 0 and service.counters.failed == 1
    assert service.counters.created == 1 and service.get("a-1") is not None
    assert all(t.is_alive() is False for t in workers.threads)


def test_concurrent_writers_are_serialised_not_merged(sessions: sessionmaker[Session]) -> None:
    service = AlertService(lambda: SqlUnitOfWork(sessions), router, clock=lambda: 2000.0)
    service.create(message())
    # Two writers read the same alert; the first commits; the second must not.
    with SqlUnitOfWork(sessions) as first, SqlUnitOfWork(sessions) as second:
        a1, a2 = first.alerts.get("a-1"), second.alerts.get("a-1")
        assert isinstance(a1, Alert) and isinstance(a2, Alert)
        a1.apply("acknowledge", actor="op", at=1500.0)
        a2.apply("resolve", actor="other", at=1500.0)
        first.commit()
        with pytest.raises(ConcurrentUpdate):
            second.commit()

    # The service retries on fresh data: an escalation racing an operator's action.
    raced = {"done": False}

    def race(_: Alert) -> None:
        if not raced["done"]:
            raced["done"] = True
            with SqlUnitOfWork(sessions) as other:
                alert = other.alerts.get("a-1")
                assert alert is not None
                alert.apply("start", actor="dept", at=1600.0)
                other.commit()

    service.transition("a-1", "resolve", actor="op", note="done", check=race)
    # created, acknowledge, start, resolve: four messages with four keys, to each target.
    assert sorted(set(keys(sessions))) == [
        "a-1:alert.created:1", "a-1:alert.updated:2", "a-1:alert.updated:3",
        "a-1:alert.updated:4",
    ]  # fmt: skip
    assert len(keys(sessions)) == 8
    history = service.get("a-1")
    assert history is not None and history.status == "resolved"
