"""The linkage API over a real hub and a real ONVIF PTZ camera (ipycam on loopback):
PTZ arrows/presets with the per-user lock, the audit, scope, and a linkage rule that
turns the camera to its preset when an alert is stored."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select

from accounts import passwords
from accounts.service import create_user
from accounts.store import AuditRecord
from alerts import queries
from api.app import create_app
from core.area import Area
from linkage.onvif_ptz import OnvifEndpoint, OnvifPtzCamera
from shaobing.bootstrap import Hub
from shaobing.config import parse_config
from tests.factories import make_alert, store
from tests.integration.test_linkage_ptz import PASSWORD, USER, PtzCamera
from tests.peers.receiver import Receiver

PW = "linkage-pass-0123"
CG = {"county": "示例县", "township": "城关镇"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("linkage-api")
    camera = PtzCamera(tmp / "ipycam")
    speaker = Receiver().start()
    cameras = [
        {"id": "dam-ptz", "name": "水库大坝球机", "area": CG,
         "source": {"onvif": {"host": "127.0.0.1", "port": camera.port, "username": USER,
                              "password": PASSWORD}}},
        {"id": "hx-cam", "name": "河西", "area": {"county": "示例县", "township": "河西镇"},
         "source": {"url": "rtsp://127.0.0.1:1/x"}},
    ]  # fmt: skip
    config = {
        "data_dir": str(tmp / "data"), "detector": {"model": str(models_dir / "yolox_nano.onnx")},
        "cameras": cameras,
        "linkage": {"return_home_s": 30,
                    "speakers": [{"id": "dam-speaker", "name": "大坝音柱", "kind": "http",
                                  "url": speaker.url}],
                    "rules": [{
            "name": "水库防溺水", "types": ["intrusion"], "min_severity": "medium",
            "actions": [{"kind": "ptz_preset", "camera": "dam-ptz", "preset": "水库大坝"},
                        {"kind": "popup", "camera": "dam-ptz"}]}]},
    }  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(passwords, "HASHER", PasswordHasher(time_cost=1, memory_cost=8,
                                                       parallelism=1))  # fmt: skip
        hub = Hub(parse_config(config, "linkage.yaml", tmp))
        for cam in hub.load_cameras():  # what Hub.start does, without opening streams
            hub.cameras[cam.id] = cam
        with hub.sessions.begin() as session:
            create_user(session, "admin1", "admin", password=PW)
            for name in ("alice", "bob"):
                create_user(session, name, "operator", password=PW, area=Area(**CG))
            create_user(session, "viewer1", "viewer", password=PW, area=Area(**CG))
            create_user(session, "sup-cg", "supervisor", password=PW, area=Area(**CG))
        hub.linkage.start()
        client = TestClient(create_app(hub.services, hub.sessions, allowed_hosts=["testserver"]))
        yield hub, client, camera, speaker
        hub.linkage.stop()
        speaker.stop()
        hub.engine.dispose()
        camera.stop()


def auth(client: TestClient, user: str) -> dict[str, str]:
    token = client.post("/api/auth/login", json={"username": user, "password": PW}).json()
    return {"Authorization": f"Bearer {token['token']}"}


def position(camera: PtzCamera) -> tuple[float, float, float] | None:
    import asyncio

    async def read() -> tuple[float, float, float] | None:
        cam = OnvifPtzCamera(OnvifEndpoint("127.0.0.1", camera.port, USER, PASSWORD))
        try:
            return await cam.position()
        finally:
            await cam.close()

    return asyncio.run(read())


def test_ptz_lock_presets_audit_and_scope(world: Any) -> None:
    hub, client, camera, _ = world
    alice, bob = auth(client, "alice"), auth(client, "bob")
    base = "/api/cameras/dam-ptz/ptz"
    r = client.post(f"{base}/move", json={"pan": 0.7, "tilt": 0.2}, headers=alice)
    assert r.status_code == 200, r.text
    assert r.json()["holder"] == "alice"
    r = client.post(f"{base}/move", json={"pan": -1}, headers=bob)
    assert r.status_code == 409 and "alice" in r.json()["detail"]
    time.sleep(0.3)
    assert client.post(f"{base}/stop", headers=alice).status_code == 200
    # operators may not save presets (cameras:configure); the admin can
    r = client.post(f"{base}/presets", json={"name": "水库大坝"}, headers=alice)
    assert r.status_code == 403
    assert client.post(f"{base}/release", headers=alice).json()["holder"] is None
    admin = auth(client, "admin1")
    r = client.post(f"{base}/presets", json={"name": "水库大坝"}, headers=admin)
    assert r.status_code == 201 and r.json()["name"] == "水库大坝"
    client.post(f"{base}/release", headers=admin)
    names = [p["name"] for p in client.get(f"{base}/presets", headers=bob).json()]
    assert "水库大坝" in names and "Home" in names
    assert client.post(f"{base}/home", headers=bob).status_code == 200
    assert position(camera) == (0.0, 0.0, 0.0)
    r = client.post(f"{base}/goto", json={"preset": "水库大坝"}, headers=bob)
    assert r.status_code == 200 and r.json()["preset"]["name"] == "水库大坝"
    assert position(camera) is not None and position(camera)[0] > 0.05  # type: ignore[index]
    r = client.post(f"{base}/goto", json={"preset": "不存在"}, headers=bob)
    assert r.status_code == 502 and "no preset '不存在'" in r.json()["detail"]
    assert PASSWORD not in r.text
    with hub.sessions() as session:
        actions = session.execute(select(AuditRecord.action, AuditRecord.actor).where(
            AuditRecord.target == "dam-ptz")).all()  # fmt: skip
    assert ("ptz_goto_preset", "bob") in actions and ("ptz_set_preset", "admin1") in actions
    # a viewer may look, not steer; a camera outside the operator's area is not there
    viewer = auth(client, "viewer1")
    assert client.get(f"{base}/presets", headers=viewer).status_code == 200
    assert client.post(f"{base}/move", json={"pan": 1}, headers=viewer).status_code == 403
    r = client.post("/api/cameras/hx-cam/ptz/move", json={"pan": 1}, headers=alice)
    assert r.status_code == 404
    r = client.post(f"{base}/move", json={"pan": 3}, headers=bob)
    assert r.status_code == 422
    client.post(f"{base}/release", headers=bob)


def test_alert_turns_the_camera_to_its_preset(world: Any) -> None:
    hub, client, camera, _ = world
    admin = auth(client, "admin1")
    presets = client.get("/api/cameras/dam-ptz/ptz/presets", headers=admin).json()
    if "水库大坝" not in [p["name"] for p in presets]:
        client.post("/api/cameras/dam-ptz/ptz/move", json={"pan": 0.5}, headers=admin)
        time.sleep(0.3)
        client.post("/api/cameras/dam-ptz/ptz/presets", json={"name": "水库大坝"}, headers=admin)
    client.post("/api/cameras/dam-ptz/ptz/home", headers=admin)
    client.post("/api/cameras/dam-ptz/ptz/release", headers=admin)
    alert = store(hub.sessions, make_alert(1, type="intrusion", severity="high",
                                           camera_id="dam-ptz", area=Area(**CG)))  # fmt: skip
    hub.feed.publish("alert", alert.id)  # what the alert service does after its commit
    deadline = time.monotonic() + 15
    entries: list[Any] = []
    while time.monotonic() < deadline and len(entries) < 2:
        with hub.sessions() as session:
            entries = [h for h in queries.history(session, alert.id) if h.action == "linkage"]
        time.sleep(0.05)
    by_kind = {h.detail["kind"]: h for h in entries}
    assert by_kind["ptz_preset"].detail["outcome"] == "sent", by_kind["ptz_preset"].note
    assert by_kind["ptz_preset"].note == "camera dam-ptz → preset 水库大坝"
    assert position(camera) is not None and position(camera)[0] > 0.05  # type: ignore[index]
    popups = client.get("/api/linkage/popups", headers=admin).json()
    assert popups[-1]["camera_id"] == "dam-ptz" and popups[-1]["alert_id"] == alert.id
    detail = client.get(f"/api/alerts/{alert.id}", headers=admin).json()
    assert any(h["action"] == "linkage" for h in detail["history"])
    rules = client.get("/api/linkage/rules", headers=admin).json()
    assert rules[0]["name"] == "水库防溺水"
    assert hub.health()["threads"]["linkage"] is True


def test_speak_from_the_console(world: Any) -> None:
    hub, client, _, speaker = world
    alice = auth(client, "alice")
    alert = store(hub.sessions, make_alert(2, type="intrusion", camera_id="dam-ptz",
                                           area=Area(**CG)))  # fmt: skip
    speakers = client.get("/api/linkage/speakers", headers=alice).json()
    assert speakers == [{"id": "dam-speaker", "name": "大坝音柱", "kind": "http"}]
    warnings = client.get("/api/linkage/warnings", headers=alice).json()
    assert warnings["reservoir"] == "水库危险，请勿靠近。"
    r = client.post("/api/linkage/speak", headers=alice, json={
        "speaker": "dam-speaker", "warning": "reservoir", "alert_id": alert.id})  # fmt: skip
    assert r.status_code == 200 and r.json()["outcome"] == "sent", r.text
    assert speaker.requests[-1][1].decode().count("水库危险") == 1
    speaker.status = 503
    r = client.post("/api/linkage/speak", headers=alice, json={
        "speaker": "dam-speaker", "text": "请立即离开", "alert_id": alert.id})  # fmt: skip
    assert r.status_code == 200 and r.json()["outcome"] == "failed"
    assert "HTTP 503" in r.json()["note"]
    speaker.status = 200
    with hub.sessions() as session:
        entries = [h for h in queries.history(session, alert.id) if h.action == "linkage"]
        audited = session.execute(select(AuditRecord.actor).where(
            AuditRecord.action == "voice_warning")).scalars().all()  # fmt: skip
    assert [(h.actor, h.detail["outcome"]) for h in entries] == [
        ("alice", "sent"),
        ("alice", "failed"),
    ]
    assert audited.count("alice") == 2
    assert client.post("/api/linkage/speak", headers=alice, json={
        "speaker": "nope", "warning": "reservoir"}).status_code == 404  # fmt: skip
    assert client.post("/api/linkage/speak", headers=alice, json={
        "speaker": "dam-speaker"}).status_code == 422  # fmt: skip
    viewer = auth(client, "viewer1")
    assert client.post("/api/linkage/speak", headers=viewer, json={
        "speaker": "dam-speaker", "warning": "reservoir"}).status_code == 403  # fmt: skip


def wait_linkage(hub: Any, alert_id: str, count: int, timeout: float = 15) -> list[Any]:
    deadline = time.monotonic() + timeout
    entries: list[Any] = []
    while time.monotonic() < deadline:
        with hub.sessions() as session:
            entries = [h for h in queries.history(session, alert_id) if h.action == "linkage"]
        if len(entries) >= count:
            return entries
        time.sleep(0.05)
    raise AssertionError(f"{len(entries)} linkage result(s) of alert {alert_id}, wanted {count}")


def test_rules_edited_through_the_api_apply_at_once(world: Any) -> None:
    hub, client, _, speaker = world
    sup, alice = auth(client, "sup-cg"), auth(client, "alice")
    rule = {
        "name": "河堤徘徊",
        "types": ["loitering"],
        "area": CG,
        "actions": [{"kind": "voice", "speaker": "dam-speaker", "warning": "reservoir"}],
    }
    url = "/api/linkage/rules/河堤徘徊"
    listed = client.get("/api/linkage/rules", headers=alice).json()
    assert [(r["name"], r["origin"]) for r in listed] == [("水库防溺水", "config")]
    # who may: operators read, supervisors write within their area
    assert client.put(url, json=rule, headers=alice).status_code == 403
    r = client.put(url, json={**rule, "area": {}}, headers=sup)
    assert r.status_code == 403 and "outside your area" in r.json()["detail"]
    # what is checked: every name it refers to, with the field; the path's name
    bad = {**rule, "actions": [{"kind": "voice", "speaker": "nope", "warning": "reservoir"}]}
    r = client.put(url, json=bad, headers=sup)
    assert r.status_code == 422 and "actions[0].speaker: unknown speaker 'nope'" in r.text
    bad = {**rule, "actions": [{"kind": "popup", "camera": "hx-cam"}]}  # another township's
    r = client.put(url, json=bad, headers=sup)
    assert r.status_code == 422 and "actions[0].camera: unknown camera 'hx-cam'" in r.text
    bad = {**rule, "actions": [{"kind": "dispatch", "target": "nowhere"}]}
    assert "actions[0].target" in client.put(url, json=bad, headers=sup).text
    assert client.put(url, json={**rule, "actions": []}, headers=sup).status_code == 422
    assert client.put("/api/linkage/rules/other", json=rule, headers=sup).status_code == 422
    r = client.put("/api/linkage/rules/水库防溺水", headers=sup, json={
        **rule, "name": "水库防溺水"})  # fmt: skip
    assert r.status_code == 409 and "config file" in r.json()["detail"]
    # created: listed after the file's, audited, and in force for the next alert
    r = client.put(url, json=rule, headers=sup)
    assert r.status_code == 200, r.text
    assert r.json()["origin"] == "api" and r.json()["updated_by"] == "sup-cg"
    listed = client.get("/api/linkage/rules", headers=alice).json()
    assert [r["name"] for r in listed] == ["水库防溺水", "河堤徘徊"]
    before = len(speaker.requests)
    alert = store(hub.sessions, make_alert(30, type="loitering", camera_id="dam-ptz",
                                           area=Area(**CG)))  # fmt: skip
    hub.feed.publish("alert", alert.id)
    [entry] = wait_linkage(hub, alert.id, 1)
    assert entry.detail["rule"] == "河堤徘徊" and entry.detail["outcome"] == "sent"
    assert "水库危险" in speaker.requests[before][1].decode()
    # changed: the next alert gets the new warning
    changed = {**rule, "actions": [{"kind": "voice", "speaker": "dam-speaker",
                                    "warning": "leave_water"}]}  # fmt: skip
    assert client.put(url, json=changed, headers=sup).status_code == 200
    alert = store(hub.sessions, make_alert(31, type="loitering", camera_id="dam-ptz",
                                           area=Area(**CG)))  # fmt: skip
    hub.feed.publish("alert", alert.id)
    wait_linkage(hub, alert.id, 1)
    assert "危险水域" in speaker.requests[-1][1].decode()
    # deleted: gone, audited; the file's rule cannot be deleted here
    assert client.delete(url, headers=alice).status_code == 403
    assert client.delete(url, headers=sup).status_code == 204
    assert client.delete(url, headers=sup).status_code == 404
    assert client.delete("/api/linkage/rules/水库防溺水", headers=sup).status_code == 409
    assert [r["name"] for r in client.get("/api/linkage/rules", headers=sup).json()] == [
        "水库防溺水"]  # fmt: skip
    with hub.sessions() as session:
        audited = session.execute(select(AuditRecord.action, AuditRecord.actor).where(
            AuditRecord.target == "linkage:河堤徘徊")).all()  # fmt: skip
    assert audited.count(("linkage_rule_put", "sup-cg")) == 2
    assert ("linkage_rule_delete", "sup-cg") in audited
