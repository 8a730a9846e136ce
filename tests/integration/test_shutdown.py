"""A hub with consoles open stops on SIGINT/SIGTERM within 5 s: its event feeds and live
video streams are ended (uvicorn would wait for them forever), it exits 0 and logs no
traceback. A real hub process, a real RTSP camera, real HTTP streams."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.hubproc import HubProcess
from tests.integration.test_live import live_config
from tests.peers.procs import RtspServer


class Stream:
    """Reads an endless response in a thread: how many bytes, and whether it ended."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.received = 0
        self.ended = threading.Event()
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, args=(url, headers), daemon=True)
        self._thread.start()

    def _run(self, url: str, headers: dict[str, str]) -> None:
        try:
            with httpx.stream("GET", url, headers=headers, timeout=30) as resp:
                assert resp.status_code == 200, resp.status_code
                for chunk in resp.iter_raw():
                    self.received += len(chunk)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.ended.set()


def open_streams(hub: HubProcess) -> list[Stream]:
    headers = hub.auth()
    streams = [Stream(f"{hub.base}/api/events", headers) for _ in range(2)]
    streams += [Stream(f"{hub.base}/api/cameras/cg-live/live.flv", headers) for _ in range(3)]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(s.received for s in streams):
        time.sleep(0.1)
    assert all(s.received for s in streams), [(s.received, s.error) for s in streams]
    return streams


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_hub_stops_within_5_s_with_feeds_and_live_video_open(
    tmp_path: Path, models_dir: Path, rtsp_server: RtspServer, sig: signal.Signals
) -> None:
    config: dict[str, Any] = live_config(models_dir, rtsp_server.url("crosswalk"), [])
    hub = HubProcess(tmp_path, config)
    hub.start()
    try:
        hub.wait("camera online", lambda: hub.camera("cg-live")["status"]["state"] == "online", 30)
        streams = open_streams(hub)
        before = [s.received for s in streams]
        time.sleep(1.0)
        assert [s.received for s in streams][2:] > before[2:]  # the video is flowing
        assert hub.proc is not None
        sent = time.monotonic()
        os.kill(hub.proc.pid, sig)  # as Ctrl-C / systemd stop would
        code = hub.proc.wait(timeout=20)
        took = time.monotonic() - sent
        for s in streams:
            assert s.ended.wait(5), "a stream was left open"
    finally:
        hub.stop()
    log = hub.log()
    assert took <= 5.0, f"the hub took {took:.1f} s to stop:\n{log[-3000:]}"
    assert code == 0, log[-3000:]
    assert "Traceback" not in log, log[-5000:]
    assert "Cancel" not in log  # uvicorn did not have to cancel anything
