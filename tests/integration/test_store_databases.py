"""The storage layer on SQLite and on a real PostgreSQL server: same code, same results.

PostgreSQL: ``$SHAOBING_TEST_PG`` or postgresql+psycopg://postgres@127.0.0.1:5432/test
(``.ci/run`` starts the server when it is not up). Each test works in its own schema,
named in the URL (``?options=-csearch_path=<schema>``) that ``open_database`` gets.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from alerts.adapters.sql import (
    AlertDepartmentRecord,
    AlertHistoryRecord,
    AlertRecord,
    OutboxRecord,
    SqlUnitOfWork,
)
from alerts.domain.model import EvidenceRef
from alerts.domain.routing import Department, Router, RoutingRule, Target
from alerts.messages import EventMessage
from alerts.service import AlertService
from analytics.config import ALERT_TYPES, CameraConfig
from analytics.types import Event
from camera_registry.store import CameraRecord, list_cameras, upsert_camera
from core.area import Area
from core.model import NAME_MAX
from core.secrets import SecretCipher
from tests.databases import database


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    with database(request.param, tmp_path) as factory:
        if request.param == "postgresql":
            with factory() as session:  # the tables are in the test's schema, not public
                schema = str(session.execute(text("SELECT current_schema()")).scalar())
                assert schema.startswith("t_")
        yield factory


TOWNSHIP = Area(county="示例县", township="城关镇", village="东村")
ROUTER = Router(
    rules=[RoutingRule("入侵到派出所", types=frozenset({"intrusion"}), departments=("pcs",))],
    departments={"pcs": Department("pcs", "城关派出所", "police", "township",
                                   (Area(county="示例县", township="城关镇"),), ("pcs-api",))},
    targets={"centre": Target("centre"), "traffic": Target("traffic", types=frozenset({
                 "pedestrian_on_road", "wrong_way", "stopped_vehicle", "congestion"})),
             "pcs-api": Target("pcs-api", scope="routed")},
)  # fmt: skip
T0 = 1717210800.0  # 2024-06-01 11:00 Asia/Shanghai


def service(sessions: sessionmaker[Session]) -> AlertService:
    return AlertService(lambda: SqlUnitOfWork(sessions), lambda: ROUTER)


# Events as the rules of the catalogue emit them (analytics/rules, shaobing/worker.py for the
# offline camera): unit, class, zone, details and explanation in their own words.
EVENTS: dict[str, dict[str, Any]] = {
    "intrusion": dict(
        rule="围栏闯入", zone="围栏内", track_ids=[7], object_class="person", severity="high",
        measured=2.4, threshold=2.0, unit="s", box=(412.34, 220.81, 470.12, 388.44),
        explanation="person (track 7) in zone '围栏内' for 2.4 s ≥ 2 s", confidence=0.8731),
    "pedestrian_on_road": dict(
        rule="高速行人", zone="主线", track_ids=[4], object_class="person", severity="high",
        measured=1.2, threshold=1.0, unit="s", box=(100.0, 200.0, 130.0, 280.0),
        explanation="person (track 4) in zone '主线' for 1.2 s ≥ 1 s", confidence=0.64),
    "loitering": dict(
        rule="桥下逗留", zone="桥下", track_ids=[6, 11], object_class="person", severity="low",
        measured=312.0, threshold=300.0, unit="s", box=(50.0, 60.0, 90.0, 160.0),
        explanation="person (track 6, 11) in zone '桥下' for 312.0 s ≥ 300 s", confidence=0.77),
    "wandering": dict(
        rule="校门徘徊", zone="校门", track_ids=[31], object_class="person", severity="low",
        measured=4.2, threshold=3.0, unit="path/displacement", box=(300.0, 350.0, 340.0, 470.0),
        explanation=("person (track 31) paced back and forth in zone '校门': walked 9.8 body "
                     "heights in 58 s, path/displacement 4.2 ≥ 3"), confidence=0.66),
    "line_crossing": dict(
        rule="入口线", zone="入口线", track_ids=[12], object_class="person", severity="medium",
        measured=3, threshold=1, unit="crossings", box=(210.0, 120.0, 240.0, 200.0),
        explanation="person (track 12) crossed line '入口线' A→B; counts A→B 3, B→A 1",
        confidence=0.81, extra={"direction": "a_to_b", "counts": {"a_to_b": 3, "b_to_a": 1}}),
    "wrong_way": dict(
        rule="北向逆行", zone="北向车道", track_ids=[21], object_class="car", severity="high",
        measured=171.0, threshold=120.0, unit="°", box=(700.0, 410.0, 820.0, 500.0),
        explanation=("car (track 21) moving the wrong way in zone '北向车道': 171° ≥ 120° off "
                     "the direction of travel, 2.3 box lengths in 1.8 s"), confidence=0.92),
    "stopped_vehicle": dict(
        rule="应急车道停车", zone="应急车道", track_ids=[3], object_class="truck",
        severity="high", measured=31.0, threshold=30.0, unit="s",
        box=(640.0, 300.0, 900.0, 520.0), confidence=0.88,
        explanation="truck (track 3) stationary in zone '应急车道' for 31.0 s ≥ 30 s"),
    "crowd": dict(
        rule="广场聚集", zone="广场", track_ids=[3, 5, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21],
        object_class="person", severity="medium", measured=12, threshold=10, unit="objects",
        box=(80.0, 300.5, 610.2, 700.9), confidence=0.71, key="episode-1",
        explanation="12 people ≥ 10 in zone '广场' for 31 s ≥ 30 s"),
    "person_down": dict(
        rule="倒地", zone="frame", track_ids=[9], object_class="person", severity="high",
        measured=10.5, threshold=10.0, unit="s", box=(150.0, 400.0, 260.0, 450.0),
        explanation="person (track 9) lying still in view for 10.5 s ≥ 10 s", confidence=0.45),
    "congestion": dict(
        rule="路口拥堵", zone="进口道", track_ids=[1, 2, 4, 5, 7, 8, 10, 13, 16],
        object_class="car,motorcycle,bus,truck", severity="medium", measured=0.12,
        threshold=0.5, unit="box lengths/s", box=(0.0, 250.0, 1280.0, 720.0),
        confidence=0.69, key="episode-2",
        explanation=("9 vehicles ≥ 8 in zone '进口道' with median speed 0.12 ≤ 0.5 box "
                     "lengths/s for 61 s ≥ 60 s")),
    "camera_fault": dict(
        rule="camera-offline", zone="frame", track_ids=[], object_class="", severity="medium",
        measured=125.0, threshold=120.0, unit="s", confidence=1.0, key="offline-1717210675",
        explanation=("camera offline for 125 s ≥ 120 s (last error: ConnectError: [Errno 113] "
                     "No route to host)"), extra={"fault": "offline"}),
}  # fmt: skip


def message(alert_type: str, n: int, **over: Any) -> EventMessage:
    fields = {**EVENTS[alert_type], **over}
    event = Event(camera_id="xl-0001", type=alert_type, ts=T0 + n, pts=8000.0 + n,
                  started_pts=8000.0 + n - fields["measured"] if fields["unit"] == "s" else None,
                  **fields)  # fmt: skip
    evidence = {}
    if event.box is not None:
        path = f"xl-0001/20240601/{n}"
        evidence = {
            "snapshot": EvidenceRef(f"{path}.jpg", f"{n:064x}"),
            "annotated_snapshot": EvidenceRef(f"{path}.annotated.jpg", f"{n + 1:064x}"),
        }
    return EventMessage(str(uuid.UUID(int=n)), event, "城关小学北门", TOWNSHIP, T0 + n, evidence)


def counts(sessions: sessionmaker[Session]) -> dict[str, int]:
    tables = (AlertRecord, OutboxRecord, AlertHistoryRecord, AlertDepartmentRecord)
    with sessions() as s:
        return {t.__tablename__: s.scalar(select(func.count()).select_from(t)) or 0 for t in tables}


def test_alert_and_outbox_written_together(sessions: sessionmaker[Session]) -> None:
    alerts = service(sessions)
    alert = alerts.create(message("intrusion", 1))
    assert alert is not None and alert.departments == {"pcs"}
    with sessions() as s:
        rows = list(s.scalars(select(OutboxRecord).order_by(OutboxRecord.target)))
        history = list(s.scalars(select(AlertHistoryRecord)))
    key = f"{alert.id}:alert.created:1"
    assert [(r.alert_id, r.target, r.event, r.seq, r.state, r.idempotency_key) for r in rows] == [
        (alert.id, "centre", "alert.created", 1, "pending", key),
        (alert.id, "pcs-api", "alert.created", 1, "pending", key),
    ]
    body = json.loads(rows[0].body or "")
    assert (body["event"], body["sequence"], body["alert"]["id"]) == ("alert.created", 1, alert.id)
    assert rows[0].body == rows[1].body  # one message, the same frozen body for each target
    assert [(h.action, h.actor, h.to_status) for h in history] == [("created", "system", "new")]
    # A message redelivered by the bus stores nothing more.
    assert alerts.create(message("intrusion", 1)) is None
    assert counts(sessions) == {"alerts": 1, "outbox": 2, "alert_history": 1,
                                "alert_departments": 1}  # fmt: skip


class CrashBeforeCommit(SqlUnitOfWork):
    """Writes the alert, its history and its outbox rows, then fails before the commit."""

    def commit(self) -> None:
        self.alerts.flush(self.links)
        raise RuntimeError("crash before commit")


def test_failed_transaction_leaves_neither(sessions: sessionmaker[Session]) -> None:
    crashing = AlertService(lambda: CrashBeforeCommit(sessions), lambda: ROUTER)
    with pytest.raises(RuntimeError, match="crash before commit"):
        crashing.create(message("intrusion", 1))
    assert counts(sessions) == {"alerts": 0, "outbox": 0, "alert_history": 0,
                                "alert_departments": 0}  # fmt: skip
    # The bus hands the message back: stored once, whole.
    assert service(sessions).create(message("intrusion", 1)) is not None
    assert counts(sessions) == {"alerts": 1, "outbox": 2, "alert_history": 1,
                                "alert_departments": 1}  # fmt: skip


def test_every_rule_type_is_stored_and_read_back_identically(
    sessions: sessionmaker[Session],
) -> None:
    assert sorted(EVENTS) == sorted(ALERT_TYPES)  # the whole catalogue, no more, no less
    alerts = service(sessions)
    created = {t: alerts.create(message(t, n)) for n, t in enumerate(ALERT_TYPES, start=1)}
    for alert_type, alert in created.items():
        assert alert is not None
        stored = alerts.get(alert.id)  # a new session: read from the database
        assert stored == alert, alert_type
        assert (stored.unit, stored.details) == (EVENTS[alert_type]["unit"],
                                                 EVENTS[alert_type].get("extra", {}))  # fmt: skip
    with sessions() as s:
        rows = s.execute(select(OutboxRecord.target, OutboxRecord.body)).all()
    bodies = {json.loads(b)["alert"]["type"]: json.loads(b)["alert"] for _, b in rows}
    assert set(bodies) == set(ALERT_TYPES)
    assert bodies["wandering"]["trace"]["unit"] == "path/displacement"
    assert bodies["line_crossing"]["trace"]["details"]["counts"] == {"a_to_b": 3, "b_to_a": 1}
    assert bodies["camera_fault"]["box"] is None and bodies["camera_fault"]["track_ids"] == []
    traffic = sorted(json.loads(b)["alert"]["type"] for t, b in rows if t == "traffic")
    assert traffic == ["congestion", "pedestrian_on_road", "stopped_vehicle", "wrong_way"]


def test_longest_names_the_config_allows_are_stored(sessions: sessionmaker[Session]) -> None:
    rule, zone = "规" * NAME_MAX, "区" * NAME_MAX  # characters, not bytes, on PostgreSQL
    long = service(sessions).create(message("loitering", 1, rule=rule, zone=zone))
    line = service(sessions).create(message("line_crossing", 2, rule=rule, zone=rule))
    classes = service(sessions).create(message("crowd", 3, object_class="x" * 64))
    for alert in (long, line, classes):
        assert alert is not None and service(sessions).get(alert.id) == alert


def camera(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "xl-1", "source": {"url": "rtsp://10.0.0.1/a"},
        "zones": [{"name": "校门", "points": [[0.1, 0.5], [0.6, 0.5], [0.6, 0.9]]}],
        "rules": [{"name": "校门徘徊", "type": "loitering", "zone": "校门"}],
    }  # fmt: skip
    data.update(over)
    return data


@pytest.mark.parametrize(
    "over",
    [
        {"rules": [{"name": "r" * (NAME_MAX + 1), "type": "loitering", "zone": "校门"}]},
        {"rules": [{"name": "画" * (NAME_MAX + 1), "type": "camera_fault"}]},
        {"rules": [{"name": "线" * (NAME_MAX + 1), "type": "line_crossing",
                    "line": [[0.1, 0.5], [0.9, 0.5]]}]},
        {"zones": [{"name": "z" * (NAME_MAX + 1), "points": [[0, 0], [1, 0], [1, 1]]}],
         "rules": []},
    ],
    ids=["rule", "camera_fault", "line", "zone"],
)  # fmt: skip
def test_long_names_are_config_errors_not_lost_alerts(over: dict[str, Any]) -> None:
    CameraConfig.model_validate(camera())  # the same camera with short names is fine
    with pytest.raises(ValidationError, match=f"at most {NAME_MAX} characters"):
        CameraConfig.model_validate(camera(**over))


def test_camera_records(sessions: sessionmaker[Session]) -> None:
    cam = CameraConfig(id="xl-1", name="北门", source={"url": "rtsp://u:pw-77@10.0.0.1/a"},
                       area={"county": "示例县"})  # fmt: skip
    cipher = SecretCipher(SecretCipher.new_key())
    with sessions.begin() as session:
        upsert_camera(session, cam, origin="config", cipher=cipher)
    with sessions() as session:
        (rec,) = list_cameras(session)
        assert rec.source_display == "rtsp://10.0.0.1/a" and rec.county == "示例县"
        raw = session.execute(select(CameraRecord.config_json)).scalar_one()
        assert "pw-77" not in raw  # encrypted in the column, on every database
        assert rec.config_data(cipher)["source"]["password"] == "pw-77"
        assert CameraConfig.model_validate(rec.config_data(cipher)) == cam
