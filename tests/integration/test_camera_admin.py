"""The camera registry from the console's API against a real hub (``shaobing run`` as a
subprocess) reading real RTSP cameras (the GStreamer server fixture) and a real ONVIF
camera (ipycam): a camera added through the API plays at once, an edit of its source
restarts it, disabling stops it, enabling starts it, an import (GBK CSV) starts what it
adds, a deletion stops it — no restart. Passwords are stored encrypted, never answered,
logged or audited; every change is audited."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import IPYCAM_PASSWORD, IPYCAM_USER
from tests.hubproc import HubProcess
from tests.peers.procs import IpyCamProcess, RtspServer

pytestmark = pytest.mark.slow

CG = {"county": "示例县", "township": "城关镇"}
SECRET = "Cam-Secret-9f3"  # never in an answer, the log, the audit or the database


@pytest.fixture(scope="module")
def rtsp(videos_dir: Path, _gst_ok: None) -> Iterator[RtspServer]:
    server = RtspServer({"cross": videos_dir / "crosswalk_people.mp4",
                         "street": videos_dir / "street_parked_cars.mp4"})  # fmt: skip
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[HubProcess]:
    config = {
        "detector": {"model": str(models_dir / "yolox_nano.onnx"), "workers": 1},
        "areas": [{"county": "示例县", "code": "510123"}, {**CG, "code": "510123100"}],
    }
    process = HubProcess(tmp_path_factory.mktemp("camera-admin"), config)
    process.start()
    yield process
    process.stop()


def call(hub: HubProcess, method: str, path: str, body: Any = None, **kw: Any) -> httpx.Response:
    headers = {**hub.auth(), **kw.pop("headers", {})}
    return httpx.request(method, f"{hub.base}{path}", json=body, headers=headers, timeout=20,
                         **kw)  # fmt: skip


def state(hub: HubProcess, camera_id: str) -> str | None:
    r = call(hub, "GET", f"/api/cameras/{camera_id}")
    if r.status_code == 404:
        return "gone"
    status = r.json()["status"]
    return status["state"] if status else None


def online(hub: HubProcess, camera_id: str) -> bool:
    return state(hub, camera_id) == "online"


def test_a_camera_added_edited_disabled_and_deleted_through_the_api(
    hub: HubProcess, rtsp: RtspServer
) -> None:
    body = {"id": "api-cross", "name": "人民路口", "area": {**CG, "village": "人民村"},
            "source": {"url": rtsp.url("cross"), "username": "admin", "password": SECRET},
            "detect_fps": 2}  # fmt: skip
    r = call(hub, "POST", "/api/cameras", body)
    assert r.status_code == 201, r.text
    assert r.json()["origin"] == "api" and SECRET not in r.text
    hub.wait("the added camera online", lambda: online(hub, "api-cross"), 40)
    assert call(hub, "POST", "/api/cameras", body).status_code == 409
    shown = call(hub, "GET", "/api/cameras/api-cross/registry").json()
    assert shown["source"]["has_password"] and shown["source"]["username"] == "admin"
    assert shown["editable"] and SECRET not in str(shown)

    # A new source: the running camera restarts on it (the password kept: same host).
    edit = {"source": {"url": rtsp.url("street"), "username": "admin"}, "name": "人民路口(东)"}
    r = call(hub, "PATCH", "/api/cameras/api-cross", edit)
    assert r.status_code == 200, r.text
    hub.wait("the camera on its new stream",
             lambda: "street" in (hub.camera("api-cross")["stream_url"] or "")
             and online(hub, "api-cross"), 40)
    assert call(hub, "GET", "/api/cameras/api-cross/registry").json()["source"]["has_password"]

    # Disabled: it stops; enabled: it reads again; moved: it keeps reading.
    assert call(hub, "PATCH", "/api/cameras/api-cross", {"enabled": False}).status_code == 200
    hub.wait("the camera disabled", lambda: state(hub, "api-cross") == "disabled", 20)
    assert call(hub, "PATCH", "/api/cameras/api-cross", {"enabled": True}).status_code == 200
    hub.wait("the camera online again", lambda: online(hub, "api-cross"), 40)
    moved = call(hub, "PATCH", "/api/cameras/api-cross", {"area": {**CG, "village": "新村"}})
    assert moved.status_code == 200 and moved.json()["area"]["village"] == "新村"
    assert online(hub, "api-cross")

    # Bad input: named, nothing changed.
    r = call(hub, "PATCH", "/api/cameras/api-cross", {"detect_fps": 0})
    assert r.status_code == 422
    r = call(hub, "PATCH", "/api/cameras/api-cross", {"source": {"url": "/etc/passwd"}})
    assert r.status_code == 422 and "local files" in r.json()["detail"]
    r = call(hub, "POST", "/api/users", {"username": "nobody-area", "role": "viewer",
                                          "password": "viewer-pass-123"},
             headers={"Accept-Language": "zh-CN"})  # fmt: skip
    assert r.status_code == 422 and "全县" in r.json()["detail"]

    # Deleted: stopped and gone.
    assert call(hub, "DELETE", "/api/cameras/api-cross").status_code == 204
    hub.wait("the camera gone", lambda: state(hub, "api-cross") == "gone", 20)
    assert "api-cross" not in {c["id"] for c in hub.get("/api/cameras")}

    actions = [a["action"] for a in hub.get("/api/audit", limit=50)["items"]
               if a["target"] == "camera:api-cross"]  # fmt: skip
    assert actions[::-1] == ["camera_create", "camera_update", "camera_disable",
                             "camera_enable", "camera_move", "camera_delete"]  # fmt: skip
    audit = str(hub.get("/api/audit", limit=200))
    assert SECRET not in audit and SECRET not in hub.log()


def test_an_import_in_gbk_starts_its_cameras(hub: HubProcess, rtsp: RtspServer) -> None:
    rows = ["id,name,url,username,password,county,township,village",
            f"imp-cross,城关镇十字路口,{rtsp.url('cross')},admin,{SECRET},示例县,城关镇,人民村",
            f"imp-street,城关镇老街,{rtsp.url('street')},,,示例县,城关镇,"]  # fmt: skip
    data = "\n".join(rows).encode("gbk")
    r = call(hub, "POST", "/api/cameras/import", None, params={"filename": "点位.csv"},
             content=data)  # fmt: skip
    assert r.status_code == 200, r.text
    assert sorted(r.json()["created"]) == ["imp-cross", "imp-street"]
    for camera_id in ("imp-cross", "imp-street"):
        hub.wait(f"{camera_id} online", lambda c=camera_id: online(hub, c), 40)  # type: ignore[misc]
    assert hub.camera("imp-cross")["name"] == "城关镇十字路口"
    # A bad file: every problem named, nothing stored.
    bad = (f"id,name,url,detect_fps\nimp-bad,坏,{rtsp.url('cross')},99\n"
           "imp-worse,更坏,ftp://x/y,1\n").encode("gbk")  # fmt: skip
    r = call(hub, "POST", "/api/cameras/import", params={"filename": "bad.csv"}, content=bad)
    assert r.status_code == 422
    assert "row 2 (id=imp-bad): detect_fps" in r.json()["detail"]
    assert "row 3 (id=imp-worse): source.url" in r.json()["detail"]
    assert state(hub, "imp-bad") == "gone"
    # Too big for api.max_body_kb: refused before it is read.
    r = call(hub, "POST", "/api/cameras/import", params={"filename": "huge.csv"},
             content=b"id\n" + b"x" * (2 * 1024 * 1024))  # fmt: skip
    assert r.status_code == 413
    # The database holds the password encrypted only.
    db = sqlite3.connect(hub.workdir / "data" / "shaobing.db")
    try:
        stored = db.execute("SELECT config_json FROM cameras WHERE id='imp-cross'").fetchone()[0]
    finally:
        db.close()
    assert SECRET not in stored and "password" in stored


def test_an_onvif_camera_is_probed_and_added_with_the_profile_picked(
    hub: HubProcess, ipycam_camera: IpyCamProcess
) -> None:
    probe = {"host": "127.0.0.1", "port": ipycam_camera.onvif_port, "username": IPYCAM_USER,
             "password": IPYCAM_PASSWORD}  # fmt: skip
    r = call(hub, "POST", "/api/cameras/probe", probe)
    assert r.status_code == 200, r.text
    found = r.json()
    assert found["manufacturer"] == "PythonCam" and len(found["profiles"]) >= 2
    assert IPYCAM_PASSWORD not in r.text
    sub = next(p for p in found["profiles"] if (p["width"], p["height"]) == (320, 180))
    body = {"id": "onvif-cam", "name": "虚拟摄像机", "area": CG,
            "source": {"onvif": {**{k: probe[k] for k in ("host", "port", "username",
                                                          "password")},
                                 "profile": sub["token"]}}}  # fmt: skip
    assert call(hub, "POST", "/api/cameras", body).status_code == 201
    hub.wait("the ONVIF camera online", lambda: online(hub, "onvif-cam"), 60)
    assert "video_sub" in hub.camera("onvif-cam")["stream_url"]
    # The edit dialog probes again with the stored password (not sent back to it).
    again = {k: probe[k] for k in ("host", "port", "username")}
    r = call(hub, "POST", "/api/cameras/probe", {**again, "camera_id": "onvif-cam"})
    assert r.status_code == 200, r.text
    wrong = call(hub, "POST", "/api/cameras/probe", {**again, "password": "wrong-pass-1"})
    assert wrong.status_code == 502
    assert call(hub, "DELETE", "/api/cameras/onvif-cam").status_code == 204
