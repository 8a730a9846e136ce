"""录像回放 in a real browser: a hub records its RTSP camera; the playback view shows the
day's timeline with the recorded span and alert marks, plays from a click (the video
advances, frames differ), exports a range into a case that ``shaobing evidence verify``
accepts; an alert's detail links to the recording at its time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.console.room import Room, export_case, room_config, shot
from tests.hubproc import HubProcess
from tests.peers.procs import RtspServer

pytestmark = pytest.mark.slow

GRAB = """v => { const c = document.createElement('canvas'); c.width = 160; c.height = 90;
           c.getContext('2d').drawImage(v, 0, 0, 160, 90); return c.toDataURL(); }"""


@pytest.fixture(scope="module")
def recorded(
    tmp_path_factory: pytest.TempPathFactory, videos_dir: Path, models_dir: Path, browser: Any,
    _gst_ok: None,
) -> Iterator[Room]:  # fmt: skip
    rtsp = RtspServer({"crosswalk": videos_dir / "crosswalk_people.mp4",
                       "plaza": videos_dir / "plaza_topdown.mp4"})  # fmt: skip
    config = room_config(models_dir, rtsp)
    for cam in config["cameras"]:  # the crosswalk (alerts) and the plaza (no rule)
        cam["record"] = {"mode": "continuous", "segment_s": 4}
    hub = HubProcess(tmp_path_factory.mktemp("playback"), config)
    try:
        rtsp.start()
        hub.start()
        segments = lambda: hub.get("/api/recordings/cg-cross/segments", start=0, end=4e9)  # noqa: E731
        hub.wait("three segments", lambda: len(segments()) >= 3, 60)
        hub.wait("the plaza's segments", lambda: hub.get("/api/recordings/hx-plaza/segments",
                                                          start=0, end=4e9), 30)  # fmt: skip
        hub.wait("an alert", lambda: hub.get("/api/alerts", camera_id="cg-cross")["items"], 60)
        yield Room(hub, browser)
    finally:
        hub.stop()
        rtsp.stop()


def test_the_timeline_plays_a_click_and_exports_a_range(recorded: Room, tmp_path: Path) -> None:
    hub = recorded.hub
    first = hub.get("/api/recordings/cg-cross/segments", start=0, end=4e9)[0]
    page = recorded.page()
    page.goto(f"{hub.base}/#/playback?camera=cg-cross&t={int(first['start']) + 1}")
    page.wait_for_selector("[data-test=pb-timeline] .span", timeout=15000)
    page.wait_for_selector("[data-test=pb-mark]", timeout=15000)
    # people walk across the whole time: the recorded spans are marked as activity
    page.wait_for_selector("[data-test=pb-activity]", state="attached", timeout=15000)
    video = page.wait_for_selector("[data-test=pb-video]", timeout=15000)
    page.wait_for_function("v => v.currentTime > 1.0", arg=video, timeout=20000)
    t1, frame1 = video.evaluate("v => v.currentTime"), video.evaluate(GRAB)
    page.wait_for_function(f"v => v.currentTime > {t1 + 1.0}", arg=video, timeout=20000)
    assert video.evaluate(GRAB) != frame1  # it plays: the picture changes
    assert "20" in page.inner_text("[data-test=pb-cursor]")  # a wall-clock time is shown
    shot(page, "playback")
    # It plays through the HLS playlist (hls.js on Media Source Extensions).
    assert video.evaluate("v => v.src").startswith("blob:")
    # A press and release on the bar (its left edge is midnight) at a time inside the
    # recording, later than what plays now (fractional pixels: a pixel of the bar is 86 s),
    # plays from there: a seek.
    last = hub.get("/api/recordings/cg-cross/segments", start=0, end=4e9)[-1]
    target = first["start"] + max(8.0, (last["end"] - first["start"]) * 0.6)
    page.evaluate("""([t]) => {
        const bar = document.querySelector('[data-test=pb-timeline]');
        const box = bar.getBoundingClientRect();
        const midnight = Number(bar.dataset.dayStart);  // the hub's midnight (its time zone)
        const x = box.left + ((t - midnight) / 86400) * box.width;
        const at = {clientX: x, clientY: box.top + 5, bubbles: true};
        bar.dispatchEvent(new MouseEvent('mousedown', at));
        window.dispatchEvent(new MouseEvent('mouseup', at));
    }""", [target])  # fmt: skip
    page.wait_for_function(f"v => Math.abs(Number(v.dataset.wall) - {target}) < 3",
                           arg=video, timeout=20000)  # fmt: skip
    now = video.evaluate("v => v.currentTime")
    page.wait_for_function(f"v => v.currentTime > {now + 0.5}", arg=video, timeout=20000)
    # 2x speed
    page.click("[data-test=pb-speed] >> text=2x")
    assert page.eval_on_selector("[data-test=pb-video]", "v => v.playbackRate") == 2

    page.click("[data-test=pb-export]")
    names = export_case(page, hub, tmp_path / "rec.zip", "城关刑案-2026-0024", "调取路口录像")
    assert any(n.startswith("recordings/cg-cross_") and n.endswith(".mp4") for n in names)
    assert hub.get("/api/audit", action="recording_export")["items"]
    assert hub.get("/api/audit", action="recording_playback")["items"]


def test_an_alerts_detail_links_to_its_recording(recorded: Room) -> None:
    hub = recorded.hub
    alert = hub.get("/api/alerts", camera_id="cg-cross")["items"][-1]
    page = recorded.page()
    page.goto(f"{hub.base}/#/alerts?id={alert['id']}")
    # (30 s: the hub analyses its camera meanwhile, on a machine shared with others)
    page.wait_for_selector(f"[data-alert='{alert['id']}']", timeout=30000)
    page.click("[data-test=to-recording]")
    page.wait_for_url("**/#/playback?**", timeout=10000)
    video = page.wait_for_selector("[data-test=pb-video]", timeout=20000)
    page.wait_for_function("v => v.currentTime > 0.5", arg=video, timeout=20000)


def test_a_second_camera_plays_in_sync(recorded: Room) -> None:
    hub = recorded.hub
    both = hub.get("/api/recordings/hx-plaza/segments", start=0, end=4e9)[0]
    page = recorded.page()
    page.goto(f"{hub.base}/#/playback?camera=cg-cross&t={int(both['start']) + 2}")
    video = page.wait_for_selector("[data-test=pb-video]", timeout=20000)
    page.click("[data-test=pb-add]")
    page.click("[data-test=pb-extra-0]")
    page.click("li.el-select-dropdown__item:visible >> text=河西镇广场")
    extra = page.wait_for_selector("[data-test=pb-video-extra][data-camera=hx-plaza]",
                                   timeout=20000)
    page.wait_for_function("v => v.currentTime > 1.0", arg=extra, timeout=20000)
    # The same wall time (each player maps its position through its segments' dates).
    page.wait_for_function("v => v.dataset.wall", arg=extra, timeout=20000)
    first = float(video.evaluate("v => v.dataset.wall"))
    second = float(extra.evaluate("v => v.dataset.wall"))
    assert abs(first - second) < 1.5, (first, second)
