"""The database locked by another process for 40 s (longer than SQLite's 30 s busy
timeout): no alert is lost, analysis goes on, the watchdog still raises offline alerts
afterwards, and no service thread dies. Events not yet stored when the hub is killed
are stored after the restart (the spool)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.hubproc import HubProcess
from tests.peers.procs import RtspServer

pytestmark = pytest.mark.slow

WHOLE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
LOCK_S = 40.0


def hold_write_lock(db: Path, seconds: float, held: threading.Event) -> None:
    """Another process's writer (here: another connection) holding the lock."""
    conn = sqlite3.connect(db, timeout=60, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    held.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


def test_locked_database_loses_no_alert(
    tmp_path: Path, models_dir: Path, rtsp_server_factory: Callable[..., RtspServer]
) -> None:
    server = rtsp_server_factory({"crosswalk": "crosswalk_people.mp4"})
    config = {
        "detector": {"model": str(models_dir / "yolox_nano.onnx"), "workers": 2},
        "alerts": {"cooldown_s": 600, "camera_offline_s": 3},
        "cameras": [{
            "id": "cam-1", "source": {"url": server.url("crosswalk")}, "detect_fps": 5,
            "zones": [{"name": "all", "points": WHOLE}],
            "rules": [{"name": "dwell", "type": "loitering", "zone": "all", "min_duration_s": 2}],
        }],
    }  # fmt: skip
    hub = HubProcess(tmp_path, config)
    hub.start()
    try:
        hub.wait("a first alert", lambda: hub.get("/api/alerts")["total"] >= 1, 60)
        held = threading.Event()
        locker = threading.Thread(
            target=hold_write_lock, args=(tmp_path / "data" / "shaobing.db", LOCK_S, held)
        )
        locker.start()
        held.wait(10)
        locked_at = time.time()
        before = hub.camera("cam-1")["status"]["frames_analysed"]
        time.sleep(10)
        # Analysis does not wait for the database.
        assert hub.camera("cam-1")["status"]["frames_analysed"] > before + 20
        locker.join()
        released_at = time.time()

        def stored_during_lock() -> list[dict[str, object]]:
            items = hub.get("/api/alerts", since=locked_at, until=released_at)["items"]
            return items if hub.get("/healthz")["events_pending"] == 0 else []

        during = hub.wait("the alerts raised during the lock stored", stored_during_lock, 90)
        assert during, "no alert was raised while the database was locked"
        assert "database is locked" in hub.log()  # the failure happened and was retried

        # The watchdog survived: a camera lost now still raises its offline alert.
        server.stop()
        offline = hub.wait(
            "the offline alert",
            lambda: [a for a in hub.get("/api/alerts", type="camera_fault")["items"]
                     if a["rule"] == "camera-offline"],
            60,
        )  # fmt: skip
        assert offline[0]["camera"]["id"] == "cam-1"
        health = hub.get("/healthz")
        assert health["status"] == "ok" and all(health["threads"].values()), health
    finally:
        hub.stop()


def test_events_spooled_before_a_kill_are_stored_after_the_restart(
    tmp_path: Path, models_dir: Path, rtsp_server_factory: Callable[..., RtspServer]
) -> None:
    server = rtsp_server_factory({"crosswalk": "crosswalk_people.mp4"})
    config = {
        "detector": {"model": str(models_dir / "yolox_nano.onnx"), "workers": 2},
        # every event its own alert: what is checked is the spool, not the grouping
        "alerts": {"cooldown_s": 600, "incidents": {"enabled": False}},
        "cameras": [{
            "id": "cam-1", "source": {"url": server.url("crosswalk")}, "detect_fps": 5,
            "zones": [{"name": "all", "points": WHOLE}],
            "rules": [{"name": "dwell", "type": "loitering", "zone": "all", "min_duration_s": 2}],
        }],
    }  # fmt: skip
    hub = HubProcess(tmp_path, config)
    hub.start()
    spool = tmp_path / "data" / "spool"
    held = threading.Event()
    locker = threading.Thread(
        target=hold_write_lock, args=(tmp_path / "data" / "shaobing.db", 25.0, held)
    )
    try:
        hub.wait("a first alert", lambda: hub.get("/api/alerts")["total"] >= 1, 60)
        stored_before = {a["id"] for a in hub.get("/api/alerts", limit=500)["items"]}
        locker.start()
        held.wait(10)
        spooled = hub.wait("events waiting in the spool", lambda: sorted(spool.glob("*.json")), 20)
        assert hub.proc is not None
        os.killpg(hub.proc.pid, signal.SIGKILL)  # a crash: nothing stops cleanly
        hub.proc.wait()
    finally:
        locker.join()
    waiting = {json.loads(p.read_text(encoding="utf-8"))["payload"]["alert_id"] for p in spooled}
    assert waiting and not waiting & stored_before
    hub.start()
    try:
        stored = hub.wait(
            "the spooled events stored after the restart",
            lambda: waiting <= {a["id"] for a in hub.get("/api/alerts", limit=500)["items"]},
            30,
        )
        assert stored
        hub.wait("the spool emptied", lambda: not any(
            json.loads(p.read_text(encoding="utf-8"))["payload"]["alert_id"] in waiting
            for p in spool.glob("*.json")), 10)  # fmt: skip
    finally:
        hub.stop()
