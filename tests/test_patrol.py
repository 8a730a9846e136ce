"""Patrol analysis (轮巡): the schedule (pure) and real visits of real RTSP cameras and a
dead one through the hub, within the budget of visits at once."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from openpyxl import load_workbook

from api.app import create_app
from camera_registry.patrol import PatrolConfig, PatrolPlan, VisitResult
from shaobing.bootstrap import Hub
from shaobing.config import parse_config
from tests.hubproc import ADMIN_PASSWORD
from tests.peers.procs import RtspServer, free_port

# -- the plan (no I/O) -------------------------------------------------------------------


def test_first_visits_are_spread_over_the_budget_then_due_after_their_interval() -> None:
    plan = PatrolPlan(PatrolConfig(streams=2, look_s=10, interval_s=600))
    for i in range(5):
        plan.add(f"c{i}", "other", "县", now=0.0)
    assert plan.due(0.0, limit=10) == ["c0", "c1"]  # two at once; the rest 10 s apart
    assert plan.due(10.0, limit=10) == ["c2", "c3"]
    assert plan.due(10.0, limit=10) == []
    assert plan.due(20.0, limit=1) == ["c4"]
    assert plan.done("c0", 30.0, VisitResult("online")) == 630.0


def test_an_abnormal_visit_brings_the_next_one_sooner() -> None:
    plan = PatrolPlan(PatrolConfig(interval_s=1000, abnormal_factor=0.1))
    plan.add("c", "other", "", now=0.0)
    plan.due(0.0, 1)
    assert plan.done("c", 5.0, VisitResult("offline")) == 105.0
    plan.due(105.0, 1)
    assert plan.done("c", 110.0, VisitResult("online", faults=["frozen"])) == 210.0
    plan.due(210.0, 1)
    assert plan.done("c", 215.0, VisitResult("online", alerts=1)) == 315.0
    plan.due(315.0, 1)
    assert plan.done("c", 320.0, VisitResult("online")) == 1320.0


def test_intervals_by_programme_and_area_the_longest_area_path_wins() -> None:
    cfg = PatrolConfig(interval_s=1800, programmes={"huiyan": 86400},
                       areas={"示例县": 3600, "示例县/城关镇": 600})  # fmt: skip
    plan = PatrolPlan(cfg)
    assert plan.interval_for("huiyan", "其他县") == 86400
    assert plan.interval_for("xueliang", "其他县") == 1800
    assert plan.interval_for("huiyan", "示例县/河口镇") == 3600
    assert plan.interval_for("huiyan", "示例县/城关镇/东村") == 600
    assert plan.interval_for("huiyan", "示例县/城关镇外") == 3600  # a path, not a prefix


def test_a_removed_camera_is_never_due_again() -> None:
    plan = PatrolPlan(PatrolConfig(streams=4))
    plan.add("a", "other", "", 0.0)
    plan.add("b", "other", "", 0.0)
    plan.remove("a")
    assert plan.due(100.0, 10) == ["b"]
    assert plan.done("a", 100.0, VisitResult("online")) is None


# -- real visits ---------------------------------------------------------------------------


def test_the_hub_visits_patrolled_cameras_in_turn_and_records_what_each_visit_saw(
    tmp_path: Path, models_dir: Path, videos_dir: Path, _gst_ok: None
) -> None:
    server = RtspServer({"a": videos_dir / "crosswalk_people.mp4",
                         "b": videos_dir / "street_parked_cars.mp4"}).start()  # fmt: skip
    dead = f"rtsp://127.0.0.1:{free_port()}/none"  # a closed port on this host
    cameras: list[dict[str, Any]] = [
        {"id": "p-a", "analysis": "patrol", "source": {"url": server.url("a")}},
        {"id": "p-b", "analysis": "patrol", "source": {"url": server.url("b")}},
        {"id": "p-dead", "analysis": "patrol", "source": {"url": dead}},
        {"id": "p-a2", "analysis": "patrol", "source": {"url": server.url("a")}},
    ]
    loaded = parse_config({
        "data_dir": str(tmp_path / "data"),
        "detector": {"model": str(models_dir / "yolox_nano.onnx"), "workers": 1},
        "ingest": {"reconnect_initial_s": 0.2, "reconnect_max_s": 0.5, "open_timeout_s": 3},
        "patrol": {"streams": 2, "look_s": 2, "interval_s": 3600, "open_timeout_s": 6,
                   "abnormal_factor": 0.01},
        "cameras": cameras,
    }, "patrol.yaml", tmp_path)  # fmt: skip
    hub = Hub(loaded)
    most_at_once = 0
    try:
        hub.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            most_at_once = max(most_at_once, len(hub.worker.readers))
            st = {c["id"]: hub.status.snapshot(c["id"]) for c in cameras}
            if all(s is not None and s.visits >= 1 for s in st.values()):
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"not every camera visited: {hub.status.all()}")
        assert most_at_once <= 2  # the budget: two visits at once
        for cid in ("p-a", "p-b", "p-a2"):
            s = st[cid]
            assert s is not None and s.state == "online" and s.patrol
            assert s.frames_analysed > 0 and s.next_visit_at is not None
            assert s.next_visit_at - (s.last_visit_at or 0) > 3000  # a normal interval
        dead_st = st["p-dead"]
        assert dead_st is not None and dead_st.state == "offline"
        assert dead_st.next_visit_at is not None and dead_st.last_visit_at is not None
        assert dead_st.next_visit_at - dead_st.last_visit_at < 60  # abnormal: sooner
        time.sleep(1.0)
        assert not hub.worker.readers or len(hub.worker.readers) <= 2

        # What the centre and the maintenance company read (area-scoped API).
        hub.ensure_admin(ADMIN_PASSWORD)
        client = TestClient(create_app(hub.services, hub.sessions, allowed_hosts=["testserver"]))
        token = client.post("/api/auth/login", json={
            "username": "admin", "password": ADMIN_PASSWORD}).json()["token"]  # fmt: skip
        auth = {"Authorization": f"Bearer {token}"}
        summary = client.get("/api/patrol/summary?by=programme", headers=auth).json()
        total = summary["total"]
        assert (total["patrolled"], total["visited"], total["online"]) == (4, 4, 3)
        assert total["online_rate"] == 0.75 and total["faults"].get("offline") == 1
        listed = client.get("/api/patrol/abnormal", headers=auth).json()
        assert [c["id"] for c in listed] == ["p-dead"] and listed[0]["state"] == "offline"
        book = client.get("/api/patrol/abnormal.xlsx", headers=auth)
        assert book.status_code == 200 and book.content[:2] == b"PK"
        sheet = load_workbook(io.BytesIO(book.content)).active
        assert sheet is not None and sheet["A2"].value == "p-dead" and sheet["E2"].value == "离线"
    finally:
        hub.stop()
        server.stop()
