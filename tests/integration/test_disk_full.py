"""A full disk loses nothing (issue 21): a real small file system (tmpfs) filled during
alert flow. The event spool keeps what the disk refuses in memory and writes it through
when space returns; the database's failed writes are retried from the bus; the track
index keeps its row without the thumbnail; a clip for an alert that does not exist is
dead-lettered with its reason, not retried for ever; the disk watcher says so."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.adapters.memory_bus import MemoryEventBus
from alerts.adapters.spool import SpoolingEventBus
from alerts.adapters.sql import AlertRecord, SqlUnitOfWork
from alerts.config import AlertsConfig, DispatchTarget
from alerts.dispatcher import Dispatcher
from alerts.domain.incidents import IncidentPolicy
from alerts.domain.routing import Router, RoutingRule, Target
from alerts.labels import explain_zh
from alerts.messages import EVENTS_TOPIC, ClipMessage, EventMessage
from alerts.producer import AlertProducer
from alerts.service import CONSUMER_GROUP, AlertService, AlertWorkers
from alerts.signing import IDEMPOTENCY_HEADER
from analytics.types import Event
from core.area import Area
from core.diskwatch import DiskWatcher, with_reasons
from shaobing.db import open_database
from shaobing.disk_alerts import DiskAlerts
from tests.peers.receiver import Receiver
from tracks.config import TracksConfig
from tracks.indexer import Crop, FinishedTrack
from tracks.service import TrackIndex
from tracks.store import TrackRecord

SECRET = "disk-full-secret"


class SmallDisk:
    """A tmpfs of ``size`` mounted at ``root``; :meth:`fill` takes every free byte."""

    def __init__(self, root: Path, size: str = "2m") -> None:
        self.root = root
        root.mkdir(parents=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                        str(root)], check=True, capture_output=True)  # fmt: skip
        self.filler = root / "filler"

    def fill(self) -> None:
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (1 << 16, 512, 1):  # big chunks, then the last partial block
                try:
                    while True:
                        os.write(fd, b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def unmount(self) -> None:
        result = subprocess.run(["umount", str(self.root)], capture_output=True)
        if result.returncode != 0:  # a file still open (a leaked handle): detach anyway
            subprocess.run(["umount", "-l", str(self.root)], check=True)


@pytest.fixture
def small_disk(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SmallDisk]:
    """2 MiB; 16 MiB for a test marked ``disk_size`` (a database's WAL grows meanwhile)."""
    if os.geteuid() != 0:
        pytest.fail("mounting the test's small tmpfs needs root (CI and scripts/test.sh run "
                    "as root)", pytrace=False)
    marker = request.node.get_closest_marker("disk_size")
    disk = SmallDisk(tmp_path / "disk", marker.args[0] if marker else "2m")
    yield disk
    disk.unmount()


def wait_until(what: str, predicate: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def event_message(i: int) -> EventMessage:
    event = Event(camera_id="cam", rule="fence", type="intrusion", ts=float(i), pts=float(i),
                  track_ids=[i], object_class="person", zone="fence", severity="low",
                  measured=2.0, threshold=2.0, unit="s", explanation="person in zone 'fence'",
                  confidence=0.8, box=(1.0, 2.0, 3.0, 4.0), started_pts=float(i))  # fmt: skip
    return EventMessage(f"alert-{i:03d}", event, "北门", Area(county="示例县", township="城关镇"),
                        time.time())  # fmt: skip


def router() -> Router:
    return Router(rules=[RoutingRule("all", departments=())], departments={},
                  targets={"centre": Target("centre")})  # fmt: skip


def test_the_spool_keeps_what_a_full_disk_refuses_and_writes_it_through(
    small_disk: SmallDisk,
) -> None:
    spool = SpoolingEventBus(MemoryEventBus(), small_disk.root / "spool", retry_s=0.1)
    spool.subscribe(EVENTS_TOPIC, CONSUMER_GROUP)
    spool.publish(EVENTS_TOPIC, {"alert_id": "before"})
    small_disk.fill()
    gauge_before = REGISTRY.get_sample_value("shaobing_spool_memory_events") or 0.0
    for i in range(20):  # raised while the disk is full: none may be lost
        spool.publish(EVENTS_TOPIC, {"alert_id": f"full-{i}"})
    assert spool.in_memory() == 20 and spool.spooled() == 21
    assert REGISTRY.get_sample_value("shaobing_spool_memory_events") == gauge_before + 20
    health = spool.health()
    assert not health["ok"] and "ENOSPC" in str(health["reason"])

    # Five are stored meanwhile (their alert committed elsewhere): nothing to write for them.
    for _ in range(6):
        delivery = spool.consume(EVENTS_TOPIC, CONSUMER_GROUP, timeout_s=1)
        assert delivery is not None
        delivery.ack()
    assert spool.in_memory() == 15

    small_disk.free()
    wait_until("the buffer written through", lambda: spool.in_memory() == 0, 10)
    assert spool.health()["ok"]
    on_disk = sorted(json.loads(p.read_text(encoding="utf-8"))["payload"]["alert_id"]
                     for p in (small_disk.root / "spool").glob("*.json"))  # fmt: skip
    assert on_disk == sorted(f"full-{i}" for i in range(5, 20))

    # A restart now (the process dies): the next start publishes all fifteen again.
    after = SpoolingEventBus(MemoryEventBus(), small_disk.root / "spool")
    after.subscribe(EVENTS_TOPIC, CONSUMER_GROUP)
    assert after.recover() == 15


def test_a_full_buffer_holds_the_publisher_instead_of_dropping(small_disk: SmallDisk) -> None:
    spool = SpoolingEventBus(MemoryEventBus(), small_disk.root / "spool", memory_limit=3,
                             retry_s=0.1)  # fmt: skip
    spool.subscribe(EVENTS_TOPIC, CONSUMER_GROUP)
    small_disk.fill()
    for i in range(3):
        spool.publish(EVENTS_TOPIC, {"alert_id": f"a-{i}"})
    done = threading.Event()
    threading.Thread(target=lambda: (spool.publish(EVENTS_TOPIC, {"alert_id": "a-3"}),
                                     done.set()), daemon=True).start()  # fmt: skip
    assert not done.wait(1.0)  # back-pressure: the fourth waits for room
    small_disk.free()
    assert done.wait(10)
    wait_until("all written", lambda: spool.in_memory() == 0, 10)
    assert spool.spooled() == 4


@pytest.mark.disk_size("16m")
def test_alerts_raised_while_the_disk_is_full_are_all_stored_and_delivered(
    small_disk: SmallDisk,
) -> None:
    """Database and spool on the full disk, alert flow running, a real receiver."""
    engine, sessions = open_database(f"sqlite:///{small_disk.root / 'shaobing.db'}")
    receiver = Receiver().start()
    bus = SpoolingEventBus(MemoryEventBus(), small_disk.root / "spool", retry_s=0.2)
    # every event its own alert: what is checked is that none is lost, not the grouping
    service = AlertService(lambda: SqlUnitOfWork(sessions), router,
                           incidents=IncidentPolicy(enabled=False))
    workers = AlertWorkers(service, bus, escalation_interval_s=60)
    target = DispatchTarget(name="centre", url=f"{receiver.url}/in", secret=SECRET,
                            timeout_s=2, backoff_initial_s=0.2, backoff_max_s=1)  # fmt: skip
    dispatcher = Dispatcher(sessions, [target], poll_s=0.2)
    service.on_committed = dispatcher.notify
    # The host's disk alert (shaobing/disk_alerts.py) through a real producer on the same bus.
    producer = AlertProducer(bus, AlertsConfig(), small_disk.root / "evidence")
    alerts_of_disk = DiskAlerts(producer, "host-a", Area(county="示例县"))
    watcher = DiskWatcher({"data_dir": small_disk.root}, floor_bytes=256 * 1024, interval_s=0.2,
                          on_change=alerts_of_disk)  # fmt: skip
    dispatcher.start()
    workers.start()
    watcher.start()
    raised: list[str] = []
    try:
        for i in range(10):
            bus.publish(EVENTS_TOPIC, event_message(i).to_dict())
            raised.append(event_message(i).alert_id)
        wait_until("the first alerts stored", lambda: stored(sessions) == 10, 20)
        small_disk.fill()
        wait_until("the watcher sees the disk low", lambda: not watcher.health()["ok"], 5)
        for i in range(10, 40):  # raised while data_dir is full
            bus.publish(EVENTS_TOPIC, event_message(i).to_dict())
            raised.append(event_message(i).alert_id)
            time.sleep(0.05)
        health = with_reasons({"status": "ok"}, watcher.health(), bus.health())
        assert health["status"] == "degraded"
        assert any("data_dir" in r and "under the floor" in r for r in health["reasons"]), health
        assert bus.in_memory() > 0  # the spool could not write them
        assert REGISTRY.get_sample_value("shaobing_disk_low", {"path": "data_dir"}) == 1
        time.sleep(2)
        assert stored(sessions) < 40  # the database could not store them either
        small_disk.free()
        wait_until("every alert stored", lambda: stored(sessions) == 41, 90)  # and the disk's
        wait_until("every alert delivered", lambda: delivered(receiver) >= set(raised), 60)
        wait_until("the spool empty", lambda: bus.spooled() == 0, 10)
        wait_until("the watcher sees space", lambda: watcher.health()["ok"], 5)
        assert REGISTRY.get_sample_value("shaobing_disk_low", {"path": "data_dir"}) == 0
        with sessions() as s:
            ids = set(s.scalars(select(AlertRecord.id)))
            (disk,) = s.scalars(select(AlertRecord).where(AlertRecord.id.not_in(raised)))
        assert ids - {disk.id} == set(raised)
        assert workers.dead_lettered == 0
        # The room hears of it: a camera_fault alert of the host, delivered, in Chinese.
        details = json.loads(disk.details_json or "{}")
        seen = (disk.camera_id, disk.type, disk.zone, details["fault"])
        assert seen == ("system-host-a", "camera_fault", "data_dir", "disk_low")
        assert disk.camera_name == "哨兵主机 host-a" and disk.county == "示例县"
        text = explain_zh(disk.type, "", [], disk.zone, disk.measured, disk.threshold,
                          disk.unit, details)  # fmt: skip
        assert text.startswith("主机 host-a 数据目录磁盘空间不足")
        assert "磁盘空间不足" in disk.explanation
        wait_until("the disk alert delivered", lambda: disk.id in delivered(receiver), 30)
    finally:
        watcher.stop()
        workers.stop(timeout=2)
        dispatcher.stop()
        dispatcher.join(timeout=10)
        receiver.stop()
        engine.dispose()


def stored(sessions: sessionmaker[Session]) -> int:
    try:
        with sessions() as s:
            return int(s.scalar(select(func.count()).select_from(AlertRecord)) or 0)
    except Exception:  # noqa: BLE001 - the database may refuse while the disk is full
        return -1


def delivered(receiver: Receiver) -> set[str]:
    ids = set()
    for headers, _body, _path in receiver.requests:
        key = {k.lower(): v for k, v in headers.items()}.get(IDEMPOTENCY_HEADER.lower(), "")
        alert_id, _, event = key.partition(":")
        if event.startswith("alert.created"):
            ids.add(alert_id)
    return ids


def test_a_clip_for_an_alert_that_does_not_exist_is_dead_lettered(tmp_path: Path) -> None:
    engine, sessions = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    bus = SpoolingEventBus(MemoryEventBus(), tmp_path / "spool")
    service = AlertService(lambda: SqlUnitOfWork(sessions), router)
    workers = AlertWorkers(service, bus, escalation_interval_s=60, poison_attempts=3)
    workers.start()
    try:
        clip = ClipMessage("no-such-alert", "cam/x.mp4", "ab" * 32, 0.0, 5.0)
        bus.publish(EVENTS_TOPIC, clip.to_dict())
        bus.publish(EVENTS_TOPIC, {"kind": "event", "broken": True})  # malformed
        wait_until("both dead-lettered", lambda: workers.dead_lettered == 2, 30)
        assert workers.pending() == 0 and bus.spooled() == 0
        reasons = sorted(json.loads(p.read_text(encoding="utf-8"))["reason"]
                         for p in (tmp_path / "spool" / "dead").glob("*.json"))  # fmt: skip
        assert reasons[0].startswith("clip for alert no-such-alert which does not exist")
        assert reasons[1].startswith("malformed message: KeyError")
        # A clip whose alert exists is attached, not dead-lettered.
        bus.publish(EVENTS_TOPIC, event_message(1).to_dict())
        bus.publish(EVENTS_TOPIC, ClipMessage("alert-001", "cam/a.mp4", "cd" * 32, 0.0,
                                              5.0).to_dict())  # fmt: skip
        wait_until("the clip attached", lambda: (a := service.get("alert-001")) is not None
                   and "clip" in a.evidence, 20)  # fmt: skip
        assert workers.dead_lettered == 2
    finally:
        workers.stop(timeout=2)
        engine.dispose()


def test_the_track_index_keeps_the_row_when_the_thumbnail_cannot_be_written(
    tmp_path: Path, small_disk: SmallDisk
) -> None:
    engine, sessions = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    index = TrackIndex(TracksConfig(), sessions, small_disk.root / "tracks", ["person"],
                       lambda _: None)  # fmt: skip
    small_disk.fill()
    track = FinishedTrack("cam", 7, 0, 100.0, 110.0, 30, 0.9,
                          Crop(b"\xff\xd8" + b"x" * 50_000, "red", 100.0, 0.9), True)  # fmt: skip
    index._index(track)
    assert index.indexed == 1 and index.thumbnails_dropped == 1
    with sessions() as s:
        rows = list(s.scalars(select(TrackRecord)))
    assert len(rows) == 1 and rows[0].thumbnail_path is None and rows[0].colour == "red"
    engine.dispose()


@pytest.mark.disk_size("64m")
def test_the_hub_reports_a_low_disk_in_healthz_and_recovers(
    small_disk: SmallDisk, models_dir: Path
) -> None:
    """The wiring: a real hub with data_dir on the small disk, /healthz over the app."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from shaobing.bootstrap import Hub
    from shaobing.config import parse_config

    data = small_disk.root / "data"
    loaded = parse_config({"data_dir": str(data), "detector": {
        "model": str(models_dir / "yolox_nano.onnx"), "workers": 1}}, "hub.yaml",
        small_disk.root)  # fmt: skip
    hub = Hub(loaded)
    hub.start()
    try:
        client = TestClient(create_app(hub.services, hub.sessions, console=False))
        health = client.get("/healthz").json()
        assert health["status"] == "ok" and health["reasons"] == [], health
        assert set(health["disks"]) == {"data_dir", "evidence"}
        assert health["disks"]["data_dir"]["free_bytes"] > 0
        small_disk.fill()
        hub.disks.check()  # the watcher's thread does this every 10 s
        health = client.get("/healthz").json()
        assert health["status"] == "degraded", health
        assert any(r.startswith("data_dir (") and "under the floor" in r
                   for r in health["reasons"]), health  # fmt: skip
        assert health["disks"]["data_dir"]["low"] and health["disks"]["evidence"]["low"]
        small_disk.free()
        hub.disks.check()
        # ok once the spool has written through what it held in memory (the disk alerts)
        wait_until("/healthz ok again", lambda: client.get("/healthz").json()["status"] == "ok", 30)
        assert client.get("/healthz").json()["reasons"] == []

        def disk_alerts() -> list[AlertRecord]:
            fault = AlertRecord.type == "camera_fault"
            with hub.sessions() as s:
                return list(s.scalars(select(AlertRecord).where(fault)))

        # The room was told too: one alert per low path, kept in memory while data_dir was
        # full, stored once space returned.
        wait_until("the disk alerts stored", lambda: len(disk_alerts()) == 2, 30)
        assert {(a.camera_id.startswith("system-"), a.zone) for a in disk_alerts()} == {
            (True, "data_dir"), (True, "evidence")}
    finally:
        hub.stop()


def test_a_workers_forwarding_spool_on_a_full_disk_forwards_from_memory(
    small_disk: SmallDisk, tmp_path: Path
) -> None:
    """Distributed mode: the worker's spool in front of a real Redis; the disk is full."""
    from alerts.adapters.spool import ForwardingSpool
    from shaobing.adapters.redis_bus import RedisEventBus
    from tests.redisproc import RedisServer

    server = RedisServer(tmp_path / "redis").start()
    try:
        consumer = RedisEventBus(server.url)
        consumer.subscribe(EVENTS_TOPIC, CONSUMER_GROUP)
        spool = ForwardingSpool(RedisEventBus(server.url), small_disk.root / "spool")
        small_disk.fill()
        for i in range(30):  # the spool file cannot be written: before, publish raised
            spool.publish(EVENTS_TOPIC, {"alert_id": f"w-{i}"})
        assert spool.flush(20)
        got = set()
        deadline = time.monotonic() + 20
        while len(got) < 30 and time.monotonic() < deadline:
            delivery = consumer.consume(EVENTS_TOPIC, CONSUMER_GROUP, timeout_s=0.5)
            if delivery is not None:
                got.add(delivery.payload["alert_id"])
                delivery.ack()
        assert got == {f"w-{i}" for i in range(30)}
        assert spool.in_memory == 0
        spool.stop()
    finally:
        server.stop()
