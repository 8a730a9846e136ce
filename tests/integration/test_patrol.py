"""Patrol analysis (轮巡): real visits of real RTSP cameras and a dead one through the hub,
within the budget of visits at once, and a parked car found by comparing two visits (the
schedule itself: tests/unit/test_patrol_plan.py; the comparison: tests/unit/test_revisit.py)."""

from __future__ import annotations

import io
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from api.app import create_app
from camera_registry.store import SqlPatrolSightings, clear_patrol_sightings
from shaobing.bootstrap import Hub
from shaobing.config import parse_config
from shaobing.db import open_database
from tests.databases import pg_schema
from tests.hubproc import ADMIN_PASSWORD
from tests.peers.procs import RtspServer, free_port
from tests.peers.silent import SilentServer

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


def test_a_camera_that_hangs_its_handshake_frees_its_patrol_slot_at_the_timeout(
    tmp_path: Path, models_dir: Path, videos_dir: Path, _gst_ok: None
) -> None:
    """One visit at a time, the hung camera first (the plan takes them in id order): its
    visit ends at the patrol's open_timeout_s (offline, with the reason) and the next
    camera is visited while the hung handshake is still open (FFmpeg's own timeout is a
    minute here)."""
    silent = SilentServer()
    server = RtspServer({"a": videos_dir / "crosswalk_people.mp4"}).start()
    cameras: list[dict[str, Any]] = [
        {"id": "p-1-hung", "analysis": "patrol",
         "source": {"url": f"rtsp://127.0.0.1:{silent.port}/stream"}},
        {"id": "p-2-good", "analysis": "patrol", "source": {"url": server.url("a")}},
    ]  # fmt: skip
    loaded = parse_config({
        "data_dir": str(tmp_path / "data"),
        "detector": {"model": str(models_dir / "yolox_nano.onnx"), "workers": 1},
        "ingest": {"open_timeout_s": 60, "read_timeout_s": 60},
        "patrol": {"streams": 1, "look_s": 2, "interval_s": 3600, "open_timeout_s": 8},
        "cameras": cameras,
    }, "patrol.yaml", tmp_path)  # fmt: skip
    hub = Hub(loaded)
    try:
        hub.start()
        deadline = time.monotonic() + 50
        while time.monotonic() < deadline:
            good = hub.status.snapshot("p-2-good")
            if good is not None and good.visits >= 1:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"the second camera was never visited: {hub.status.all()}")
        # the hung handshake is still open: its slot was freed by the patrol's timeout,
        # not by the connection giving up
        assert silent.accepted >= 1 and silent.open >= 1
        hung = hub.status.snapshot("p-1-hung")
        assert hung is not None and hung.visits == 1 and hung.state == "offline"
        assert "no picture within 8 s" in (hung.last_error or "")
        assert good.state == "online" and good.frames_analysed > 0, good
        assert hung.next_visit_at is not None and hung.last_visit_at is not None
        assert hung.next_visit_at - hung.last_visit_at < 3600  # abnormal: sooner
        # the stale reader of the hung visit, when FFmpeg gives up, must not overwrite
        # what the visit recorded: the patrol stopped it
        assert "p-1-hung" not in hub.worker.readers
    finally:
        hub.stop()
        server.stop()
        silent.close()


def test_a_view_turned_between_two_visits_is_found_on_the_second(
    tmp_path: Path, models_dir: Path, videos_dir: Path, _gst_ok: None
) -> None:
    """The picture a visit learned is what the next visit compares with: a camera that
    shows another scene on its second visit (here: its stream now another street) is
    reported turned away from its view (scene_change), which a visit judging on its own
    few seconds cannot see."""
    server = RtspServer({"a": videos_dir / "crosswalk_people.mp4",
                         "b": videos_dir / "highway_divided.mp4"}).start()  # fmt: skip
    loaded = parse_config({
        "data_dir": str(tmp_path / "data"),
        "detector": {"model": str(models_dir / "yolox_nano.onnx"), "workers": 1},
        "patrol": {"streams": 1, "look_s": 8, "interval_s": 2, "open_timeout_s": 15},
        "cameras": [{"id": "p-turn", "analysis": "patrol", "source": {"url": server.url("a")}}],
    }, "patrol.yaml", tmp_path)  # fmt: skip
    hub = Hub(loaded)
    try:
        hub.start()

        first = _visits(hub, 1, "p-turn")
        assert first.state == "online" and first.faults == []
        cam = hub.patrol.cameras["p-turn"]
        turned = cam.model_copy(update={"source": cam.source.model_copy(
            update={"url": server.url("b")})})  # fmt: skip
        hub.patrol.update(turned)  # from the next visit on, the camera shows another scene
        second = _visits(hub, 2, "p-turn")
        assert second.state == "online" and "scene_change" in second.faults, second
    finally:
        hub.stop()
        server.stop()


# -- stopped vehicles between visits (analytics/revisit.py) --------------------------------

#: The kerb in front of the parked car at the bottom right of street_parked_cars.mp4 (its
#: anchor near (0.60, 0.86)); the parked truck on its left (0.36, 0.82) is outside.
KERB = [[0.47, 0.6], [0.76, 0.6], [0.76, 0.95], [0.47, 0.95]]


def _street_patrol(tmp_path: Path, models_dir: Path, url: str) -> dict[str, Any]:
    """A patrolled camera over the parked cars with a stopped_vehicle rule over one of them:
    4 s looks 6 s apart, the rule's 8 s longer than a look (the rule alone never fires
    within one) and shorter than two looks and the gap."""
    return {
        "data_dir": str(tmp_path / "data"),
        "detector": {"model": str(models_dir / "yolox_nano.onnx"), "workers": 1},
        "patrol": {"streams": 1, "look_s": 4, "interval_s": 6, "open_timeout_s": 15},
        "cameras": [{
            "id": "p-street", "analysis": "patrol", "source": {"url": url},
            "zones": [{"name": "kerb", "points": KERB}],
            "rules": [{"name": "no-stopping", "type": "stopped_vehicle", "zone": "kerb",
                       "min_duration_s": 8}],
        }],
    }  # fmt: skip


def _stopped_alerts(hub: Hub) -> list[dict[str, Any]]:
    hub.ensure_admin(ADMIN_PASSWORD)
    client = TestClient(create_app(hub.services, hub.sessions, allowed_hosts=["testserver"]))
    token = client.post("/api/auth/login", json={
        "username": "admin", "password": ADMIN_PASSWORD}).json()["token"]  # fmt: skip
    page = client.get("/api/alerts", params={"camera_id": "p-street", "type": "stopped_vehicle"},
                      headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert page.status_code == 200, page.text
    items: list[dict[str, Any]] = page.json()["items"]
    return items


def _visits(hub: Hub, n: int, camera_id: str = "p-street", within: float = 90) -> Any:
    """The camera's status once its ``n``-th patrol visit is done."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        st = hub.status.snapshot(camera_id)
        if st is not None and st.visits >= n:
            return st
        time.sleep(0.05)
    raise AssertionError(f"visit {n} not done: {hub.status.snapshot(camera_id)}")


def _published(hub: Hub, n: int, within: float = 20) -> list[dict[str, Any]]:
    """The stopped_vehicle alerts once ``n`` are stored (evidence rendered, published)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        alerts = _stopped_alerts(hub)
        if len(alerts) >= n:
            return alerts
        time.sleep(0.2)
    raise AssertionError(f"{n} stopped_vehicle alert(s) expected, got {_stopped_alerts(hub)}")


def test_a_car_parked_in_a_stopped_vehicle_zone_is_alerted_on_the_second_visit_only(
    tmp_path: Path, models_dir: Path, videos_dir: Path, _gst_ok: None
) -> None:
    """The first visit sees the parked car and raises nothing (one sighting); the second
    finds it at the same place, at least the rule's duration later: the camera's
    stopped_vehicle alert with this visit's evidence and the earlier visit's time; the
    third finds it again and raises no second alert."""
    server = RtspServer({"street": videos_dir / "street_parked_cars.mp4"})
    server.start()
    hub = Hub(parse_config(_street_patrol(tmp_path, models_dir, server.url("street")),
                           "patrol.yaml", tmp_path))  # fmt: skip
    try:
        hub.start()
        first = _visits(hub, 1)
        assert first.state == "online"
        time.sleep(1.0)  # an alert of the first visit would be stored by now
        assert _stopped_alerts(hub) == []
        second = _visits(hub, 2)
        [alert] = _published(hub, 1)
        trace = alert["trace"]
        assert alert["rule"] == "no-stopping" and alert["zone"] == "kerb"
        assert alert["object_class"] in ("car", "truck")
        assert trace["details"]["patrol"] is True
        earlier = trace["details"]["earlier_visit_at"]
        assert first.last_visit_at - 6 <= earlier <= first.last_visit_at  # seen on visit 1
        # stopped at least from the first visit's sighting to this one's, ≥ the rule's 8 s
        assert trace["measured"] >= 8 and trace["threshold"] == 8
        assert trace["measured"] >= (second.last_visit_at or 0) - first.last_visit_at
        assert alert["started_at"] <= earlier  # since the first visit's sighting
        assert "on the patrol visit of" in trace["explanation"]
        assert "轮巡比对" in trace["explanation_zh"]
        assert alert["evidence"]["snapshot"]["url"] and alert["evidence"]["annotated_snapshot"]
        seen = hub.patrol.last_sightings("p-street")
        assert seen is not None
        w, h = seen.frame_size
        x1, _, x2, y2 = alert["box"]  # the parked car (analysed px): its anchor in the kerb
        assert 0.47 < (x1 + x2) / 2 / w < 0.76 and 0.6 < y2 / h < 0.95, (alert["box"], w, h)
        _visits(hub, 3)
        time.sleep(1.0)
        assert len(_stopped_alerts(hub)) == 1  # the same car: not alerted again
        third = hub.patrol.last_sightings("p-street")
        assert third is not None and third is not seen  # what visit 3 saw, kept for visit 4
        assert any(o.alerted == {"no-stopping"} for o in third.objects)
    finally:
        hub.stop()
        server.stop()


def test_what_a_visit_saw_survives_a_restart_of_the_patrol(
    tmp_path: Path, models_dir: Path, videos_dir: Path, _gst_ok: None
) -> None:
    """The last visit's sightings are in the database (patrol_sightings): the first visit
    after a restart compares with the visit before it and raises the alert."""
    server = RtspServer({"street": videos_dir / "street_parked_cars.mp4"})
    server.start()
    config = _street_patrol(tmp_path, models_dir, server.url("street"))
    try:
        hub = Hub(parse_config(config, "patrol.yaml", tmp_path))
        try:
            hub.start()
            _visits(hub, 1)
            time.sleep(1.0)
            assert _stopped_alerts(hub) == []
        finally:
            hub.stop()
        time.sleep(4.0)  # the rule's 8 s: the restarted patrol's first visit is past them
        hub = Hub(parse_config(config, "patrol.yaml", tmp_path))
        try:
            hub.start()
            first_after = _visits(hub, 1)
            assert first_after.visits == 1
            [alert] = _published(hub, 1)
            assert alert["trace"]["details"]["patrol"] is True
        finally:
            hub.stop()
    finally:
        server.stop()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_the_last_visits_sightings_are_one_row_per_camera_forgotten_with_the_camera(
    tmp_path: Path, dialect: str
) -> None:
    with ExitStack() as stack:
        url = (f"sqlite:///{tmp_path / 'db.sqlite'}" if dialect == "sqlite"
               else stack.enter_context(pg_schema()))  # fmt: skip
        engine, sessions = open_database(url)
        stack.callback(engine.dispose)
        store = SqlPatrolSightings(sessions)
        assert store.load("c1") is None
        store.save("c1", 10.0, {"format": 1, "objects": [1]})
        store.save("c1", 20.0, {"format": 1, "objects": [2]})  # the next visit replaces it
        store.save("c2", 20.0, {"format": 1, "objects": []})
        assert store.load("c1") == {"format": 1, "objects": [2]}
        with sessions.begin() as session:
            clear_patrol_sightings(session, "c1")
        assert store.load("c1") is None and store.load("c2") is not None
