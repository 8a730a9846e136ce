"""The web console in a real browser (Debian's Chromium, headless, through Playwright)
against a real hub reading a real RTSP camera: log in, a wall tile plays live video,
an alert pops up, it is handled through to 办结 in the UI, a zone drawn in the editor
changes what fires, a township user sees only its township, and no request leaves
127.0.0.1. Screenshots of each view go to docs/img/ for the operator guide."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from api.console import console_dir
from tests.hubproc import ADMIN_PASSWORD, HubProcess
from tests.peers.procs import RtspServer

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[1] / "docs" / "img"
TOWNSHIP = {"county": "示例县", "township": "城关镇"}
OTHER = {"county": "示例县", "township": "河西镇"}
WHOLE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Chromium is needed: apt-get install chromium"
    assert (console_dir() / "index.html").is_file(), "build the console: scripts/build_console.sh"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--autoplay-policy=no-user-gesture-required"],
        )  # fmt: skip
        yield browser
        browser.close()


def console_config(models_dir: Path, rtsp: RtspServer) -> dict[str, Any]:
    return {
        "detector": {"model": str(models_dir / "yolox_nano.onnx"), "workers": 2},
        "alerts": {"cooldown_s": 600},
        "areas": [{"county": "示例县", "code": "510123"}, {**TOWNSHIP, "code": "510123100"},
                  {**OTHER, "code": "510123101"}],
        "departments": [{"id": "cg-pcs", "name": "城关派出所", "kind": "police",
                         "level": "township", "areas": [TOWNSHIP]}],
        "cameras": [
            {"id": "cg-cross", "name": "城关镇人民路口", "area": {**TOWNSHIP, "village": "人民村"},
             "lat": 30.6571, "lon": 104.0658, "source": {"url": rtsp.url("crosswalk")},
             "detect_fps": 5, "zones": [{"name": "square", "points": WHOLE}],
             "rules": [{"name": "square-intrusion", "type": "intrusion", "zone": "square",
                        "min_duration_s": 1, "severity": "high"}]},
            {"id": "hx-plaza", "name": "河西镇广场", "area": {**OTHER, "village": "河西村"},
             "lat": 30.66, "lon": 104.07, "source": {"url": rtsp.url("plaza")}, "detect_fps": 2},
        ],
    }  # fmt: skip


def login(page: Any, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/#/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-nav=wall]", timeout=15000)


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"console-{name}.png"))


def test_the_monitoring_room_in_a_browser(
    tmp_path: Path, models_dir: Path, videos_dir: Path, rtsp_server_factory: Any, browser: Any
) -> None:
    rtsp = rtsp_server_factory({"crosswalk": videos_dir / "crosswalk_people.mp4",
                                "plaza": videos_dir / "plaza_topdown.mp4"})  # fmt: skip
    hub = HubProcess(tmp_path, console_config(models_dir, rtsp)).start()
    try:
        cameras = ("cg-cross", "hx-plaza")
        online = lambda: all(hub.camera(c)["status"]["state"] == "online" for c in cameras)  # noqa: E731
        hub.wait("cameras online", online, 40)
        context = browser.new_context(viewport={"width": 1920, "height": 1080})
        hosts: set[str] = set()
        context.on("request", lambda req: hosts.add(urlsplit(req.url).hostname or req.url))
        page = context.new_page()
        login(page, hub.base, "admin", ADMIN_PASSWORD)

        # The wall: put the camera on a tile; its video plays (time advances, frames differ).
        page.click("[data-layout='4']")
        page.click("[data-tree-camera='cg-cross']")
        video = page.wait_for_selector("[data-camera='cg-cross'] video", timeout=10000)
        page.wait_for_function("v => v.currentTime > 1.0", arg=video, timeout=20000)
        t1 = video.evaluate("v => v.currentTime")
        grab = """v => { const c = document.createElement('canvas'); c.width = 160; c.height = 90;
                   c.getContext('2d').drawImage(v, 0, 0, 160, 90); return c.toDataURL(); }"""
        first = video.evaluate(grab)
        time.sleep(1.5)
        assert video.evaluate("v => v.currentTime") > t1
        assert video.evaluate(grab) != first
        page.click("[data-test=overlay]")
        time.sleep(1.5)
        shot(page, "wall")

        # A high-severity alert pops up on its own (the live feed).
        popup = page.wait_for_selector(".alert-popup", timeout=40000)
        assert "城关镇人民路口" in popup.inner_text()
        popup.click()
        page.wait_for_selector("[data-alert]", timeout=10000)
        shot(page, "alert-detail")
        alert_id = page.get_attribute("[data-alert]", "data-alert")

        # 受理 → 分流 → 办结 through the buttons; each step is in the history.
        page.click("[data-action=acknowledge]")
        page.wait_for_selector("[data-action=dispatch]", timeout=10000)
        page.click("[data-test=department]")
        page.click("li.el-select-dropdown__item >> text=城关派出所")
        page.click("[data-action=dispatch]")
        page.wait_for_selector("[data-action=resolve]", timeout=10000)
        page.click("[data-action=resolve]")
        page.wait_for_function(
            "() => document.querySelectorAll('.history-item').length >= 4", timeout=10000
        )
        history = hub.get(f"/api/alerts/{alert_id}/history")
        assert [h["action"] for h in history][:4] == [
            "created",
            "acknowledge",
            "dispatch",
            "resolve",
        ]
        assert hub.get(f"/api/alerts/{alert_id}")["status"] == "resolved"
        page.keyboard.press("Escape")
        shot(page, "alerts")

        # The zone editor: a zone drawn over the plaza camera with an intrusion rule makes
        # that camera raise alerts it never raised before.
        assert not hub.get("/api/alerts", camera_id="hx-plaza")["items"]
        page.click("[data-nav=zones]")
        page.click("[data-test=zone-camera]")
        page.click("li.el-select-dropdown__item >> text=河西镇广场")
        canvas = page.wait_for_selector("[data-test=zone-canvas] img", timeout=10000)
        page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=canvas, timeout=10000)
        box = canvas.bounding_box()
        for fx, fy in ((0.02, 0.02), (0.98, 0.02), (0.98, 0.98), (0.02, 0.98)):
            page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
        page.click("[data-test=finish-zone]")
        page.click("[data-test=add-rule]")
        shot(page, "zones")
        page.click("[data-test=save-zones]")
        analytics = hub.wait("the rule saved", lambda: (a := hub.get(
            "/api/cameras/hx-plaza/analytics"))["source"] == "console" and a, 10)  # fmt: skip
        assert [r["type"] for r in analytics["rules"]] == ["intrusion"]
        hub.wait("an intrusion on the plaza", lambda: hub.get(
            "/api/alerts", camera_id="hx-plaza")["items"], 40)  # fmt: skip

        for view in ("health", "map", "search", "analysis", "system"):
            page.click(f"[data-nav={view}]")
            time.sleep(1.0)
            shot(page, view)
        context.close()

        # A township user sees its own township's cameras only, on a laptop screen.
        r = hub.post("/api/users", {"username": "hx-op", "password": "hx-op-pass-123",
                                    "role": "operator", "area": OTHER})  # fmt: skip
        assert r.status_code == 201, r.text
        laptop = browser.new_context(viewport={"width": 1366, "height": 768})
        laptop.on("request", lambda req: hosts.add(urlsplit(req.url).hostname or req.url))
        page = laptop.new_page()
        login(page, hub.base, "hx-op", "hx-op-pass-123")
        page.wait_for_selector("[data-tree-camera='hx-plaza']", timeout=10000)
        assert page.query_selector("[data-tree-camera='cg-cross']") is None
        shot(page, "wall-township-laptop")
        laptop.close()
        assert hosts == {"127.0.0.1"}, hosts  # nothing left the hub's host
    finally:
        hub.stop()


def test_the_console_is_served_with_cache_rules(tmp_path: Path, models_dir: Path) -> None:
    hub = HubProcess(tmp_path, {"detector": {"model": str(models_dir / "yolox_nano.onnx")},
                                "cameras": []}).start()  # fmt: skip
    try:
        page = httpx.get(f"{hub.base}/", timeout=5)
        assert page.status_code == 200 and page.headers["cache-control"] == "no-cache"
        asset = next(iter(sorted((console_dir() / "assets").glob("index-*.js"))))
        r = httpx.get(f"{hub.base}/assets/{asset.name}", timeout=5)
        assert r.status_code == 200 and "immutable" in r.headers["cache-control"]
        assert httpx.get(f"{hub.base}/assets/../../pyproject.toml", timeout=5).status_code == 404
        assert httpx.get(f"{hub.base}/assets/%2e%2e/index.html", timeout=5).status_code == 404
    finally:
        hub.stop()
