"""The worker's lease rounds read the registry as a change feed (issue 26): a round costs
O(cameras held + changed rows), not a decrypt-and-validate of every registered camera.
Real SQLite registry, real Redis; the worker is a recorder (its streams are not the point)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import update

from analytics.config import CameraConfig
from camera_registry.store import CameraRecord, upsert_camera
from shaobing.adapters.leases import WorkerLeases
from shaobing.distributed import LeasedCameras
from shaobing.store import Store
from tests.redisproc import REDIS_URL, redis_prefix

REGISTERED = 3000


class RecordingWorker:
    """What LeasedCameras calls on a worker, recorded."""

    def __init__(self) -> None:
        self.readers: dict[str, CameraConfig] = {}
        self.invalid: list[tuple[str, str]] = []

        class Pool:
            slots: dict[str, Any] = {}

        self.pool = Pool()

    def start_camera(self, cam: CameraConfig) -> None:
        self.readers[cam.id] = cam

    def stop_camera(self, camera_id: str) -> None:
        self.readers.pop(camera_id, None)

    def report_invalid(self, camera_id: str, error: str) -> None:
        self.invalid.append((camera_id, error))

    def apply_analytics(self, cam: CameraConfig) -> None:
        self.readers[cam.id] = cam


class CountingStore(Store):
    """The real store, counting how many cameras were decrypted and validated."""

    loads = 0

    def load_camera(self, camera_id: str) -> CameraConfig | None:
        self.loads += 1
        return super().load_camera(camera_id)


def camera(i: int, enabled: bool) -> CameraConfig:
    return CameraConfig.model_validate({
        "id": f"cam-{i:05d}", "enabled": enabled, "area": {"county": "示例县"},
        "source": {"url": f"rtsp://127.0.0.1:9/{i}", "username": "u", "password": "secret"},
    })  # fmt: skip


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[CountingStore, redis.Redis, str]]:
    from core.secrets import load_or_create_cipher
    from shaobing.db import open_database

    engine, sessions = open_database(f"sqlite:///{tmp_path / 'reg.db'}")
    cipher = load_or_create_cipher(tmp_path / "secret.key")
    with sessions.begin() as session:
        for i in range(REGISTERED):
            upsert_camera(session, camera(i, enabled=i < 3), origin="import", cipher=cipher)
    store = CountingStore(engine, sessions, cipher)
    with redis_prefix() as prefix:
        r = redis.Redis.from_url(REDIS_URL)
        yield store, r, prefix
        r.close()
    engine.dispose()


def leased(store: Store, r: redis.Redis, prefix: str, name: str) -> tuple[LeasedCameras, Any]:
    worker = RecordingWorker()
    leases = WorkerLeases(r, prefix, name, lease_s=10)
    return LeasedCameras(worker, store, r, prefix, leases), worker  # type: ignore[arg-type]


def test_rounds_decrypt_only_the_cameras_taken_and_pick_up_changes(
    world: tuple[CountingStore, redis.Redis, str],
) -> None:
    store, r, prefix = world
    cams, worker = leased(store, r, prefix, "w1")
    cams._round()
    assert sorted(worker.readers) == ["cam-00000", "cam-00001", "cam-00002"]
    assert store.loads == 3  # not 3,000: the registry is read as ids
    for _ in range(5):
        cams._round()
    assert store.loads == 3 and sorted(worker.readers) == sorted(cams.leases.held)

    # A camera enabled through the registry is taken on the next round (change feed).
    with store.sessions.begin() as session:
        upsert_camera(session, camera(2500, enabled=True), origin="api", cipher=store.cipher)
    cams._round()
    assert "cam-02500" in worker.readers and store.loads == 4

    # Disabled: given up on the next round, its lease free at once.
    with store.sessions.begin() as session:
        upsert_camera(session, camera(1, enabled=False), origin="api", cipher=store.cipher)
    cams._round()
    assert "cam-00001" not in worker.readers and "cam-00001" not in cams.leases.held
    cams.leases.leave()


def test_a_row_that_cannot_be_decrypted_is_reported_once_not_retried_each_round(
    world: tuple[CountingStore, redis.Redis, str],
) -> None:
    store, r, prefix = world
    with store.sessions.begin() as session:  # written with another key
        session.execute(update(CameraRecord).where(CameraRecord.id == "cam-00000").values(
            config_json='{"id": "cam-00000", "source": {"password": "enc:v1:garbage"}}',
            updated_at=time.time()))  # fmt: skip
    cams, worker = leased(store, r, prefix, "w1")
    for _ in range(4):
        cams._round()
    assert [cid for cid, _ in worker.invalid] == ["cam-00000"]
    assert sorted(worker.readers) == ["cam-00001", "cam-00002"]
    loads = store.loads
    cams._round()
    assert store.loads == loads  # the broken row is not decrypted again until it changes
    cams.leases.leave()


def test_two_workers_share_without_churn_when_nothing_changes(
    world: tuple[CountingStore, redis.Redis, str],
) -> None:
    store, r, prefix = world
    with store.sessions.begin() as session:
        for i in range(40):
            upsert_camera(session, camera(i, enabled=True), origin="api", cipher=store.cipher)
    a, wa = leased(store, r, prefix, "wa")
    b, wb = leased(store, r, prefix, "wb")
    for _ in range(4):  # both announce themselves, then settle on their shares
        a._round()
        b._round()
    held_a, held_b = set(a.leases.held), set(b.leases.held)
    assert len(held_a) == len(held_b) == 20 and not held_a & held_b
    for _ in range(5):
        a._round()
        b._round()
    assert set(a.leases.held) == held_a and set(b.leases.held) == held_b  # no churn
    a.leases.leave()
    b.leases.leave()
