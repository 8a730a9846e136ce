"""The camera tree's summary (``GET /api/cameras/areas``): each county, township and
village with its cameras and how many are online, scoped to the caller's area; and the
camera list's ``exact`` filter the console fills a place's cameras with."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from accounts import passwords
from accounts.service import create_user
from analytics.config import CameraConfig
from api.app import create_app
from camera_registry.store import upsert_camera
from core.area import Area
from shaobing.bootstrap import Hub
from shaobing.config import parse_config

PW = "areas-pass-0123456"
#: (id, township, village): 镇A has two villages and a camera of its own; 镇B one village;
#: one camera has no area at all.
CAMERAS = [
    *[(f"a1-{i}", "镇A", "村1") for i in range(5)],
    *[(f"a2-{i}", "镇A", "村2") for i in range(3)],
    ("a-town", "镇A", None),
    *[(f"b1-{i}", "镇B", "村1") for i in range(4)],
]
ONLINE = {"a1-0", "a1-1", "a2-2", "a-town", "b1-3", "nowhere"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("camareas")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(passwords, "HASHER", PasswordHasher(time_cost=1, memory_cost=8,
                                                       parallelism=1))  # fmt: skip
        hub = Hub(parse_config({"data_dir": str(tmp / "data"), "detector": {
            "model": str(models_dir / "yolox_nano.onnx")}}, "a.yaml", tmp))  # fmt: skip
        with hub.sessions.begin() as session:
            places = [(c, {"county": "示例县", "township": t, "village": v})
                      for c, t, v in CAMERAS] + [("nowhere", {})]  # fmt: skip
            for cid, area in places:
                cam = CameraConfig.model_validate({
                    "id": cid, "name": f"点位{cid}", "area": area,
                    "source": {"url": f"rtsp://127.0.0.1:1/{cid}"},
                })  # fmt: skip
                upsert_camera(session, cam, origin="import", cipher=hub.cipher)
            create_user(session, "admin1", "admin", password=PW)
            create_user(session, "viewer-a", "viewer", password=PW,
                        area=Area(county="示例县", township="镇A"))  # fmt: skip
            create_user(session, "viewer-b1", "viewer", password=PW,
                        area=Area(county="示例县", township="镇B", village="村1"))  # fmt: skip
        for cid, _, _ in [*CAMERAS, ("nowhere", None, None)]:
            hub.status.update(cid, state="online" if cid in ONLINE else "offline")
        yield TestClient(create_app(hub.services, hub.sessions, allowed_hosts=["testserver"]))
        hub.engine.dispose()


def get(client: TestClient, user: str, path: str, **params: Any) -> Any:
    token = client.post("/api/auth/login", json={"username": user, "password": PW}).json()
    r = client.get(path, params=params, headers={"Authorization": f"Bearer {token['token']}"})
    assert r.status_code == 200, r.text
    return r


def tree(client: TestClient, user: str) -> dict[str, tuple[int, int, int]]:
    nodes = get(client, user, "/api/cameras/areas").json()
    return {n["path"]: (n["total"], n["online"], n["direct"]) for n in nodes}


def test_every_place_with_its_cameras_and_those_online(client: TestClient) -> None:
    assert tree(client, "admin1") == {
        "": (1, 1, 1),  # the camera registered without an area
        "示例县": (13, 5, 0),
        "示例县/镇A": (9, 4, 1),
        "示例县/镇A/村1": (5, 2, 5),
        "示例县/镇A/村2": (3, 1, 3),
        "示例县/镇B": (4, 1, 0),
        "示例县/镇B/村1": (4, 1, 4),
    }
    nodes = get(client, "admin1", "/api/cameras/areas").json()
    village = next(n for n in nodes if n["path"] == "示例县/镇A/村2")
    assert (village["county"], village["township"], village["village"]) == ("示例县", "镇A", "村2")


def test_a_scoped_user_sees_only_its_places(client: TestClient) -> None:
    assert tree(client, "viewer-a") == {
        "示例县": (9, 4, 0),
        "示例县/镇A": (9, 4, 1),
        "示例县/镇A/村1": (5, 2, 5),
        "示例县/镇A/村2": (3, 1, 3),
    }
    assert tree(client, "viewer-b1") == {
        "示例县": (4, 1, 0), "示例县/镇B": (4, 1, 0), "示例县/镇B/村1": (4, 1, 4),
    }  # fmt: skip


def test_the_cameras_of_a_place_itself(client: TestClient) -> None:
    r = get(client, "admin1", "/api/cameras", area="示例县/镇A", exact="true", limit=10)
    assert [c["id"] for c in r.json()] == ["a-town"] and r.headers["x-total-count"] == "1"
    r = get(client, "admin1", "/api/cameras", area="示例县/镇A/村1", exact="true", limit=2)
    assert [c["id"] for c in r.json()] == ["a1-0", "a1-1"] and r.headers["x-total-count"] == "5"
    assert r.json()[0]["status"]["state"] == "online"
    r = get(client, "admin1", "/api/cameras", exact="true", limit=10)
    assert [c["id"] for c in r.json()] == ["nowhere"]
    # Within the caller's scope only: 镇A's own camera is not 镇B's user's.
    r = get(client, "viewer-b1", "/api/cameras", area="示例县/镇A", exact="true", limit=10)
    assert r.json() == [] and r.headers["x-total-count"] == "0"
    r = get(client, "viewer-a", "/api/cameras", area="示例县/镇A", limit=20)
    assert r.headers["x-total-count"] == "9"  # without exact: the villages' too
