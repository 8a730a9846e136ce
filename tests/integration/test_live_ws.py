"""Live video over WebSocket (a real hub, a real RTSP camera): the same FLV as live.flv,
the same checks (login, area scope, same origin), and many viewers at once — a browser's
six HTTP/1.1 connections per host do not limit WebSockets, so a 16-tile wall plays."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.hubproc import HubProcess
from tests.integration.test_live import decode_flv, live_config
from tests.peers.procs import RtspServer


def ws_url(hub: HubProcess, camera: str = "cg-live") -> str:
    return f"ws://127.0.0.1:{hub.port}/api/cameras/{camera}/live.ws"


def read_ws(url: str, headers: dict[str, str], seconds: float) -> bytes:
    data = bytearray()
    deadline = time.monotonic() + seconds
    with connect(url, additional_headers=headers, open_timeout=10) as ws:
        while time.monotonic() < deadline:
            message = ws.recv(timeout=10)
            assert isinstance(message, bytes)
            data += message
    return bytes(data)


@pytest.mark.slow
def test_live_video_over_websocket(
    tmp_path: Path, models_dir: Path, rtsp_server: RtspServer
) -> None:
    hub = HubProcess(tmp_path, live_config(models_dir, rtsp_server.url("crosswalk"), []))
    hub.start()
    try:
        hub.wait("camera online", lambda: hub.camera("cg-live")["status"]["state"] == "online", 30)
        data = read_ws(ws_url(hub), hub.auth(), 3.0)
        assert data.startswith(b"FLV")
        assert len(decode_flv(data, cut=True)) >= 30  # ≥ 3 s of video, decodable

        with pytest.raises(InvalidStatus) as refused:  # no login
            connect(ws_url(hub), open_timeout=10)
        assert refused.value.response.status_code == 403
        with pytest.raises(InvalidStatus):  # a page of another site, with the operator's login
            connect(ws_url(hub), additional_headers={**hub.auth(), "Origin": "http://evil.test"},
                    open_timeout=10)  # fmt: skip
        with pytest.raises(InvalidStatus):  # a camera that does not exist (or is not yours)
            connect(ws_url(hub, "nope"), additional_headers=hub.auth(), open_timeout=10)

        # 16 viewers at once, as a 16-tile wall: every one gets video.
        got: list[int] = [0] * 16

        def view(i: int) -> None:
            got[i] = len(read_ws(ws_url(hub), hub.auth(), 4.0))

        threads = [threading.Thread(target=view, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert all(n > 20_000 for n in got), got
        hub.wait("viewers gone", lambda: hub.camera("cg-live")["status"]["live_viewers"] == 0, 15)
    finally:
        hub.stop()
