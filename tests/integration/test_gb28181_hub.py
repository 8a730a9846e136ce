"""GB/T 28181 end to end in a real hub process: a SIPp device registers with digest,
its catalog becomes cameras in the right area (API), the channel the config analyses is
played by INVITE (PS over RTP of a real clip) into decoded frames, a rule on it raises
an alert that goes up to a SIPp superior as a GB/T 28181 alarm (retried through the
outbox while the superior is down), and a device that goes silent takes its channels
offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.hubproc import HubProcess
from tests.peers import sipp as peers
from tests.peers.procs import free_port

pytestmark = pytest.mark.slow  # real SIPp peers

DEVICE = "34020000001180000001"
PLATFORM = "34020000002000000001"
DOMAIN = "3402000000"
PASSWORD = "Gb-Secr3t-e2e"
CH1, CH2 = "34150201001310000001", "34150200001320000002"


WHOLE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
SUPERIOR = "34010000002000000001"
UP_PASSWORD = "Up-Secr3t-e2e"


def superior_target(port: int) -> dict[str, Any]:
    return {"name": "city-platform", "kind": "gb28181", "timeout_s": 2, "types": ["loitering"],
            "backoff_initial_s": 1, "backoff_max_s": 2,
            "gb28181": {"server_id": SUPERIOR, "server_domain": "3401000000",
                        "host": "127.0.0.1", "port": port, "local_id": PLATFORM,
                        "password": UP_PASSWORD, "keepalive_s": 5}}  # fmt: skip


def hub_config(models_dir: Path, sip_port: int, **extra: Any) -> dict[str, Any]:
    return {
        "detector": {"model": str(models_dir / "yolox_nano.onnx"), "workers": 1},
        "sip": {
            "enabled": True, "id": PLATFORM, "domain": DOMAIN, "host": "127.0.0.1",
            "port": sip_port, "password": PASSWORD, "keepalive_interval_s": 1,
            "rtp_port_min": 42000, "rtp_port_max": 42100,
            "area_names": {"341502": "金安区", "34150201": "东市街道"},
        },
        "ingest": {"reconnect_max_s": 1.0},
        "alerts": {"camera_offline_s": 3},
        # The analysed channel is declared like any camera; the others are imported.
        "cameras": [{"id": "east-gate", "name": "东门 (国标)", "detect_fps": 5,
                     "gb28181_id": CH1, "area": {"county": "金安区", "township": "东市街道"},
                     "source": {"url": f"gb28181://{DEVICE}/{CH1}"},
                     "zones": [{"name": "crossing", "points": WHOLE}],
                     "rules": [{"name": "crossing-loitering", "type": "loitering",
                                "zone": "crossing", "min_duration_s": 3}]}],
        **extra,
    }  # fmt: skip


def test_sipp_device_catalog_becomes_cameras_and_its_stream_decodes(
    tmp_path: Path, models_dir: Path, videos_dir: Path
) -> None:
    sip_port, up_port = free_port(), free_port()
    hub = HubProcess(tmp_path, hub_config(models_dir, sip_port,
                                          dispatch=[superior_target(up_port)]))
    hub.start()
    clip = videos_dir / "crosswalk_people.mp4"
    dev = peers.start_device(sip_port, device_id=DEVICE, password=PASSWORD,
                             platform_id=PLATFORM, domain=DOMAIN, keepalive_ms=1000,
                             sender=peers.media_sender_command(clip, "--seconds",
                                                               "60"))  # fmt: skip
    try:
        devices = hub.wait("the device registered with its catalog", lambda: [
            d for d in hub.get("/api/gb28181/devices") if d["channels"] == 3], 20)  # fmt: skip
        assert devices[0]["id"] == DEVICE and devices[0]["state"] == "online"
        dev_info = hub.wait("DeviceInfo and DeviceStatus", lambda: [
            d for d in hub.get("/api/gb28181/devices") if d["device_status"]], 10)[0]  # fmt: skip
        assert dev_info["manufacturer"] == "Hikvision" and dev_info["name"] == "东门硬盘录像机"
        assert dev_info["device_status"]["Online"] == "ONLINE"
        channels = {c["id"]: c for c in hub.get(f"/api/gb28181/devices/{DEVICE}/channels")}
        assert channels[CH1]["name"] == "东门路口" and channels[CH2]["online"] is False
        assert channels[CH1]["manufacturer"] == "Hikvision" and channels[CH1]["ptz_type"] == 1
        again = hub.post(f"/api/gb28181/devices/{DEVICE}/catalog", None)
        assert again.status_code == 202 and again.json()["sn"] > 0
        # The imported channel: a camera in its civil code's area, without credentials.
        cam2 = hub.wait("the imported camera", lambda: hub.camera(f"gb-{CH2}"), 10)
        assert cam2["name"] == "金安广场" and cam2["gb28181_id"] == CH2
        assert cam2["area"]["county"] == "金安区" and not cam2["area"].get("township")
        assert cam2["enabled"] is False
        assert hub.wait("channel 2 offline (its Status OFF)",
                        lambda: hub.camera(f"gb-{CH2}")["status"]["state"] == "offline", 10)
        # The OFF channel's camera raises the usual offline alert, with its name and area.
        fault = hub.wait("the offline alert of the OFF channel", lambda: [
            a for a in hub.get("/api/alerts", type="camera_fault")["items"]
            if a["camera"]["id"] == f"gb-{CH2}"], 20)  # fmt: skip
        assert fault[0]["camera"]["name"] == "金安广场" and fault[0]["area"]["county"] == "金安区"
        # The analysed channel: INVITE → PS over RTP → decoded frames.
        cam1 = hub.wait("frames from the GB channel", lambda: (
            c if (c := hub.camera("east-gate"))["status"]["frames_decoded"] > 20 else None), 40)
        assert cam1["status"]["state"] == "online"
        assert cam1["status"]["resolution"] == [640, 360]
        assert cam1["status"]["codec"] == "h264"
        health = hub.get("/healthz")
        assert health["sip"]["streams"] == 1 and health["status"] == "ok"
        # A rule on the GB channel raises an alert on the clip's people; the superior is
        # down at first: the outbox retries until it is up, then the alarm goes up.
        alert = hub.wait("a loitering alert on the GB channel", lambda: [
            a for a in hub.get("/api/alerts")["items"]
            if a["camera"]["id"] == "east-gate" and a["type"] == "loitering"], 60)  # fmt: skip
        hub.wait("a failed delivery to the superior", lambda: hub.get(
            f"/api/alerts/{alert[0]['id']}")["deliveries"][0]["attempts"] >= 1, 20)
        superior = peers.start_superior(up_port, password=UP_PASSWORD)
        try:
            hub.wait("the alarm delivered", lambda: hub.get(
                f"/api/alerts/{alert[0]['id']}")["deliveries"][0]["state"] == "delivered", 30)
            sent = superior.messages()
            assert "<CmdType>Alarm</CmdType>" in sent and f"<DeviceID>{CH1}</DeviceID>" in sent
            assert "<AlarmType>8</AlarmType>" in sent  # loitering
        finally:
            superior.stop()
        text = (hub.log() + str(hub.get("/api/gb28181/devices"))).lower()
        assert PASSWORD.lower() not in text and UP_PASSWORD.lower() not in text
    finally:
        dev.stop()
    # Silent: 3 missed keepalives (1 s) → the device and its channels go offline.
    hub.wait("the device offline", lambda: hub.get("/api/gb28181/devices")[0]["state"]
             == "offline", 15)  # fmt: skip
    hub.wait("the channel camera offline", lambda: hub.camera("east-gate")["status"]["state"]
             == "offline", 15)  # fmt: skip
    gone = httpx.delete(f"{hub.base}/api/gb28181/devices/{DEVICE}", headers=hub.auth(), timeout=5)
    assert gone.status_code == 204
    assert hub.get("/api/gb28181/devices") == []
    assert hub.raw(f"/api/cameras/gb-{CH2}").status_code == 404  # its imported channels left
    assert hub.camera("east-gate")["id"] == "east-gate"  # the configured one stays
    hub.stop()
    assert PASSWORD not in hub.log()
