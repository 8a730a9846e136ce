"""The 国标设备 tab of 系统管理 in a real browser: a SIPp device registered to the hub
shows with its state and channels; the catalog can be queried again; an imported channel
is switched to analysis and back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.console.room import Room
from tests.hubproc import HubProcess
from tests.peers import sipp as peers
from tests.peers.procs import free_port

pytestmark = pytest.mark.slow  # real SIPp peers

DEVICE = "34020000001180000001"
PLATFORM = "34020000002000000001"
PASSWORD = "Gb-console-pw"


def test_gb28181_devices_tab(tmp_path: Path, models_dir: Path, browser: Any) -> None:
    sip_port = free_port()
    hub = HubProcess(tmp_path, {
        "detector": {"model": str(models_dir / "yolox_nano.onnx"), "workers": 1},
        "sip": {"enabled": True, "id": PLATFORM, "domain": "3402000000", "port": sip_port,
                "password": PASSWORD, "area_names": {"341502": "金安区"}},
    })  # fmt: skip
    hub.start()
    dev = peers.start_device(sip_port, device_id=DEVICE, password=PASSWORD,
                             platform_id=PLATFORM, domain="3402000000")  # fmt: skip
    room = Room(hub, browser)
    try:
        hub.wait("the device and its catalog", lambda: [
            d for d in hub.get("/api/gb28181/devices") if d["channels"] == 3], 20)  # fmt: skip
        page = room.page()
        page.goto(f"{hub.base}/#/system")
        page.get_by_role("tab", name="国标设备").click()
        row = page.locator("[data-test=gb-devices] .el-table__row").first
        row.wait_for(timeout=10000)
        text = row.inner_text()
        assert DEVICE in text and "在线" in text and "东门硬盘录像机" in text
        row.get_by_role("button", name="通道").click()
        channels = page.locator("[data-test=gb-channels] .el-table__row")
        channels.first.wait_for(timeout=10000)
        assert channels.count() == 3
        assert "东门路口" in page.locator("[data-test=gb-channels]").inner_text()
        # An imported channel is analysed from here (and stopped): no restart of the hub.
        camera = "gb-34150201001310000001"
        assert hub.camera(camera)["enabled"] is False
        switch = page.locator("[data-test=gb-channels] .el-table__row", has_text="东门路口") \
            .locator("[data-test=gb-analyse]")
        switch.click()
        page.get_by_text(f"已开始分析 {camera}").wait_for(timeout=10000)
        assert hub.camera(camera)["enabled"] is True
        hub.wait("the channel started", lambda: hub.camera(camera)["status"]["state"]
                 != "disabled", 15)  # fmt: skip
        switch.click()
        page.get_by_text(f"已停止分析 {camera}").wait_for(timeout=10000)
        hub.wait("the channel stopped", lambda: hub.camera(camera)["status"]["state"]
                 == "disabled", 15)  # fmt: skip
        row.get_by_role("button", name="查询目录").click()
        page.get_by_text("已发送目录查询").wait_for(timeout=10000)
        assert PASSWORD not in page.content()
    finally:
        room.close()
        dev.stop()
        hub.stop()
    assert room.hosts <= {"127.0.0.1"}
