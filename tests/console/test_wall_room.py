"""The monitoring room, day two, in a real browser against a real hub reading real RTSP
cameras: main and sub stream per tile (the sub stream on 9 and 16 tiles, a menu to
switch), tiles that say why they do not play, the overlay only on playing tiles and for
the watched classes, tours (轮巡), an escalation that pops up and sounds (or not, muted)
with the camera's live video next to the evidence, and the map on the hub's own offline
tiles (MBTiles made here) with GeoJSON outlines whose labels never cover a count."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.console.room import CHROMIUM, DESKTOP, Room, pages_of, running_room, shot
from tests.console.test_monitoring_room import LATIN_WORDS, NAMES
from tests.hubproc import HubProcess
from tests.mapdata import make_mbtiles, make_outlines, square
from tests.peers.procs import RtspServer

pytestmark = pytest.mark.slow

CROSS = (30.6571, 104.0658)
PLAZA = (30.6600, 104.0700)
TOWNSHIP = {"county": "示例县", "township": "城关镇"}
OTHER = {"county": "示例县", "township": "河西镇"}
WHOLE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
# counts the alert sound's tones (the console makes them with WebAudio oscillators)
COUNT_TONES = """window.__tones = 0;
const make = AudioContext.prototype.createOscillator;
AudioContext.prototype.createOscillator = function () {
  window.__tones++; return make.call(this) };"""


@pytest.fixture(scope="module")
def room2(
    tmp_path_factory: pytest.TempPathFactory, videos_dir: Path, models_dir: Path, browser: Any,
    _gst_ok: None,
) -> Iterator[Room]:  # fmt: skip
    assert Path(CHROMIUM).exists()
    work = tmp_path_factory.mktemp("room2")
    make_mbtiles(work / "county.mbtiles", *CROSS, zooms=range(13, 18))
    make_outlines(work / "areas.geojson", [square("城关镇", *CROSS, 0.0015),
                                           square("河西镇", *PLAZA, 0.0015)])  # fmt: skip
    rtsp = RtspServer({"road720": videos_dir / "highway_receding_720p.mp4",
                       "road360": videos_dir / "highway_divided.mp4",
                       "plaza": videos_dir / "plaza_topdown.mp4"})  # fmt: skip
    config = {
        "detector": {"model": str(models_dir / "yolox_nano.onnx"), "workers": 1},
        "alerts": {"cooldown_s": 600, "video_quality": False},
        "tracks": {"enabled": False},
        "escalation": {"ack_deadline_s": 6, "check_interval_s": 1},
        "api": {"live_max_streams": 8},
        "map": {"tiles": str(work / "county.mbtiles"), "areas": str(work / "areas.geojson"),
                "attribution": "示例县自然资源局"},
        "areas": [{"county": "示例县", "code": "510123"}, {**TOWNSHIP, "code": "510123100"},
                  {**OTHER, "code": "510123101"}],
        "cameras": [
            # a camera with a sub stream: main 1280x720, sub 640x360; its rule watches cars
            {"id": "cg-road", "name": "城关镇环城路", "area": TOWNSHIP, "lat": CROSS[0],
             "lon": CROSS[1], "detect_fps": 2,
             "source": {"url": rtsp.url("road720"), "sub_url": rtsp.url("road360")},
             "zones": [{"name": "road", "points": WHOLE}],
             "rules": [{"name": "road-intrusion", "type": "intrusion", "zone": "road",
                        "classes": ["car"], "min_duration_s": 1, "severity": "medium"}]},
            # people only, and a rule that watches cars: no box is drawn over it
            {"id": "hx-plaza", "name": "河西镇广场", "area": OTHER, "lat": PLAZA[0],
             "lon": PLAZA[1], "detect_fps": 1, "source": {"url": rtsp.url("plaza")},
             "zones": [{"name": "square", "points": WHOLE}],
             "rules": [{"name": "square-cars", "type": "intrusion", "zone": "square",
                        "classes": ["car"], "min_duration_s": 1, "severity": "low"}]},
            # a camera nobody answers for: offline
            {"id": "hx-dead", "name": "河西镇桥头", "area": OTHER, "detect_fps": 1,
             "source": {"url": rtsp.url("plaza").rsplit("/", 1)[0] + "/missing"}},
        ],
    }  # fmt: skip
    hub = HubProcess(work, config)
    with running_room(hub, rtsp, browser, ("cg-road", "hx-plaza"), 90) as running:
        yield running


@pytest.fixture
def room(room2: Room) -> Iterator[Room]:
    """The room; the pages a test opened are closed after it, and every request they
    made must have gone to the hub's host."""
    yield from pages_of(room2)


def dismiss_popups(page: Any) -> None:
    """Close the alert pop-ups (before a screenshot)."""
    page.evaluate("() => document.querySelectorAll('.alert-popup .el-notification__closeBtn')"
                  ".forEach(b => b.click())")  # fmt: skip
    time.sleep(0.8)


def latin(page: Any) -> set[str]:
    """Latin-letter words on the page that are no name, id or code."""
    words = {w for w in page.evaluate(LATIN_WORDS) if not any(c.isdigit() for c in w)}
    return words - NAMES - {"admin"}


def wall(page: Any, layout: int, tiles: list[str | None], **extra: Any) -> None:
    """Leave the wall as an operator would, and open it."""
    values = {"wall.layout": layout, "wall.tiles": tiles, **extra}
    page.evaluate("items => { for (const [k, v] of Object.entries(items)) "
                  "localStorage.setItem('shaobing.admin.' + k, JSON.stringify(v)) }",
                  values)  # fmt: skip
    page.reload()
    page.wait_for_selector("[data-tile='0']", timeout=15000)


def playing(page: Any, tile: int, seconds: float = 0.5, timeout: float = 30000) -> Any:
    video = page.wait_for_selector(f"[data-tile='{tile}'] video", timeout=15000)
    page.wait_for_function("([v, s]) => v.currentTime > s && v.videoWidth > 0",
                           arg=[video, seconds], timeout=timeout)  # fmt: skip
    return video


def test_nine_tiles_play_the_sub_stream_and_a_menu_switches(room: Room) -> None:
    page = room.page()
    wall(page, 9, ["cg-road", "hx-plaza"])
    road = playing(page, 0)
    assert page.get_attribute("[data-tile='0'] .tile", "data-stream") == "sub"
    assert road.evaluate("v => [v.videoWidth, v.videoHeight]") == [640, 360]  # the sub stream
    # letterboxed, never stretched
    assert road.evaluate("v => getComputedStyle(v).objectFit") == "contain"
    # a camera without a sub stream plays its main stream on 9 tiles
    playing(page, 1)
    assert page.get_attribute("[data-tile='1'] .tile", "data-stream") == "main"
    assert "主码流" in page.inner_text("[data-tile='1'] [data-test=stream-tag]")

    # the tile's menu: the main stream (1280x720), kept for that tile
    page.click("[data-tile='0'] [data-test=stream-menu]")
    page.click("li[data-stream-choice='main']:visible")
    page.wait_for_selector("[data-tile='0'] .tile[data-stream='main']", timeout=10000)
    road = playing(page, 0)
    assert road.evaluate("v => [v.videoWidth, v.videoHeight]") == [1280, 720]
    page.reload()
    page.wait_for_selector("[data-tile='0'] .tile[data-stream='main']", timeout=15000)

    # 4 tiles: the main stream by default
    wall(page, 4, ["hx-plaza", "cg-road"], **{"wall.streams": {}})
    playing(page, 1)
    assert page.get_attribute("[data-tile='1'] .tile", "data-stream") == "main"
    assert playing(page, 1).evaluate("v => v.videoWidth") == 1280


def test_a_tile_that_cannot_play_says_why(room: Room) -> None:
    page = room.page()
    wall(page, 4, ["hx-dead", "cg-road"])
    why = page.wait_for_selector("[data-tile='0'] [data-test=why]", timeout=30000)
    page.wait_for_function("e => e.textContent.includes('无法播放：摄像机')", arg=why,
                           timeout=15000)  # fmt: skip
    assert any(s in why.inner_text() for s in ("离线", "启动中")), why.inner_text()

    # more tiles than the hub serves live streams (api.live_max_streams: 8)
    wall(page, 16, ["cg-road"] * 4 + ["hx-plaza"] * 12, **{"wall.streams": {}})
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-test=why]')]"
        ".some(e => e.textContent.includes('实时视频已达上限（8 路）'))",
        timeout=40000)  # fmt: skip
    assert room.hub.get("/api/cameras/hx-plaza/live/state")["max_streams"] == 8


def test_the_overlay_draws_on_playing_tiles_only_the_watched_classes(room: Room) -> None:
    page = room.page()
    wall(page, 4, ["cg-road", "hx-plaza", "hx-dead"], **{"wall.streams": {}})
    playing(page, 0)
    playing(page, 1)
    page.click("[data-test=overlay]")
    # the road: its cars are drawn (the rule watches cars)
    page.wait_for_function("() => Number(document.querySelector(\"[data-tile='0'] canvas\")"
                           ".dataset.boxes || 0) > 0", timeout=20000)  # fmt: skip
    # the plaza: the hub tracks people there, but its rule watches cars: no box drawn
    people = room.wait("people tracked on the plaza", lambda: [
        b for b in room.hub.get("/api/cameras/hx-plaza/overlay")["boxes"] if b["cls"] == "person"
    ], 30)  # fmt: skip
    assert people
    time.sleep(1.5)
    assert page.evaluate("() => document.querySelector(\"[data-tile='1'] canvas\")"
                         ".dataset.boxes") == "0"  # fmt: skip
    # the offline tile draws nothing at all
    assert page.evaluate("() => document.querySelector(\"[data-tile='2'] canvas\").dataset.boxes"
                         " ?? 'none'") == "none"  # fmt: skip
    assert page.get_attribute("[data-tile='2'] .tile", "data-playing") == "0"


def test_a_tour_shows_a_group_a_page_at_a_time(room: Room) -> None:
    page = room.page()
    wall(page, 1, ["hx-dead"], groups={"两镇巡查": ["cg-road", "hx-plaza"]})
    page.click("[data-test=tour-source]")
    page.click("li.el-select-dropdown__item:visible >> text=分组 · 两镇巡查")
    seconds = page.locator("[data-test=tour-seconds] input")
    seconds.fill("5")
    seconds.press("Enter")
    page.click("[data-test=tour-start]")
    page.wait_for_selector("[data-test=tour-page] >> text=第 1/2 页", timeout=5000)
    assert page.get_attribute("[data-tile='0'] .tile", "data-camera") == "cg-road"
    page.wait_for_selector("[data-tile='0'] .tile[data-camera='hx-plaza']", timeout=15000)
    assert "第 2/2 页" in page.inner_text("[data-test=tour-page]")
    playing(page, 0, 0.3)
    dismiss_popups(page)
    assert not latin(page), latin(page)  # the tour's controls and the tiles speak Chinese
    shot(page, "wall-tour")
    # kept for this user: the tour goes on after a reload
    page.reload()
    page.wait_for_selector("[data-test=tour-stop]", timeout=15000)
    saved = json.loads(page.evaluate("() => localStorage.getItem('shaobing.admin.wall.tour')"))
    assert saved == {"source": "group:两镇巡查", "seconds": 5, "running": True}
    page.wait_for_selector("[data-tile='0'] .tile[data-camera='cg-road']", timeout=15000)
    page.wait_for_selector("[data-tile='0'] .tile[data-camera='hx-plaza']", timeout=15000)
    # stopped: the wall the operator left comes back
    page.click("[data-test=tour-stop]")
    page.wait_for_selector("[data-tile='0'] .tile[data-camera='hx-dead']", timeout=10000)
    assert page.query_selector("[data-test=tour-page]") is None


def test_an_escalation_pops_up_and_sounds_with_live_video(room: Room) -> None:
    # this operator turned the sound off earlier (kept per user in the browser)
    muted = room.page(init_script=COUNT_TONES + "localStorage.setItem('shaobing.admin.muted', '1')")
    assert muted.get_attribute("[data-test=mute]", "data-muted") == "1"
    page = room.page(init_script=COUNT_TONES)
    assert page.get_attribute("[data-test=mute]", "data-muted") == "0"
    # the road's medium alert, not acknowledged within 6 s, is raised to high: it pops up
    popup = page.wait_for_selector(".alert-popup [data-escalated='1']", timeout=90000)
    title = page.locator(".alert-popup").filter(has=page.locator("[data-escalated='1']")).first
    assert "告警升级" in title.inner_text() and ("高" in title.inner_text()
                                              or "紧急" in title.inner_text())  # fmt: skip
    assert page.evaluate("() => window.__tones") >= 2  # the two tones of a new high alert
    muted.wait_for_selector(".alert-popup [data-escalated='1']", timeout=30000)
    assert muted.evaluate("() => window.__tones") == 0  # muted: a pop-up, no sound
    page.click("[data-test=mute]")  # and this one turns it off now
    assert page.get_attribute("[data-test=mute]", "data-muted") == "1"
    assert page.evaluate("() => localStorage.getItem('shaobing.admin.muted')") == "1"

    # the pop-up opens the alert with the camera's live video next to the evidence
    alert_id = popup.get_attribute("data-popup-alert")
    popup.query_selector("[data-test=popup-live]").click()
    page.wait_for_selector(f"[data-alert='{alert_id}']", timeout=10000)
    live = page.wait_for_selector("[data-test=alert-live] video", timeout=10000)
    page.wait_for_function("v => v.currentTime > 0.5", arg=live, timeout=30000)
    assert page.query_selector("[data-test=snapshot]") is not None
    dismiss_popups(page)
    shot(page, "alert-live")


def test_the_map_shows_the_hubs_offline_tiles_and_outlines(room: Room) -> None:
    page = room.page(viewport=DESKTOP)
    page.click("[data-nav=map]")
    page.wait_for_function(
        "() => [...document.querySelectorAll('img.leaflet-tile')].filter(i => i.complete"
        " && i.naturalWidth === 256 && i.src.includes('/api/map/tiles/')).length >= 6",
        timeout=20000)  # fmt: skip
    # the two townships outlined from the GeoJSON (not boxes around the cameras)
    outlines = ("() => document.querySelectorAll('.leaflet-overlay-pane "
                "path:not(.leaflet-interactive)').length === 2")  # fmt: skip
    page.wait_for_function(outlines, timeout=10000)
    labels = page.locator(".area-label")
    assert sorted(labels.all_inner_texts()) == ["城关镇", "河西镇"]
    assert "示例县自然资源局" in page.inner_text(".leaflet-control-attribution")
    # the road camera's open alerts: a ring and a count; no area label covers a count
    page.wait_for_selector(".alert-count", timeout=60000)
    overlap = """() => {
      const box = e => e.getBoundingClientRect()
      const counts = [...document.querySelectorAll('.alert-count')].map(box)
      return [...document.querySelectorAll('.area-label')]
        .filter(l => getComputedStyle(l).visibility !== 'hidden').map(box)
        .filter(r => counts.some(c => r.left < c.right && c.left < r.right && r.top < c.bottom
                                      && c.top < r.bottom)).length }"""
    for _ in range(3):  # at the zooms the operator uses
        assert page.evaluate(overlap) == 0
        page.click(".leaflet-control-zoom-out")
        time.sleep(0.6)
    page.click(".leaflet-control-zoom-in")
    page.click(".leaflet-control-zoom-in")
    time.sleep(1.0)
    assert page.evaluate(overlap) == 0
    # nothing came from outside: the tiles are the hub's
    assert not page.evaluate("() => [...document.querySelectorAll('img.leaflet-tile')]"
                             ".some(i => !i.src.startsWith(location.origin))")  # fmt: skip
    dismiss_popups(page)
    assert not latin(page), latin(page)
    shot(page, "map-tiles")
