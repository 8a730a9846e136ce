"""Main and sub stream (主/子码流) for the wall, a real hub and a real RTSP server: a camera
whose main stream is 1280x720 and whose sub stream is 640x360 plays either; the sub
stream is opened while watched (no analysis, no lease); a tile asks why a stream does not
play (no sub stream, the hub's limit of open live streams reached)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.hubproc import HubProcess
from tests.integration.test_live import decode_flv
from tests.integration.test_live_ws import read_ws
from tests.peers.procs import RtspServer

pytestmark = pytest.mark.slow


def ws(hub: HubProcess, camera: str, stream: str = "main") -> str:
    return f"ws://127.0.0.1:{hub.port}/api/cameras/{camera}/live.ws?stream={stream}"


def state(hub: HubProcess, camera: str, stream: str = "main") -> dict[str, object]:
    resp = httpx.get(f"{hub.base}/api/cameras/{camera}/live/state", params={"stream": stream},
                     headers=hub.auth(), timeout=10)  # fmt: skip
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def test_main_and_sub_stream(
    tmp_path: Path, models_dir: Path, rtsp_server_factory: Callable[..., RtspServer]
) -> None:
    rtsp = rtsp_server_factory({"main": "highway_receding_720p.mp4", "sub": "highway_divided.mp4"})
    config = {
        "detector": {"model": str(models_dir / "yolox_nano.onnx"), "workers": 1},
        "api": {"live_max_streams": 3},
        "cameras": [
            {"id": "hw", "name": "高速路口", "detect_fps": 1,
             "source": {"url": rtsp.url("main"), "sub_url": rtsp.url("sub")}},
            {"id": "plain", "name": "无子码流", "detect_fps": 1,
             "source": {"url": rtsp.url("sub")}},
        ],
    }  # fmt: skip
    hub = HubProcess(tmp_path, config)
    hub.start()
    try:
        online = lambda: all(hub.camera(c)["status"]["state"] == "online"  # noqa: E731
                             for c in ("hw", "plain"))  # fmt: skip
        hub.wait("cameras online", online, 40)

        main = decode_flv(read_ws(ws(hub, "hw"), hub.auth(), 2.5), cut=True)
        assert (main[0].width, main[0].height) == (1280, 720)
        sub = decode_flv(read_ws(ws(hub, "hw", "sub"), hub.auth(), 2.5), cut=True)
        assert len(sub) >= 20
        assert (sub[0].width, sub[0].height) == (640, 360)  # the camera's sub stream
        assert state(hub, "hw", "sub") | {"open_streams": 0} == {
            "playable": True, "reason": "ok", "state": "online", "codec": "h264",
            "detail": None, "has_sub": True, "open_streams": 0, "max_streams": 3,
        }  # fmt: skip

        # a camera without a sub stream: refused, and the tile is told why
        with pytest.raises(InvalidStatus):
            connect(ws(hub, "plain", "sub"), additional_headers=hub.auth(), open_timeout=15)
        assert state(hub, "plain", "sub")["reason"] == "no_sub"
        assert state(hub, "plain")["reason"] == "ok"

        # the limit of open live streams (3 here): a fourth is refused, and the tile says so
        with contextlib.ExitStack() as views:
            for cam, s in (("hw", "main"), ("hw", "sub"), ("plain", "main")):
                view = views.enter_context(connect(ws(hub, cam, s), additional_headers=hub.auth(),
                                                   open_timeout=15))  # fmt: skip
                assert isinstance(view.recv(timeout=10), bytes)
            assert state(hub, "plain")["reason"] == "limit"
            with pytest.raises(InvalidStatus):
                connect(ws(hub, "plain"), additional_headers=hub.auth(), open_timeout=15)
            assert hub.camera("hw")["status"]["live_viewers"] == 2  # main + sub
        hub.wait("streams closed", lambda: state(hub, "plain")["reason"] == "ok", 15)
        hub.wait("no viewers", lambda: hub.camera("hw")["status"]["live_viewers"] == 0, 15)
        # the hub reads the main stream only: the sub stream is never analysed
        assert hub.camera("hw")["status"]["resolution"] == [1280, 720]
    finally:
        hub.stop()
    assert "Traceback" not in hub.log()


def test_record_stream_sub_records_the_sub_stream(
    tmp_path: Path, models_dir: Path, rtsp_server_factory: Callable[..., RtspServer]
) -> None:
    """``record.stream: sub``: the camera's sub stream is pulled for the recorder and its
    segments are the sub stream's picture, while analysis reads the main stream; a camera
    without a sub stream records its main stream and the log says so once."""
    rtsp = rtsp_server_factory({"main": "highway_receding_720p.mp4", "sub": "highway_divided.mp4"})
    record = {"mode": "continuous", "stream": "sub", "segment_s": 2}
    config = {
        "detector": {"model": str(models_dir / "yolox_nano.onnx"), "workers": 1},
        "cameras": [
            {"id": "hw", "name": "高速路口", "detect_fps": 1, "record": record,
             "source": {"url": rtsp.url("main"), "sub_url": rtsp.url("sub")}},
            {"id": "plain", "name": "无子码流", "detect_fps": 1, "record": record,
             "source": {"url": rtsp.url("main")}},
        ],
    }  # fmt: skip
    hub = HubProcess(tmp_path, config)
    hub.start()
    try:

        def segments(camera: str) -> list[dict[str, object]]:
            resp = httpx.get(f"{hub.base}/api/recordings/{camera}/segments",
                             params={"start": 0, "end": 4e9}, headers=hub.auth(),
                             timeout=10)  # fmt: skip
            assert resp.status_code == 200, resp.text
            return resp.json()  # type: ignore[no-any-return]

        hub.wait("segments of both cameras",
                 lambda: len(segments("hw")) >= 2 and len(segments("plain")) >= 2, 60)  # fmt: skip
        assert {(s["width"], s["height"]) for s in segments("hw")} == {(640, 360)}
        assert {(s["width"], s["height"]) for s in segments("plain")} == {(1280, 720)}
        assert hub.camera("hw")["status"]["resolution"] == [1280, 720]  # analysis: main
    finally:
        hub.stop()
    log = hub.log()
    assert "Traceback" not in log
    assert log.count("camera plain: record.stream is sub but the camera has no") == 1
    assert "camera hw: recording (continuous, sub stream)" in log
    assert "rtsp://" not in log.split("camera hw: recording")[1].split("\n")[0]
