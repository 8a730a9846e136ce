"""Incidents through a real hub's API: the list shows one row per incident with its
count, first/last time and suppressed flag; the detail lists the alerts inside it and
serves each one's own snapshot; handling the incident handles them all."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from alerts.domain.model import EvidenceRef
from alerts.evidence import encode_jpeg, write_evidence
from alerts.messages import EventMessage
from analytics.types import Event
from api.app import create_app
from core.area import Area
from shaobing.bootstrap import Hub
from shaobing.config import parse_config

ADMIN_PASSWORD = "admin-pass-0123"


@pytest.fixture
def hub(tmp_path: Path, models_dir: Path) -> Iterator[Hub]:
    loaded = parse_config(
        {
            "data_dir": str(tmp_path / "data"),
            "detector": {"model": str(models_dir / "yolox_nano.onnx")},
            "alerts": {"incidents": {"hourly_cap": 3}},
            "cameras": [{"id": "cam-a", "name": "A", "source": {"url": "rtsp://127.0.0.1:9/x"}}],
        },
        "test.yaml", tmp_path,
    )  # fmt: skip
    h = Hub(loaded)
    assert h.ensure_admin(ADMIN_PASSWORD) == ADMIN_PASSWORD
    yield h
    h.engine.dispose()


@pytest.fixture
def client(hub: Hub) -> TestClient:
    client = TestClient(create_app(hub.services, hub.sessions))
    login = client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    client.headers["Authorization"] = f"Bearer {login.json()['token']}"
    return client


def publish(hub: Hub, n: int, at: float, track: int) -> None:
    shade = np.full((36, 64, 3), n * 20, np.uint8)
    snap = write_evidence(hub.evidence, f"cam-a/x/{n}.jpg", encode_jpeg(shade))
    event = Event(camera_id="cam-a", rule="gate", type="intrusion", ts=0.0, pts=float(n),
                  track_ids=[track], object_class="person", zone="gate", severity="medium",
                  measured=2.0, threshold=1.0, unit="s", explanation=f"person {track}",
                  confidence=0.9, box=(1.0, 2.0, 3.0, 4.0))  # fmt: skip
    message = EventMessage(f"alert-{n}", event, "A", Area(county="示例县"), at,
                           {"snapshot": EvidenceRef(snap.ref, snap.sha256)})  # fmt: skip
    hub.alerts.create(message)


def test_list_and_detail_show_incidents(hub: Hub, client: TestClient) -> None:
    for n, at in enumerate((1000.0, 1020.0, 1040.0), start=1):
        publish(hub, n, at, track=n)
    page = client.get("/api/alerts").json()
    assert page["total"] == 1
    [row] = page["items"]
    assert row["id"] == "alert-1"
    assert row["incident"] == {"count": 3, "first_at": 1000.0, "last_at": 1040.0,
                               "last_alert_id": "alert-3", "suppressed": False}  # fmt: skip
    assert row["track_ids"] == [1, 2, 3] and row["occurrences"] is None
    detail = client.get("/api/alerts/alert-1").json()
    assert [o["alert_id"] for o in detail["occurrences"]] == ["alert-1", "alert-2", "alert-3"]
    third = detail["occurrences"][2]
    assert third["explanation"] == "person 3" and third["clip_url"] is None
    resp = client.get(third["snapshot_url"])
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/jpeg"
    first = client.get(detail["occurrences"][0]["snapshot_url"]).content
    assert hashlib.sha256(first).hexdigest() == detail["evidence"]["snapshot"]["sha256"]
    assert hashlib.sha256(resp.content).hexdigest() != detail["evidence"]["snapshot"]["sha256"]
    assert client.get("/api/alerts/alert-1/occurrences/nope/snapshot.jpg").status_code == 404
    assert client.get("/api/alerts/alert-1/occurrences/alert-2/clip.mp4").status_code == 404


def test_resolving_the_incident_then_the_cap(hub: Hub, client: TestClient) -> None:
    publish(hub, 1, 1000.0, 1)
    publish(hub, 2, 1010.0, 1)
    done = client.post("/api/alerts/alert-1/actions", json={"action": "resolve"})
    assert done.status_code == 200 and done.json()["status"] == "resolved"
    publish(hub, 3, 1020.0, 2)  # the incident was closed: a new one
    publish(hub, 4, 1100.0, 3)  # past the gap: a new one, the third this hour
    publish(hub, 5, 1200.0, 4)  # beyond the cap of 3: counted in the latest, suppressed
    page = client.get("/api/alerts").json()
    assert [(a["id"], a["incident"]["count"], a["incident"]["suppressed"])
            for a in page["items"]] == [("alert-4", 2, True), ("alert-3", 1, False),
                                        ("alert-1", 2, False)]  # fmt: skip
    history = client.get("/api/alerts/alert-4/history").json()
    assert [h["action"] for h in history] == ["created", "suppressed"]
