"""PTZ through ONVIF against a real ONVIF device (ipycam on loopback, discovery off),
and the tolerant reading of answers (Chinese preset names, broken XML, faults)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from linkage.onvif_ptz import (
    OnvifEndpoint,
    OnvifPtz,
    find_preset,
    fix_mojibake,
    parse_answer,
    parse_presets,
)
from linkage.ports import ActionFailed
from tests.peers.procs import free_port

PEERS = Path(__file__).resolve().parents[1] / "peers"
USER, PASSWORD = "admin", "Ptz-pw-2026"


class PtzCamera:
    def __init__(self, workdir: Path, ip: str = "127.0.0.1") -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, str(PEERS / "ipycam_ptz.py"), "--ip", ip, "--onvif-port",
             str(self.port), "--workdir", str(workdir), "--user", USER, "--password", PASSWORD],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "READY":
            self.stop()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            pytest.fail(f"ipycam_ptz did not start: {line} {err}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def camera(tmp_path: Path) -> Iterator[PtzCamera]:
    cam = PtzCamera(tmp_path / "ipycam")
    yield cam
    cam.stop()


@pytest.fixture
def ptz(camera: PtzCamera) -> Iterator[OnvifPtz]:
    endpoints = {
        "dam": OnvifEndpoint("127.0.0.1", camera.port, USER, PASSWORD),
        "wrong-pw": OnvifEndpoint("127.0.0.1", camera.port, USER, "not-the-password"),
        "closed": OnvifEndpoint("127.0.0.1", free_port(), USER, PASSWORD),
    }
    control = OnvifPtz(endpoints.get, timeout_s=3.0, move_stop_s=0.4)
    yield control
    control.close()


def test_presets_chinese_names_goto_and_home(ptz: OnvifPtz) -> None:
    assert [p.token for p in ptz.presets("dam")] == ["home"]
    ptz.move("dam", 0.8, 0.3, 0.0)
    time.sleep(0.3)
    ptz.stop("dam")
    moved = ptz.position("dam")
    assert moved is not None and moved[0] > 0.05 and moved[1] > 0.01
    saved = ptz.set_preset("dam", "水库大坝 1号")
    names = {p.token: p.name for p in ptz.presets("dam")}
    assert names[saved.token] == "水库大坝 1号"  # intact, both ways
    ptz.home("dam")
    assert ptz.position("dam") == (0.0, 0.0, 0.0)
    reached = ptz.goto_preset("dam", "水库大坝 1号")  # by name
    assert reached.token == saved.token
    assert ptz.position("dam") == pytest.approx(moved)
    ptz.home("dam")
    ptz.goto_preset("dam", saved.token)  # by token
    assert ptz.position("dam") == pytest.approx(moved)


def test_move_stops_by_itself(ptz: OnvifPtz) -> None:
    ptz.move("dam", 1.0, 0.0, 0.0)  # the console lost its connection: no stop comes
    time.sleep(1.0)
    first = ptz.position("dam")
    time.sleep(0.5)
    assert first is not None and first[0] > 0 and ptz.position("dam") == first


def test_bad_inputs_fail_clearly(ptz: OnvifPtz) -> None:
    missing = r"no preset '不存在' on camera 127.0.0.1:\d+ \(it has: Home\)"
    with pytest.raises(ActionFailed, match=missing):
        ptz.goto_preset("dam", "不存在")
    with pytest.raises(ActionFailed, match="not authorised") as refused:
        ptz.presets("wrong-pw")
    assert "not-the-password" not in str(refused.value)
    with pytest.raises(ActionFailed, match="closed|127.0.0.1") as closed:
        ptz.home("closed")
    assert PASSWORD not in str(closed.value)
    with pytest.raises(ActionFailed, match="no ONVIF PTZ"):
        ptz.home("unknown-camera")
    assert ptz.presets("dam")  # the camera still answers afterwards


# -- tolerant parsing (no I/O) --------------------------------------------------------

PRESETS_LATIN1 = (
    '<?xml version="1.0" encoding="ISO-8859-1"?>'
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>'
    '<ptz:GetPresetsResponse><tptz:Preset token="1"><tt:Name>水库大坝</tt:Name></tptz:Preset>'
    '<tptz:Preset token="2"><tt:Name>Café</tt:Name></tptz:Preset>'
    "</ptz:GetPresetsResponse></s:Body></s:Envelope>"
).encode()  # UTF-8 bytes under a latin-1 declaration, prefixes undeclared (as ipycam)


def test_latin1_declared_chinese_names_are_redecoded() -> None:
    presets = parse_presets(parse_answer(PRESETS_LATIN1))
    assert [(p.token, p.name) for p in presets] == [("1", "水库大坝"), ("2", "Café")]
    assert find_preset(presets, " 水库大坝 ".strip()) == presets[0]
    assert find_preset(presets, "2") == presets[1] and find_preset(presets, "3") is None


def test_fix_mojibake_leaves_real_text_alone() -> None:
    assert fix_mojibake("æ°´åº\x93") == "水库"
    assert fix_mojibake("水库") == "水库"
    assert fix_mojibake("Café") == "Café"
    assert fix_mojibake("CafÃ©") == "Café"
    assert fix_mojibake("preset_1") == "preset_1"
    assert fix_mojibake("水库".encode("gb18030").decode("latin-1")) == "水库"


def test_soap_fault_and_garbage() -> None:
    fault = (b'<?xml version="1.0"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">'
             b"<s:Body><s:Fault><s:Code><s:Value>s:Sender</s:Value></s:Code><s:Reason>"
             b'<s:Text xml:lang="en">No such PTZNode</s:Text></s:Reason></s:Fault></s:Body>'
             b"</s:Envelope>")  # fmt: skip
    with pytest.raises(ActionFailed, match="refused: No such PTZNode"):
        parse_answer(fault)
    with pytest.raises(ActionFailed):
        parse_answer(b"<html>502 Bad Gateway")
