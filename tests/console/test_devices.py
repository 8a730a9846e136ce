"""设备管理 and 区域管理 in a real browser against a real hub (issue 23): a camera added in
the console (an RTSP address, and an ONVIF camera probed for its profiles) comes online
and plays on the wall with no restart; it is edited, disabled and deleted (after a
confirmation); the area tree gets a village with its GB/T 2260 code, renamed and
deleted; a link to an alert outside the user's area says 未找到 (one inside shows a false
alarm's reason in its history)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import IPYCAM_PASSWORD, IPYCAM_USER
from tests.console.room import OTHER, Room, shot
from tests.peers.procs import IpyCamProcess

pytestmark = pytest.mark.slow


def choose(page: Any, trigger: str, option: str) -> None:
    """Choose exactly ``option`` in the Element Plus select ``trigger``."""
    page.click(trigger)
    page.click(f'li.el-select-dropdown__item:visible >> text="{option}"')


def open_devices(page: Any) -> None:
    page.click("[data-nav=system]")
    page.click("#tab-devices")
    page.wait_for_selector("[data-test=device-list]", timeout=10000)


def confirm(page: Any) -> None:
    page.click(".el-message-box .el-message-box__btns .el-button--primary")


def test_a_camera_added_in_the_console_plays_and_is_edited_disabled_deleted(pages: Room) -> None:
    hub = pages.hub
    url = hub.camera("cg-cross")["source"]  # the room's RTSP server (no credentials)
    page = pages.page()
    open_devices(page)
    page.click("[data-test=add-camera]")
    dialog = page.wait_for_selector("[data-test=camera-dialog]", state="visible", timeout=5000)
    page.fill("input[data-test=camera-id]", "ui-cam")
    page.fill("input[data-test=camera-name]", "界面添加的路口")
    choose(page, "[data-test=camera-area]", "示例县/城关镇")
    page.fill("input[data-test=camera-url]", url)
    page.fill("input[data-test=camera-username]", "admin")
    page.fill("input[data-test=camera-password]", "ui-secret-77")
    shot(page, "device-dialog")
    page.click("[data-test=save-camera]")
    dialog.wait_for_element_state("hidden", timeout=5000)
    pages.wait("the new camera online", lambda: hub.camera("ui-cam")["status"]["state"] == "online",
               40)  # fmt: skip
    page.click("[data-test=devices] >> text=刷新")
    page.wait_for_selector("[data-camera-state='ui-cam'] >> text=在线", timeout=15000)
    shot(page, "devices")
    registry = hub.get("/api/cameras/ui-cam/registry")
    assert registry["source"]["has_password"] and "ui-secret-77" not in str(registry)

    # It is on the wall: a fresh page lists it, and its tile plays.
    wall = pages.page()
    wall.click("[data-layout='1']")
    wall.click("[data-tree-camera='ui-cam']")
    video = wall.wait_for_selector("[data-camera='ui-cam'] video", timeout=10000)
    wall.wait_for_function("v => v.currentTime > 1.0", arg=video, timeout=20000)

    # Edited: the name changes, the password is kept (the field stays empty).
    page.click("[data-edit-camera='ui-cam']")
    page.wait_for_selector("[data-test=camera-dialog]", state="visible", timeout=5000)
    assert page.input_value("input[data-test=camera-password]") == ""
    page.fill("input[data-test=camera-name]", "界面添加的路口（东）")
    # its sub stream, recorded on moving objects, kept 15 days
    page.fill("input[data-test=camera-sub-url]", url)
    choose(page, "[data-test=record-mode]", "目标录像")
    page.click("[data-test=record-stream] >> text=子码流")
    page.fill("[data-test=record-days] input", "15")
    page.click("[data-test=save-camera]")
    pages.wait("the new name", lambda: hub.camera("ui-cam")["name"] == "界面添加的路口（东）", 10)
    registry = hub.get("/api/cameras/ui-cam/registry")
    assert registry["source"]["has_password"]
    assert registry["source"]["sub_url"] == url
    assert {k: registry["record"][k] for k in ("mode", "stream", "retain_days")} == {
        "mode": "objects", "stream": "sub", "retain_days": 15}  # fmt: skip
    # edited again (the name only): the sub stream and the recording are kept
    page.click("[data-edit-camera='ui-cam']")
    page.wait_for_selector("[data-test=camera-dialog]", state="visible", timeout=5000)
    assert page.input_value("input[data-test=camera-sub-url]") == url
    page.fill("input[data-test=camera-name]", "界面添加的路口")
    page.click("[data-test=save-camera]")
    pages.wait("renamed back", lambda: hub.camera("ui-cam")["name"] == "界面添加的路口", 10)
    registry = hub.get("/api/cameras/ui-cam/registry")
    assert registry["source"]["sub_url"] == url and registry["record"]["mode"] == "objects"
    # Moved to a village of the township.
    page.click("[data-move-camera='ui-cam']")
    page.wait_for_selector("[data-test=move-dialog]", state="visible", timeout=5000)
    choose(page, "[data-test=move-area]", "示例县/城关镇/人民村")
    page.click("[data-test=save-move]")
    pages.wait("moved", lambda: hub.camera("ui-cam")["area"]["village"] == "人民村", 10)
    # Disabled with its switch: it stops.
    page.click("[data-enable='ui-cam']")
    pages.wait("disabled", lambda: hub.camera("ui-cam")["status"]["state"] == "disabled", 15)
    # Deleted after a confirmation (cancelled first: nothing happens).
    page.click("[data-delete-camera='ui-cam']")
    box = page.wait_for_selector(".el-message-box", timeout=5000)
    assert "ui-cam" in box.inner_text()
    page.click(".el-message-box .el-message-box__btns .el-button:not(.el-button--primary)")
    page.wait_for_selector(".el-message-box", state="hidden", timeout=5000)
    assert hub.camera("ui-cam")["id"] == "ui-cam"
    page.click("[data-delete-camera='ui-cam']")
    confirm(page)
    page.wait_for_selector("[data-delete-camera='ui-cam']", state="detached", timeout=10000)
    assert "ui-cam" not in {c["id"] for c in hub.get("/api/cameras")}
    # The config file's cameras are the file's: no edit, no delete.
    assert page.query_selector("[data-edit-camera='cg-cross']") is None
    actions = {a["action"] for a in hub.get("/api/audit", limit=50)["items"]
               if a["target"] == "camera:ui-cam"}  # fmt: skip
    assert actions == {"camera_create", "camera_update", "camera_move", "camera_disable",
                       "camera_delete"}  # fmt: skip


def test_an_onvif_camera_is_probed_and_its_profile_picked(
    pages: Room, ipycam_camera: IpyCamProcess
) -> None:
    hub = pages.hub
    page = pages.page()
    open_devices(page)
    page.click("[data-test=add-camera]")
    page.wait_for_selector("[data-test=camera-dialog]", state="visible", timeout=5000)
    page.fill("input[data-test=camera-id]", "ui-onvif")
    choose(page, "[data-test=camera-area]", "示例县/河西镇")
    page.click("[data-test=kind-onvif]")
    page.fill("input[data-test=onvif-host]", "127.0.0.1")
    port = ":is(input[data-test=onvif-port], [data-test=onvif-port] input)"
    page.fill(port, str(ipycam_camera.onvif_port))
    page.fill("input[data-test=camera-username]", IPYCAM_USER)
    page.fill("input[data-test=camera-password]", IPYCAM_PASSWORD)
    page.click("[data-test=probe]")
    device = page.wait_for_selector("[data-test=probe-device]", timeout=30000)
    assert "PythonCam" in device.inner_text()
    sub = page.locator("[data-test=profiles] label:has-text('320×180')").first
    sub.click()
    shot(page, "device-onvif")
    page.click("[data-test=save-camera]")
    pages.wait("the ONVIF camera online",
               lambda: hub.camera("ui-onvif")["status"]["state"] == "online", 60)  # fmt: skip
    assert "video_sub" in (hub.camera("ui-onvif")["stream_url"] or "")
    r = pages.hub.raw("/api/cameras/ui-onvif")
    assert IPYCAM_PASSWORD not in r.text
    page.click("[data-test=devices] >> text=刷新")
    page.click("[data-delete-camera='ui-onvif']")
    confirm(page)
    pages.wait("deleted", lambda: "ui-onvif" not in {c["id"] for c in hub.get("/api/cameras")},
               10)  # fmt: skip


def test_the_area_tree_gets_a_village_renamed_and_deleted(pages: Room) -> None:
    page = pages.page()
    page.click("[data-nav=system]")
    page.click("#tab-areas")
    page.wait_for_selector("[data-area-node='示例县/城关镇']", timeout=10000)
    page.click("[data-add-under='示例县/城关镇']")
    page.wait_for_selector("[data-test=area-dialog]", state="visible", timeout=5000)
    page.fill("input[data-test=area-part]", "新华村")
    page.fill("input[data-test=area-code]", "510123100")  # a township's code: refused
    page.click("[data-test=save-area]")
    page.wait_for_selector(".el-message--error >> text=区划代码位数不对", timeout=5000)
    page.fill("input[data-test=area-code]", "510123100201")
    page.click("[data-test=save-area]")
    page.wait_for_selector("[data-area-node='示例县/城关镇/新华村']", timeout=5000)
    node = next(a for a in pages.hub.get("/api/areas") if a.get("village") == "新华村")
    assert (node["code"], node["origin"], node["level"]) == ("510123100201", "api", "village")
    page.wait_for_selector(".el-message", state="detached", timeout=10000)
    shot(page, "area-tree")
    page.click("[data-rename-area='示例县/城关镇/新华村']")
    page.wait_for_selector("[data-test=rename-dialog]", state="visible", timeout=5000)
    page.fill("input[data-test=area-name]", "新华社区")
    page.click("[data-test=save-rename]")
    page.wait_for_selector("[data-area-node='示例县/城关镇/新华村'] >> text=新华社区", timeout=5000)
    # A file's node cannot be deleted here (no button); the new one can.
    assert page.query_selector("[data-delete-area='示例县/城关镇']") is None
    page.click("[data-delete-area='示例县/城关镇/新华村']")
    confirm(page)
    page.wait_for_selector("[data-area-node='示例县/城关镇/新华村']", state="detached",
                           timeout=5000)  # fmt: skip
    assert all(a.get("village") != "新华村" for a in pages.hub.get("/api/areas"))


def test_a_link_to_an_alert_outside_the_users_area_says_not_found(pages: Room) -> None:
    hub = pages.hub
    alert = pages.wait("an alert of 城关镇", lambda: hub.get("/api/alerts", camera_id="cg-cross",
                                                              limit=1)["items"], 90)[0]  # fmt: skip
    r = hub.post("/api/users", {"username": "hx-link", "password": "hx-link-pass-1",
                                "role": "operator", "area": OTHER})  # fmt: skip
    assert r.status_code == 201, r.text
    # (In its own area the detail shows it, with a false alarm's reason in its history.)
    r = hub.post(f"/api/alerts/{alert['id']}/actions", {"action": "false_alarm",
                                                      "reason": "树影晃动"})  # fmt: skip
    assert r.status_code == 200, r.text
    admin = pages.page()
    admin.goto(f"{hub.base}/#/alerts?id={alert['id']}")
    reason = admin.wait_for_selector("[data-test=history-reason]", timeout=10000)
    assert "误报原因" in reason.inner_text() and "树影晃动" in reason.inner_text()
    page = pages.page("hx-link", "hx-link-pass-1")
    page.goto(f"{hub.base}/#/alerts?id={alert['id']}")
    shown = page.wait_for_selector("[data-test=not-found]", timeout=10000)
    assert "未找到" in shown.inner_text() and alert["id"] in shown.inner_text()
    assert page.query_selector(f"[data-alert='{alert['id']}']") is None
