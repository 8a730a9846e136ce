"""PTZ and 喊话 on a wall tile and the linkage page, in a real browser, against a real hub
whose camera is an ONVIF PTZ device (ipycam on loopback) and whose speaker is a real HTTP
receiver: the arrows move the camera, a preset with a Chinese name is listed and reached,
喊话 reaches the speaker, the linkage page lists the rules (zh-CN and English)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from linkage.onvif_ptz import OnvifEndpoint, OnvifPtz
from tests.console.room import Room
from tests.hubproc import HubProcess
from tests.integration.test_linkage_ptz import PASSWORD, USER, PtzCamera
from tests.peers.receiver import Receiver

pytestmark = pytest.mark.slow
TOWNSHIP = {"county": "示例县", "township": "城关镇"}


def position(camera: PtzCamera) -> tuple[float, float, float] | None:
    """Read from the device itself (its own loop thread: Playwright's runs in this one)."""
    ptz = OnvifPtz({"c": OnvifEndpoint("127.0.0.1", camera.port, USER, PASSWORD)}.get)
    try:
        return ptz.position("c")
    finally:
        ptz.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, browser: Any
         ) -> Iterator[tuple[Room, PtzCamera, Receiver]]:  # fmt: skip
    tmp = tmp_path_factory.mktemp("linkage-console")
    camera = PtzCamera(tmp / "ipycam")
    speaker = Receiver().start()
    config = {
        "detector": {"model": str(models_dir / "yolox_nano.onnx")},
        "areas": [{"county": "示例县", "code": "510123"}, {**TOWNSHIP, "code": "510123100"}],
        "cameras": [{"id": "dam-ptz", "name": "水库大坝球机", "area": TOWNSHIP,
                     "source": {"onvif": {"host": "127.0.0.1", "port": camera.port,
                                          "username": USER, "password": PASSWORD}}}],
        "linkage": {
            "speakers": [{"id": "dam-speaker", "name": "大坝音柱", "kind": "http",
                          "url": speaker.url}],
            "rules": [{"name": "水库防溺水", "types": ["intrusion"], "min_severity": "medium",
                       "actions": [
                           {"kind": "ptz_preset", "camera": "dam-ptz", "preset": "水库大坝"},
                           {"kind": "voice", "speaker": "dam-speaker", "warning": "reservoir"}]}],
        },
    }  # fmt: skip
    hub = HubProcess(tmp, config)
    try:
        hub.start()
        yield Room(hub, browser), camera, speaker
    finally:
        hub.stop()
        speaker.stop()
        camera.stop()


def test_ptz_arrows_presets_and_speak_on_a_tile(site: tuple[Room, PtzCamera, Receiver]) -> None:
    room, camera, speaker = site
    room.hosts.clear()
    page = room.page()
    try:
        page.click("[data-tree-camera='dam-ptz']")
        page.wait_for_selector("[data-camera='dam-ptz'] [data-test=ptz-toggle]", timeout=10000)
        page.click("[data-camera='dam-ptz'] [data-test=ptz-toggle]")
        right = page.wait_for_selector("[data-camera='dam-ptz'] [data-test=ptz-right]")
        right.hover()
        before = right.bounding_box()
        # Held: the console repeats the move so the hub does not stop it. The first press
        # also opens the ONVIF connection (seconds on a loaded machine).
        page.mouse.down()
        try:
            page.wait_for_selector("[data-camera='dam-ptz'] [data-test=ptz-holder]",
                                   timeout=20000)  # fmt: skip
            # the "held by" line must not move the arrow out from under the pointer
            # (it did: mouseleave stopped the camera at once, and the next press hit zoom)
            assert right.bounding_box() == before
            room.wait("camera moving right", lambda: (p := position(camera)) and p[0] > 0.01, 20)
        finally:
            page.mouse.up()
        time.sleep(0.5)
        stopped = position(camera)
        time.sleep(1.0)
        assert position(camera) == stopped  # released: it stopped
        # save a preset with a Chinese name through the API, then go home and back
        r = room.hub.post("/api/cameras/dam-ptz/ptz/presets", {"name": "水库大坝"})
        assert r.status_code == 201, r.text
        page.click("[data-camera='dam-ptz'] [data-test=ptz-home]")
        room.wait("camera home", lambda: position(camera) == (0.0, 0.0, 0.0), 10)
        page.click("[data-camera='dam-ptz'] [data-test=ptz-toggle]")  # close, reopen: reload
        page.click("[data-camera='dam-ptz'] [data-test=ptz-toggle]")
        page.click("[data-camera='dam-ptz'] [data-test=ptz-presets]")
        page.click(".el-select-dropdown__item:has-text('水库大坝')")
        page.click("[data-camera='dam-ptz'] [data-test=ptz-goto]")
        room.wait("camera at preset", lambda: position(camera) == stopped, 10)
        # 喊话
        page.click("[data-camera='dam-ptz'] [data-test=speak]")
        page.click("[data-test=speak-warning]")
        page.click(".el-select-dropdown__item:has-text('水库危险')")
        page.click("[data-test=speak-send]")
        [(_h, body, _p)] = speaker.wait_for(1)
        assert json.loads(body)["text"] == "水库危险，请勿靠近。"
        page.wait_for_selector(".el-message--success", timeout=5000)
    finally:
        room.close()
    assert room.hosts <= {"127.0.0.1"}


def test_linkage_page_lists_rules_in_both_languages(site: tuple[Room, PtzCamera, Receiver]
                                                    ) -> None:  # fmt: skip
    room, _, _ = site
    page = room.page()
    try:
        page.click("[data-nav=linkage]")
        rules = page.wait_for_selector("[data-test=rules] .el-table__row", timeout=10000)
        text = rules.inner_text()
        assert "水库防溺水" in text and "转预置位 · 水库大坝" in text and "语音警示" in text
        assert "区域入侵" in text and "立即" in text
        page.evaluate("localStorage.setItem('shaobing.locale', 'en')")
        page.reload()
        rules = page.wait_for_selector("[data-test=rules] .el-table__row", timeout=10000)
        assert "PTZ preset · 水库大坝" in rules.inner_text()
        assert page.is_visible("text=Linkage rules")
    finally:
        room.close()


def test_speak_from_an_alert_is_in_its_history(site: tuple[Room, PtzCamera, Receiver]) -> None:
    room, _, speaker = site
    hub = room.hub
    # ipycam's picture is black: the camera's video-quality check raises an alert on it
    alerts = room.wait("an alert of the camera", lambda: hub.get(
        "/api/alerts?camera_id=dam-ptz")["items"], 60)  # fmt: skip
    alert_id = alerts[0]["id"]
    before = len(speaker.requests)
    page = room.page()
    try:
        page.goto(f"{hub.base}/#/alerts?id={alert_id}")
        page.wait_for_selector(f"[data-alert='{alert_id}'] [data-test=speak]", timeout=10000)
        page.click(f"[data-alert='{alert_id}'] [data-test=speak]")
        page.fill("input[data-test=speak-text], [data-test=speak-text] input", "请立即离开水边")
        page.click("[data-test=speak-send]")
        entry = page.wait_for_selector("[data-history=linkage]", timeout=10000)
        assert "联动" in entry.inner_text()
    finally:
        room.close()
    assert len(speaker.requests) == before + 1
    assert json.loads(speaker.requests[-1][1])["text"] == "请立即离开水边"
    history = hub.get(f"/api/alerts/{alert_id}/history")
    assert history[-1]["action"] == "linkage" and history[-1]["actor"] == "admin"


def test_linkage_rule_added_changed_and_deleted_in_the_console(
    site: tuple[Room, PtzCamera, Receiver],
) -> None:
    room, _, _ = site
    hub = room.hub

    def stored() -> dict[str, Any]:
        return {r["name"]: r for r in hub.get("/api/linkage/rules")}

    page = room.page()
    try:
        page.click("[data-nav=linkage]")
        page.click("[data-test=rule-add]")
        page.fill("input[data-test=rule-name]", "大坝夜间警示")
        page.click("[data-test=rule-save]")
        page.wait_for_selector("[data-test=rules] .el-table__row:has-text('大坝夜间警示')")
        rule = stored()["大坝夜间警示"]
        assert rule["origin"] == "api" and rule["updated_by"] == "admin"
        assert rule["types"] == ["intrusion"] and rule["actions"] == [
            {"kind": "voice", "speaker": "dam-speaker", "warning": "reservoir", "repeat": None}
        ]
        # the file's rule has no edit button; the new one has
        assert not page.is_visible("[data-test='rule-edit-水库防溺水']")
        page.click("[data-test='rule-edit-大坝夜间警示']")
        page.click(".el-dialog [data-test=action-warning]")
        page.click(".el-select-dropdown__item:has-text('请不要聚集')")
        page.click("[data-test=add-ptz_preset]")  # the alert's camera to a preset
        page.fill("input[data-test=action-preset]", "水库大坝")
        page.click("[data-test=rule-save]")
        page.wait_for_selector(".el-message--success")
        room.wait("rule changed", lambda: stored()["大坝夜间警示"]["actions"] == [
            {"kind": "voice", "speaker": "dam-speaker", "warning": "crowd", "repeat": None},
            {"kind": "ptz_preset", "camera": None, "preset": "水库大坝"}], 10)  # fmt: skip
        page.click("[data-test='rule-delete-大坝夜间警示']")
        page.click(".el-message-box .el-button--primary")
        room.wait("rule deleted", lambda: "大坝夜间警示" not in stored(), 10)
        assert "水库防溺水" in stored()
    finally:
        room.close()
