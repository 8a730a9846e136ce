"""REST API over a real hub database (no cameras running): filters, paging, evidence,
OpenAPI; logged in as the first admin."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from alerts.evidence import encode_jpeg, write_evidence
from api.app import create_app
from core.area import Area
from shaobing.bootstrap import Hub
from shaobing.config import parse_config
from tests.factories import make_alert, store, with_snapshot

ADMIN_PASSWORD = "admin-pass-0123"


@pytest.fixture
def hub(tmp_path: Path, models_dir: Path) -> Iterator[Hub]:
    loaded = parse_config(
        {
            "data_dir": str(tmp_path / "data"),
            "detector": {"model": str(models_dir / "yolox_nano.onnx")},
            "dispatch": [{"name": "centre", "url": "http://127.0.0.1:9/x", "unsigned": True}],
            "cameras": [{"id": "cam-a", "name": "A", "source": {
                "url": "rtsp://10.9.9.9/live", "username": "admin", "password": "Api-Secret-1"}}],
        },
        "test.yaml", tmp_path,
    )  # fmt: skip
    h = Hub(loaded)
    assert h.ensure_admin(ADMIN_PASSWORD) == ADMIN_PASSWORD
    for i in range(30):
        alert = make_alert(i, camera_id="cam-a" if i % 2 else "cam-b", camera_name="A",
                           type="loitering" if i % 3 else "intrusion")  # fmt: skip
        if i == 29:
            snap = write_evidence(h.evidence, "cam-a/19700101/a.jpg",
                                  encode_jpeg(np.zeros((36, 64, 3), np.uint8)))  # fmt: skip
            with_snapshot(alert, snap.ref, snap.sha256)
        store(h.sessions, alert, ["centre"])
    yield h
    h.engine.dispose()


@pytest.fixture
def client(hub: Hub) -> TestClient:
    client = TestClient(create_app(hub.services, hub.sessions))
    login = client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert login.status_code == 200, login.text
    client.headers["Authorization"] = f"Bearer {login.json()['token']}"
    return client


def test_cameras_hide_credentials(client: TestClient) -> None:
    cams = client.get("/api/cameras").json()
    assert [c["id"] for c in cams] == ["cam-a"]
    assert cams[0]["source"] == "rtsp://10.9.9.9/live"
    assert "Api-Secret-1" not in json.dumps(cams)
    assert client.get("/api/cameras/nope").status_code == 404
    # Not started: no frame yet, and the API says so instead of failing.
    assert client.get("/api/cameras/cam-a/snapshot.jpg").status_code == 503


def test_alert_filters_and_paging(client: TestClient) -> None:
    page = client.get("/api/alerts", params={"limit": 10}).json()
    assert page["total"] == 30 and len(page["items"]) == 10
    assert page["items"][0]["created_at"] == 1029.0  # newest first
    second = client.get("/api/alerts", params={"limit": 10, "offset": 10}).json()
    assert {a["id"] for a in page["items"]}.isdisjoint(a["id"] for a in second["items"])
    by_cam = client.get("/api/alerts", params={"camera_id": "cam-a", "limit": 500}).json()
    assert by_cam["total"] == 15 and all(a["camera"]["id"] == "cam-a" for a in by_cam["items"])
    by_type = client.get("/api/alerts", params={"type": "intrusion"}).json()
    assert by_type["total"] == 10
    window = client.get("/api/alerts", params={"since": 1010, "until": 1020}).json()
    assert window["total"] == 10
    assert {a["created_at"] for a in window["items"]} == {1010.0 + i for i in range(10)}
    assert client.get("/api/alerts", params={"status": "bogus"}).status_code == 422
    assert client.get("/api/alerts", params={"status": "new"}).json()["total"] == 30


def test_alert_detail_deliveries_and_snapshot(client: TestClient) -> None:
    alert_id = "00000000-0000-0000-0000-000000000029"
    detail = client.get(f"/api/alerts/{alert_id}").json()
    assert detail["deliveries"][0]["target"] == "centre"
    assert detail["deliveries"][0]["state"] == "pending"
    resp = client.get(f"/api/alerts/{alert_id}/snapshot.jpg")
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/jpeg"
    assert hashlib.sha256(resp.content).hexdigest() == detail["evidence"]["snapshot"]["sha256"]
    assert (
        client.get("/api/alerts/00000000-0000-0000-0000-000000000001/snapshot.jpg").status_code
        == 404
    )
    assert client.get("/api/alerts/nope").status_code == 404


def test_health_and_openapi(client: TestClient) -> None:
    health = client.get("/healthz").json()
    assert health["dispatch_pending"] == 30 and health["dispatch_dead"] == 0
    # The hub of this test is not started: its threads are not running, and it says so.
    assert health["status"] == "degraded" and not any(health["threads"].values())
    assert {"alerts", "escalation", "evidence", "dispatcher", "watchdog"} <= set(health["threads"])
    spec = client.get("/openapi.json").json()
    expected = {
        "/api/cameras", "/api/cameras/{camera_id}", "/api/cameras/{camera_id}/snapshot.jpg",
        "/api/alerts", "/api/alerts/{alert_id}", "/api/alerts/{alert_id}/snapshot.jpg", "/healthz",
    }  # fmt: skip
    assert expected <= set(spec["paths"])


def test_config_changes_and_actions_are_audited(hub: Hub, client: TestClient) -> None:
    def audited(action: str) -> list[dict[str, object]]:
        return client.get("/api/audit", params={"action": action}).json()["items"]  # type: ignore[no-any-return]

    (loaded,) = audited("config_loaded")
    assert loaded["actor"] == "system" and "1 camera(s), 1 dispatch target(s)" in str(
        loaded["detail"]
    )
    Hub(hub.loaded).engine.dispose()  # the same config again: nothing new to record
    assert len(audited("config_loaded")) == 1
    changed = hub.loaded.config.model_copy(update={"timezone": "Asia/Urumqi"})
    Hub(type(hub.loaded)(changed, hub.loaded.path, hub.loaded.base_dir)).engine.dispose()
    assert len(audited("config_loaded")) == 2

    alert_id = "00000000-0000-0000-0000-000000000029"
    acted = client.post(f"/api/alerts/{alert_id}/actions",
                        json={"action": "acknowledge", "note": "看到了"})  # fmt: skip
    assert acted.status_code == 200 and acted.json()["status"] == "acknowledged"
    refused = client.post(f"/api/alerts/{alert_id}/actions", json={"action": "acknowledge"})
    assert refused.status_code == 409 and "acknowledged" in refused.json()["detail"]
    assert client.get(f"/api/alerts/{alert_id}/snapshot.jpg").status_code == 200
    assert [a["target"] for a in audited("alert_acknowledge")] == [f"alert:{alert_id}"]
    assert [a["detail"] for a in audited("evidence_view")] == ["snapshot"]
    assert audited("login")[0]["actor"] == "admin"
    history = client.get(f"/api/alerts/{alert_id}/history").json()
    assert [(h["action"], h["actor"], h["note"]) for h in history][-1] == (
        "acknowledge",
        "admin",
        "看到了",
    )


def test_signed_evidence_links_open_one_file_until_they_expire(hub: Hub) -> None:
    anonymous = TestClient(create_app(hub.services, hub.sessions))
    alert_id = "00000000-0000-0000-0000-000000000029"
    url = hub.links.url(alert_id, "snapshot").removeprefix(hub.public_url)
    assert anonymous.get(url).status_code == 200
    assert anonymous.get(url.split("?")[0]).status_code == 401  # no link, no login
    other = url.replace(alert_id, "00000000-0000-0000-0000-000000000028")
    assert anonymous.get(other).status_code == 401  # the link is for one alert
    annotated = url.replace("?", "?annotated=true&")
    assert anonymous.get(annotated).status_code == 401  # and for one file
    stale = hub.links.url(alert_id, "snapshot", now=time.time() - hub.links.ttl_s - 1)
    assert anonymous.get(stale.removeprefix(hub.public_url)).status_code == 401


def test_out_of_range_parameters_are_422_not_500(client: TestClient) -> None:
    for params in ({"offset": 9223372036854775808}, {"offset": -1}, {"limit": 0},
                   {"since": "nan"}, {"until": 1e300}, {"status": "bogus"}):  # fmt: skip
        assert client.get("/api/alerts", params=params).status_code == 422, params


def test_case_export_through_the_api_verifies_and_is_audited(
    hub: Hub, client: TestClient, tmp_path: Path
) -> None:
    from alerts.export import verify_export

    alert_id = "00000000-0000-0000-0000-000000000029"
    body = {"alert_ids": [alert_id], "case_number": "案-2026-001", "reason": "调查取证"}
    resp = client.post("/api/exports", json=body)
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/zip"
    archive = tmp_path / "case.zip"
    archive.write_bytes(resp.content)
    result = verify_export(archive, hub.links.key)
    assert result.ok and result.files == 1, result.problems
    audit = client.get("/api/audit", params={"action": "evidence_export"}).json()["items"]
    assert audit[0]["target"] == "case:案-2026-001" and alert_id in audit[0]["detail"]
    assert client.post("/api/exports", json={**body, "alert_ids": ["nope"]}).status_code == 404


def test_alert_area_filter(client: TestClient, hub: Hub) -> None:
    other = make_alert(40, area=Area(county="示例县", township="河西镇", village="河西村"))
    store(hub.sessions, other, ["centre"])
    total = lambda area: client.get("/api/alerts", params={"area": area}).json()["total"]  # noqa: E731
    assert total("示例县/河西镇") == 1 and total("示例县/河西镇/河西村") == 1
    assert total("示例县/城关镇/") == 30 and total("示例县") == 31
    assert total("别的县") == 0 and total("示例县/河西镇/别的村") == 0
    page = client.get("/api/alerts", params={"area": "示例县/河西镇", "type": "loitering"}).json()
    assert [a["id"] for a in page["items"]] == [other.id]
