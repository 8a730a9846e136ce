"""The camera list at county scale: pages filtered in SQL (``limit``/``offset``/``area``/
``q``), the caller's area scope applied, the old unpaginated list unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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

PW = "list-pass-0123456"
N = 120  # cameras: cam-000 .. cam-119; township 镇00 for even ids, 镇01 for odd


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("camlist")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(passwords, "HASHER", PasswordHasher(time_cost=1, memory_cost=8,
                                                       parallelism=1))  # fmt: skip
        hub = Hub(parse_config({"data_dir": str(tmp / "data"), "detector": {
            "model": str(models_dir / "yolox_nano.onnx")}}, "l.yaml", tmp))  # fmt: skip
        with hub.sessions.begin() as session:
            for i in range(N):
                cam = CameraConfig.model_validate({
                    "id": f"cam-{i:03d}", "name": f"点位{i:03d}" + ("%" if i == 7 else ""),
                    "source": {"url": f"rtsp://10.0.0.{i + 1}/s", "username": "admin",
                               "password": "cam-secret"},
                    "area": {"county": "示例县", "township": f"镇{i % 2:02d}"},
                })  # fmt: skip
                upsert_camera(session, cam, origin="import", cipher=hub.cipher)
            create_user(session, "admin1", "admin", password=PW)
            create_user(session, "viewer0", "viewer", password=PW,
                        area=Area(county="示例县", township="镇00"))  # fmt: skip
        yield TestClient(create_app(hub.services, hub.sessions, allowed_hosts=["testserver"]))
        hub.engine.dispose()


def login(client: TestClient, user: str) -> dict[str, str]:
    r = client.post("/api/auth/login", json={"username": user, "password": PW})
    return {"Authorization": f"Bearer {r.json()['token']}"}


def ids(resp: object) -> list[str]:
    return [c["id"] for c in resp.json()]  # type: ignore[attr-defined]


def test_without_parameters_the_whole_list_as_before(client: TestClient) -> None:
    r = client.get("/api/cameras", headers=login(client, "admin1"))
    assert r.status_code == 200 and len(r.json()) == N
    assert "x-total-count" not in r.headers
    assert "cam-secret" not in r.text


def test_pages_in_id_order_with_the_total(client: TestClient) -> None:
    h = login(client, "admin1")
    r = client.get("/api/cameras", params={"limit": 50, "offset": 100}, headers=h)
    assert ids(r) == [f"cam-{i:03d}" for i in range(100, N)]
    assert r.headers["x-total-count"] == str(N)
    first = client.get("/api/cameras", params={"limit": 10}, headers=h)
    assert ids(first) == [f"cam-{i:03d}" for i in range(10)]
    assert client.get("/api/cameras", params={"limit": 0}, headers=h).status_code == 422
    assert client.get("/api/cameras", params={"limit": 5000}, headers=h).status_code == 422


def test_area_and_search_filters(client: TestClient) -> None:
    h = login(client, "admin1")
    r = client.get("/api/cameras", params={"area": "示例县/镇01", "limit": 100}, headers=h)
    assert r.headers["x-total-count"] == str(N // 2)
    assert all(int(i[-3:]) % 2 == 1 for i in ids(r))
    found = client.get("/api/cameras", params={"q": "cam-01"}, headers=h)
    assert ids(found) == [f"cam-{i:03d}" for i in range(10, 20)]
    by_name = client.get("/api/cameras", params={"q": "点位11"}, headers=h)
    assert ids(by_name) == ["cam-110", "cam-111", "cam-112", "cam-113", "cam-114", "cam-115",
                            "cam-116", "cam-117", "cam-118", "cam-119"]  # fmt: skip
    literal = client.get("/api/cameras", params={"q": "%"}, headers=h)  # not a wildcard
    assert ids(literal) == ["cam-007"]


def test_a_scoped_user_pages_only_through_its_area(client: TestClient) -> None:
    h = login(client, "viewer0")
    r = client.get("/api/cameras", params={"limit": 100}, headers=h)
    assert r.headers["x-total-count"] == str(N // 2)
    assert all(int(i[-3:]) % 2 == 0 for i in ids(r))
    other = client.get("/api/cameras", params={"area": "示例县/镇01", "limit": 10}, headers=h)
    assert other.json() == [] and other.headers["x-total-count"] == "0"
    assert len(client.get("/api/cameras", headers=h).json()) == N // 2  # the old list too
