"""Prometheus ``/metrics``: scraped from a running hub (real RTSP camera, real receiver),
the names are there and the counters move; the route's authentication is configurable."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from shaobing.bootstrap import Hub
from shaobing.config import parse_config
from tests.hubproc import HubProcess
from tests.peers.procs import RtspServer
from tests.peers.receiver import Receiver

WHOLE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]

NAMES = [
    "shaobing_role_up",
    "shaobing_camera_input_fps",
    "shaobing_camera_analysed_fps",
    "shaobing_camera_gated_share",
    "shaobing_camera_online",
    "shaobing_camera_frames_decoded_total",
    "shaobing_camera_frames_analysed_total",
    "shaobing_camera_frames_gated_total",
    "shaobing_camera_frames_dropped_total",
    "shaobing_decode_seconds_bucket",
    "shaobing_inference_seconds_bucket",
    "shaobing_inference_batch_frames_count",
    "shaobing_queue_depth",
    "shaobing_outbox_rows",
    "shaobing_alert_latency_seconds_bucket",
    "shaobing_deliveries_total",
    "shaobing_alerts_stored_total",
]


def value(text: str, series: str) -> float:
    """The value of one series (name with labels, as exposed)."""
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    assert match, f"{series} not in the exposition"
    return float(match.group(1))


@pytest.mark.slow
def test_a_running_hub_exposes_its_metrics_and_they_move(
    tmp_path: Path, models_dir: Path, rtsp_server: RtspServer, receiver: Receiver
) -> None:
    cam = {
        "id": "m-1", "source": {"url": rtsp_server.url("crosswalk")}, "detect_fps": 5,
        "zones": [{"name": "all", "points": WHOLE}],
        "rules": [{"name": "loiter", "type": "loitering", "zone": "all", "min_duration_s": 2}],
    }  # fmt: skip
    config = {
        "detector": {"model": str(models_dir / "yolox_nano.onnx")},
        "alerts": {"cooldown_s": 600, "clips_enabled": False},
        "cameras": [cam],
        "dispatch": [{"name": "centre", "url": f"{receiver.url}/d", "unsigned": True}],
    }
    hub = HubProcess(tmp_path, config).start()
    try:
        receiver.wait_for(1, timeout=90)  # an alert stored and delivered
        hub.wait("a delivery counted", lambda: 'outcome="delivered"' in
                 httpx.get(f"{hub.base}/metrics", timeout=5).text, 15)  # fmt: skip
        first = httpx.get(f"{hub.base}/metrics", timeout=5)  # public: no login
        assert first.status_code == 200
        assert first.headers["content-type"].startswith("text/plain")
        text = first.text
        for name in NAMES:
            assert re.search(rf"^{name}[{{ ]", text, re.M), f"{name} missing"
        assert value(text, 'shaobing_deliveries_total{outcome="delivered",target="centre"}') >= 1
        assert value(text, 'shaobing_alert_latency_seconds_count{stage="stored"}') >= 1
        assert value(text, 'shaobing_alert_latency_seconds_count{stage="delivered"}') >= 1
        assert value(text, 'shaobing_camera_online{camera="m-1"}') == 1
        decoded = value(text, 'shaobing_camera_frames_decoded_total{camera="m-1"}')
        analysed = value(text, 'shaobing_camera_frames_analysed_total{camera="m-1"}')
        decode_n = value(text, "shaobing_decode_seconds_count")
        time.sleep(2)
        later = httpx.get(f"{hub.base}/metrics", timeout=5).text
        assert value(later, 'shaobing_camera_frames_decoded_total{camera="m-1"}') > decoded
        assert value(later, 'shaobing_camera_frames_analysed_total{camera="m-1"}') > analysed
        assert value(later, "shaobing_decode_seconds_count") > decode_n
        assert value(later, 'shaobing_camera_input_fps{camera="m-1"}') > 0
        assert "rtsp://" not in later  # no stream URL (nor credential) in the metrics
    finally:
        hub.stop()


def test_metrics_need_a_login_when_not_public(tmp_path: Path, models_dir: Path) -> None:
    loaded = parse_config(
        {"data_dir": str(tmp_path / "data"), "api": {"metrics_public": False},
         "detector": {"model": str(models_dir / "yolox_nano.onnx")}}, "m.yaml", tmp_path,
    )  # fmt: skip
    assert loaded.config.api.metrics_public is False
    hub = Hub(loaded)
    try:
        password = hub.ensure_admin("metrics-admin-pass-1")
        assert password is not None
        client = TestClient(
            create_app(
                hub.services,
                hub.sessions,
                allowed_hosts=["testserver"],
                metrics_public=loaded.config.api.metrics_public,
            )
        )
        assert client.get("/metrics").status_code == 401
        token = client.post(
            "/api/auth/login", json={"username": "admin", "password": password}
        ).json()["token"]
        ok = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and "shaobing_deliveries_total" in ok.text
    finally:
        hub.engine.dispose()


def test_roles_in_one_process_expose_each_family_once() -> None:
    """``run --workers`` runs alerts, dispatcher and API in one process: one exposition."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from shaobing import metrics

    registry = CollectorRegistry()
    remove = [
        metrics.register(
            metrics.HubCollector(
                role=role, queues=lambda: {"events": 2}, outbox=lambda: {"pending": 1, "dead": 0}
            ),
            registry,
        )  # fmt: skip
        for role in ("alerts", "dispatcher", "api")
    ]
    text = generate_latest(registry).decode()
    families = [f.name for f in text_string_to_metric_families(text)]
    assert sorted(families) == sorted(set(families))  # a family twice breaks a scrape
    assert text.count("shaobing_role_up{") == 3
    assert text.count('shaobing_queue_depth{queue="events"}') == 1
    for unregister in remove:
        unregister()
    assert "shaobing_role_up{" not in generate_latest(registry).decode()
