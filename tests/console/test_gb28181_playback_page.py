"""录像回放 of a GB/T 28181 channel in a real browser: a SIPp device registered to a real
hub; the view shows the device's own recordings (RecordInfo, two pages) as a second band of
the 24-hour timeline, and a click on one fetches a short clip through a playback INVITE
(the device sends PS over RTP of a real clip) and plays the MP4 the hub returns."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.console.room import Room, export_case
from tests.hubproc import HubProcess
from tests.peers import sipp as peers
from tests.peers.procs import free_port

pytestmark = pytest.mark.slow  # real SIPp peers

DEVICE = "34020000001180000001"
PLATFORM = "34020000002000000001"
DOMAIN = "3402000000"
PASSWORD = "Gb-console-rec"
CHANNEL = "34150201001310000001"
CAMERA = f"gb-{CHANNEL}"
T0 = 1796601600  # 2026-12-07T08:00:00 in Asia/Shanghai: the device's first recording


@contextmanager
def gb_hub(tmp_path: Path, models_dir: Path, browser: Any, sender: str,
           **sip: Any) -> Iterator[tuple[HubProcess, Room]]:  # fmt: skip
    """A hub with GB/T 28181 on and a SIPp device registered to it, its channel imported."""
    sip_port = free_port()
    hub = HubProcess(tmp_path, {
        "timezone": "Asia/Shanghai",
        "detector": {"model": str(models_dir / "yolox_nano.onnx"), "workers": 1},
        "sip": {"enabled": True, "id": PLATFORM, "domain": DOMAIN, "host": "127.0.0.1",
                "port": sip_port, "password": PASSWORD, "keepalive_interval_s": 1,
                "rtp_port_min": 43700, "rtp_port_max": 43800, **sip},
    })  # fmt: skip
    hub.start()
    dev = peers.start_device(sip_port, device_id=DEVICE, password=PASSWORD,
                             platform_id=PLATFORM, domain=DOMAIN, sender=sender)  # fmt: skip
    room = Room(hub, browser)
    try:
        hub.wait("the imported channel", lambda: hub.camera(CAMERA), 20)
        yield hub, room
    finally:
        room.close()
        dev.stop()
        hub.stop()
    # blob: is the fetched clip held in the page itself; everything else came from the hub.
    assert {h for h in room.hosts if not h.startswith("blob:http://127.0.0.1:")} <= {"127.0.0.1"}


def test_device_recordings_band_plays_a_clip(tmp_path: Path, models_dir: Path,
                                             videos_dir: Path, browser: Any) -> None:  # fmt: skip
    sender = peers.media_sender_command(videos_dir / "crosswalk_people.mp4", "--seconds", "30")
    with gb_hub(tmp_path, models_dir, browser, sender) as (hub, room):
        page = room.page()
        page.goto(f"{hub.base}/#/playback?camera={CAMERA}&t={T0 + 5}")
        spans = page.locator("[data-test=pb-device-span]")
        spans.nth(2).wait_for(timeout=30000)
        assert spans.count() == 3  # both pages of the RecordInfo answer
        bands = page.locator(".playback").inner_text()
        assert "平台录像" in bands and "设备录像" in bands
        assert [float(spans.nth(i).get_attribute("data-start") or 0) for i in range(3)] == [
            T0, T0 + 600, T0 + 3600]  # fmt: skip
        assert "alarm" in (spans.nth(2).get_attribute("class") or "")
        # A click where the device has nothing (03:00) says so and fetches nothing.
        band = page.locator("[data-test=pb-device-timeline]")
        box = band.bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + box["width"] * 3 / 24, box["y"] + box["height"] / 2)
        page.get_by_text("该时刻设备没有录像").wait_for(timeout=5000)
        # 10 s from the middle of the first recording: fetched (a message meanwhile), played.
        page.locator("[data-test=pb-device-clip]").get_by_text("10 秒").click()
        spans.first.click()
        fetching = page.locator("[data-test=pb-device-fetching]")
        fetching.wait_for(timeout=5000)
        assert "正在从设备取回 10 秒录像" in fetching.inner_text()
        playing = page.locator("[data-test=pb-device-playing]")
        playing.wait_for(timeout=40000)
        start = float(playing.get_attribute("data-start") or 0)
        assert T0 <= start <= T0 + 590 and playing.get_attribute("data-seconds") == "10"
        video = page.wait_for_selector("[data-test=pb-video]", timeout=5000)
        assert video is not None
        assert (video.get_attribute("src") or "").startswith("blob:")
        page.wait_for_function("v => v.currentTime > 2.0", arg=video, timeout=20000)
        assert page.evaluate("v => v.videoWidth", video) == 640
        wall = float(video.get_attribute("data-wall") or 0)
        assert start + 1 <= wall <= start + 10  # the cursor follows the clip's wall time
        hub.wait("the playback's stream closed", lambda: hub.get("/healthz")["sip"]["streams"]
                 == 0, 15)  # fmt: skip
        # The clip watched, exported into a case from the device (a signed zip).
        page.click("[data-test=pb-export]")
        source = page.wait_for_selector("[data-test=pb-export-source]", timeout=5000)
        assert source is not None and "is-active" in (
            page.locator("[data-test=pb-export-source] label").nth(1).get_attribute("class") or "")
        names = export_case(page, hub, tmp_path / "device.zip", "（2026）县公刑字第17号",
                            "调取设备录像", timeout_ms=60000)  # fmt: skip
        assert any(n.endswith(".mp4") for n in names), names
        assert hub.get("/api/audit", action="gb28181_playback_export")["items"]
        assert PASSWORD not in page.content()


def test_a_device_that_sends_nothing_is_said_in_chinese(tmp_path: Path, models_dir: Path,
                                                       browser: Any) -> None:  # fmt: skip
    with gb_hub(tmp_path, models_dir, browser, "true", media_timeout_s=1.0) as (hub, room):
        page = room.page()
        page.goto(f"{hub.base}/#/playback?camera={CAMERA}&t={T0 + 5}")
        spans = page.locator("[data-test=pb-device-span]")
        spans.nth(2).wait_for(timeout=30000)
        page.locator("[data-test=pb-device-clip]").get_by_text("10 秒").click()
        spans.first.click()
        failed = page.locator("[data-test=pb-device-clip-error]")
        failed.wait_for(timeout=30000)
        assert failed.inner_text().startswith("设备录像取回失败：设备没有发送视频")
        assert page.locator("[data-test=pb-device-playing]").count() == 0
        hub.wait("the port given back", lambda: hub.get("/healthz")["sip"]["rtp_ports_in_use"]
                 == 0, 10)  # fmt: skip
        assert PASSWORD not in page.content()
