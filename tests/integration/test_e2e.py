"""End to end: real RTSP server, real ONVIF camera, real HTTP receiver, the real hub."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from alerts.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify
from tests.conftest import IPYCAM_PASSWORD, IPYCAM_USER
from tests.hubproc import HubProcess
from tests.peers.procs import IpyCamProcess, RtspServer, free_port
from tests.peers.receiver import Receiver
from tests.redisproc import REDIS_URL, redis_prefix

pytestmark = pytest.mark.slow

SECRET = "test-hmac-key-0123"

WHOLE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]


def base_config(models_dir: Path, **extra: Any) -> dict[str, Any]:
    return {
        "detector": {"model": str(models_dir / "yolox_nano.onnx"), "workers": 2},
        "alerts": {"cooldown_s": 600},
        **extra,
    }


def loitering_camera(cam_id: str, source: dict[str, Any], seconds: float = 3) -> dict[str, Any]:
    return {
        "id": cam_id,
        "name": f"测试 {cam_id}",
        "programme": "xueliang",
        "area": {"county": "示例县", "township": "城关镇"},
        "source": source,
        "detect_fps": 5,
        "zones": [{"name": "square", "points": WHOLE}],
        "rules": [
            {
                "name": "square-loitering",
                "type": "loitering",
                "zone": "square",
                "min_duration_s": seconds,
            }
        ],
    }


def target(url: str, **extra: Any) -> dict[str, Any]:
    return {"name": "centre", "url": f"{url}/dispatch", "secret": SECRET, **extra}


def test_onvif_camera_to_signed_alert(
    tmp_path: Path, models_dir: Path, ipycam_camera: IpyCamProcess, receiver: Receiver
) -> None:
    cam = loitering_camera(
        "onvif-1",
        {
            "onvif": {
                "host": "127.0.0.1",
                "port": ipycam_camera.onvif_port,
                "username": IPYCAM_USER,
                "password": IPYCAM_PASSWORD,
            }
        },
    )
    hub = HubProcess(
        tmp_path, base_config(models_dir, cameras=[cam], dispatch=[target(receiver.url)])
    )
    hub.start()
    try:
        headers, body, path = receiver.wait_for(1, timeout=90)[0]
        assert path == "/dispatch"
        # The signature verifies over the raw body; a tampered body does not.
        assert verify(body, SECRET, headers[SIGNATURE_HEADER])
        assert not verify(body + b" ", SECRET, headers[SIGNATURE_HEADER])
        alert = json.loads(body)["alert"]
        assert headers[IDEMPOTENCY_HEADER] == f"{alert['id']}:alert.created:1"
        assert alert["camera"]["id"] == "onvif-1"
        assert alert["rule"] == "square-loitering" and alert["type"] == "loitering"
        assert alert["object_class"] == "person"
        assert alert["trace"]["measured"] >= alert["trace"]["threshold"] == 3
        snap = alert["evidence"]["snapshot"]
        assert f"/api/alerts/{alert['id']}/snapshot.jpg?expires=" in snap["url"]
        # The evidence the receiver is pointed to is there (a signed link: no login), and
        # its hash matches; the link opens nothing else and a forged one nothing at all.
        jpeg = httpx.get(snap["url"], timeout=5)
        assert jpeg.status_code == 200, jpeg.text
        forged = snap["url"][:-4] + ("0000" if not snap["url"].endswith("0000") else "1111")
        assert httpx.get(forged, timeout=5).status_code == 401
        unsigned = snap["url"].split("?")[0]
        assert httpx.get(unsigned, timeout=5).status_code == 401
        assert jpeg.headers["content-type"] == "image/jpeg"
        assert hashlib.sha256(jpeg.content).hexdigest() == snap["sha256"]
        annotated = httpx.get(alert["evidence"]["annotated_snapshot"]["url"], timeout=5)
        assert (
            hashlib.sha256(annotated.content).hexdigest()
            == (alert["evidence"]["annotated_snapshot"]["sha256"])
        )
        # The API lists the alert, with its delivery.
        listed = hub.get("/api/alerts", camera_id="onvif-1")
        assert alert["id"] in [a["id"] for a in listed["items"]]
        detail = hub.get(f"/api/alerts/{alert['id']}")
        hub.wait(
            "delivery marked delivered",
            lambda: hub.get(f"/api/alerts/{alert['id']}")["deliveries"][0]["state"] == "delivered",
            10,
        )
        assert detail["camera"]["name"] == "测试 onvif-1"
        # The camera shows the probed RTSP URL, never the password.
        camera = hub.camera("onvif-1")
        assert camera["status"]["state"] == "online"
        live = hub.raw("/api/cameras/onvif-1/snapshot.jpg")
        assert live.status_code == 200 and live.content[:3] == b"\xff\xd8\xff"  # a JPEG
        assert camera["stream_url"].startswith(f"rtsp://127.0.0.1:{ipycam_camera.rtsp_port}/")
        everything = json.dumps(hub.get("/api/cameras")) + json.dumps(listed) + body.decode()
        assert IPYCAM_PASSWORD not in everything
    finally:
        hub.stop()
    assert IPYCAM_PASSWORD not in hub.log()


@pytest.fixture(params=["embedded", "distributed"])
def mode(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """The config keys of a mode: embedded (one process), or distributed on one machine
    (`run --workers 2`: Redis bus, leases and live state; see tests/test_distributed.py)."""
    if request.param == "embedded":
        yield {}
        return
    with redis_prefix() as prefix:
        yield {"bus": {"kind": "redis", "url": REDIS_URL, "prefix": prefix, "lease_s": 4}}


def test_dispatch_outage_and_restart_lose_nothing(
    tmp_path: Path, models_dir: Path, rtsp_server: RtspServer, mode: dict[str, Any]
) -> None:
    rx = Receiver(port=free_port())  # down for now
    cam = loitering_camera("rtsp-1", {"url": rtsp_server.url("crosswalk")})
    config = base_config(
        models_dir,
        cameras=[cam],
        dispatch=[target(rx.url, backoff_initial_s=1, backoff_max_s=4, timeout_s=2)],
        **mode,
    )
    hub = HubProcess(tmp_path, config, args=["--workers", "2"] if mode else ())
    hub.start()
    try:
        first = hub.wait(
            "an alert with a failed delivery",
            lambda: [
                a
                for a in hub.get("/api/alerts")["items"]
                if hub.get(f"/api/alerts/{a['id']}")["deliveries"][0]["attempts"] >= 1
            ],
            90,
        )
        fired_at = time.monotonic()
        hub.stop()  # a restart while deliveries are pending
        hub.start()
        time.sleep(max(0.0, 30 - (time.monotonic() - fired_at)))
        rx.start()  # the centre's API is back 30 s after the alert
        rtsp_server.stop()  # no new alerts from here on: the final listing is complete
        time.sleep(2)

        def all_delivered() -> list[dict[str, Any]] | None:
            if hub.get("/healthz")["events_pending"]:
                return None  # an event is still on its way to becoming an alert
            items = hub.get("/api/alerts", limit=500)["items"]
            # every message of every incident: created, and repeated/updated ones
            queued = {a["id"]: hub.get(f"/api/alerts/{a['id']}")["deliveries"] for a in items}
            states = [d["state"] for ds in queued.values() for d in ds]
            return queued if all(s == "delivered" for s in states) else None

        queued = hub.wait("every alert delivered", all_delivered, 60)
        # Frames still queued on a loaded machine (or the camera going offline) may raise
        # alerts after that look: every delivered key must be an alert of the hub's.
        stored = {a["id"] for a in hub.get("/api/alerts", limit=500)["items"]}
    finally:
        hub.stop()
        rx.stop()
    keys = Counter(h[IDEMPOTENCY_HEADER] for h, _, _ in rx.requests)
    assert f"{first[0]['id']}:alert.created:1" in keys
    expected = {f"{i}:{d['event']}:{d['sequence']}" for i, ds in queued.items() for d in ds}
    assert {f"{i}:alert.created:1" for i in queued} <= expected
    assert expected <= set(keys)  # nothing lost (incidents: created and their updates)
    assert {k.split(":", 1)[0] for k in keys} <= stored  # nothing made up
    assert set(keys.values()) == {1}  # each arrived once


def test_camera_loss_and_return(
    tmp_path: Path, models_dir: Path, rtsp_server_factory: Callable[..., RtspServer]
) -> None:
    server = rtsp_server_factory({"crosswalk": "crosswalk_people.mp4"})
    cam = loitering_camera("rtsp-2", {"url": server.url("crosswalk")}, seconds=600)
    hub = HubProcess(tmp_path, base_config(models_dir, cameras=[cam]))
    hub.start()
    try:
        hub.wait("camera online", lambda: hub.camera("rtsp-2")["status"]["state"] == "online", 30)
        server.stop()
        stopped = time.monotonic()
        offline = hub.wait(
            "camera offline",
            lambda: (s := hub.camera("rtsp-2")["status"])["state"] == "offline" and s,
            15,
        )
        assert offline["last_error"]
        time.sleep(max(0.0, 20 - (time.monotonic() - stopped)))
        server.start()
        back = time.monotonic()
        hub.wait(
            "camera online again",
            lambda: hub.camera("rtsp-2")["status"]["state"] == "online",
            10,
            interval=0.1,
        )
        assert time.monotonic() - back <= 5.0
        status = hub.camera("rtsp-2")["status"]
        assert status["reconnects"] >= 1
        before = status["frames_analysed"]
        hub.wait(
            "analysis resumes",
            lambda: hub.camera("rtsp-2")["status"]["frames_analysed"] > before + 5,
            10,
        )
    finally:
        hub.stop()


def test_bad_cameras_do_not_stop_the_good_one(
    tmp_path: Path, models_dir: Path, videos_dir: Path, rtsp_server: RtspServer
) -> None:
    dead_port = free_port()
    cameras = [
        loitering_camera("good", {"url": rtsp_server.url("crosswalk")}, seconds=600),
        loitering_camera(
            "unreachable",
            {
                "url": f"rtsp://127.0.0.1:{dead_port}/live",
                "username": "admin",
                "password": "Dead-Cam-pw",
            },
            seconds=600,
        ),
        loitering_camera(
            "corrupt-tail",
            {"url": str(videos_dir / "street_parked_cars.mp4"), "realtime": False},
            seconds=600,
        ),
    ]
    config = base_config(models_dir, cameras=cameras)
    config["alerts"]["camera_offline_s"] = 3
    hub = HubProcess(tmp_path, config)
    hub.start()
    try:
        hub.wait(
            "good camera analysing",
            lambda: hub.camera("good")["status"]["frames_analysed"] > 10,
            30,
        )
        dead = hub.wait(
            "unreachable camera reported",
            lambda: (s := hub.camera("unreachable")["status"])["last_error"] and s,
            20,
        )
        assert dead["state"] == "offline"
        assert "Connection refused" in dead["last_error"] or "refused" in dead["last_error"].lower()
        tail = hub.wait(
            "corrupt tail reported",
            lambda: (s := hub.camera("corrupt-tail")["status"])["state"] == "finished" and s,
            60,
        )
        assert tail["decode_errors"] >= 10
        assert "did not decode" in tail["last_error"]
        # A street with quiet spells: the motion gate skipped detection on some frames.
        assert 0 < tail["frames_gated"] < tail["frames_analysed"]
        # The hub still serves the good camera after all that.
        n = hub.camera("good")["status"]["frames_analysed"]
        hub.wait(
            "good camera still analysing",
            lambda: hub.camera("good")["status"]["frames_analysed"] > n + 5,
            10,
        )
        # A camera that stays dead raises a camera_fault alert (no snapshot to take).
        fault = hub.wait(
            "camera_fault alert",
            lambda: hub.get("/api/alerts", camera_id="unreachable", type="camera_fault")["items"],
            20,
        )
        assert fault[0]["trace"]["threshold"] == 3
        assert "camera offline" in fault[0]["trace"]["explanation"]
        assert fault[0]["evidence"]["snapshot"]["url"] is None
        api_text = json.dumps(hub.get("/api/cameras")) + json.dumps(fault)
        assert "Dead-Cam-pw" not in api_text
        assert hub.camera("unreachable")["source"] == f"rtsp://127.0.0.1:{dead_port}/live"
    finally:
        hub.stop()
    assert "Dead-Cam-pw" not in hub.log()
    assert "unreachable offline" in hub.log()


def test_missing_model_file_is_reported(tmp_path: Path, videos_dir: Path) -> None:
    config = {"detector": {"model": str(tmp_path / "missing.onnx")}, "cameras": []}
    hub = HubProcess(tmp_path, config)
    with pytest.raises(RuntimeError) as err:
        hub.start(timeout=30)
    assert "exited with 2" in str(err.value)
    assert "missing.onnx" in str(err.value) and "not found" in str(err.value)


def test_line_crossing_counts_live(
    tmp_path: Path, models_dir: Path, rtsp_server: RtspServer
) -> None:
    cam = {
        "id": "hw-1",
        "source": {"url": rtsp_server.url("highway")},
        "detect_fps": 5,
        "rules": [{"name": "count", "type": "line_crossing", "classes": ["car", "truck", "bus"],
                   "line": [[0.0, 0.6], [1.0, 0.6]], "direction": "both"}],
    }  # fmt: skip
    hub = HubProcess(tmp_path, base_config(models_dir, cameras=[cam]))
    hub.start()
    try:
        def counted() -> dict[str, int] | None:
            c = hub.camera("hw-1")["counters"].get("count")
            return c if c and sum(c.values()) >= 3 else None

        counts = hub.wait("vehicles counted", counted, 45)
        assert set(counts) == {"a_to_b", "b_to_a"}
        alerts = hub.get("/api/alerts", camera_id="hw-1", type="line_crossing")["items"]
        assert alerts and alerts[0]["trace"]["details"]["direction"] in ("a_to_b", "b_to_a")
    finally:
        hub.stop()
