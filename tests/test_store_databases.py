"""The storage layer on SQLite and on a real PostgreSQL server: same code, same results.

PostgreSQL: ``$SHAOBING_TEST_PG`` or postgresql+psycopg://postgres@127.0.0.1:5432/test
(``.ci/run`` starts the server when it is not up). Each test works in its own schema.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from alerts.store import AlertQuery, AlertRecord, OutboxRecord, deliveries, query_alerts, save_alert
from camera_registry.config import CameraConfig
from camera_registry.store import list_cameras, upsert_camera
from shaobing.db import init_schema, make_engine

PG_URL = os.environ.get("SHAOBING_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
        yield init_schema(engine)
        engine.dispose()
        return
    schema = f"t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"PostgreSQL at {PG_URL} is not reachable ({exc}); start it (see .ci/run)",
                    pytrace=False)  # fmt: skip
    engine = create_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        yield init_schema(engine)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def alert(i: int, camera: str = "cam-1") -> AlertRecord:
    return AlertRecord(
        id=str(uuid.UUID(int=i)), camera_id=camera, camera_name="名", rule="r",
        type="crowd" if i % 2 else "loitering", severity="low", status="new",
        created_at=1000.0 + i, started_at=990.0 + i, object_class="person",
        track_ids_json="[1, 2]", zone="z", measured=14, threshold=10, unit="objects",
        explanation="14 persons ≥ 10", confidence=0.8, box_json="[1, 2, 3, 4]", pts=1.0,
    )  # fmt: skip


def test_alert_and_outbox_written_together(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        for i in range(1, 11):
            save_alert(session, alert(i), ["centre", "police"])
    with sessions() as session:
        rows, total = query_alerts(session, AlertQuery(type="crowd", limit=3))
        assert total == 5 and [r.created_at for r in rows] == [1009.0, 1007.0, 1005.0]
        assert [d.target for d in deliveries(session, rows[0].id)] == ["centre", "police"]
        assert rows[0].camera_name == "名"


def test_failed_transaction_leaves_neither(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(RuntimeError), sessions.begin() as session:
        save_alert(session, alert(1), ["centre"])
        session.flush()
        raise RuntimeError("crash before commit")
    with sessions() as session:
        assert query_alerts(session, AlertQuery())[1] == 0
        assert session.query(OutboxRecord).count() == 0


def test_camera_records(sessions: sessionmaker[Session]) -> None:
    cam = CameraConfig(id="xl-1", name="北门", source={"url": "rtsp://u:pw-77@10.0.0.1/a"},
                       area={"county": "示例县"})  # fmt: skip
    with sessions.begin() as session:
        upsert_camera(session, cam, origin="config")
    with sessions() as session:
        (rec,) = list_cameras(session)
        assert rec.source_display == "rtsp://10.0.0.1/a" and rec.county == "示例县"
        assert rec.config().source.password == "pw-77"
