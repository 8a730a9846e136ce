"""Streams end with their authority (issue 21), over a real hub with a live camera: the
SSE feed and the live FLV video of a user stop within seconds of the user being
disabled, moved to another area, or logging out; the feed says why (`auth_ended`)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.auth import STREAM_RECHECK_S
from tests.hubproc import HubProcess
from tests.integration.test_live import OTHER, TOWNSHIP, live_config, login
from tests.peers.procs import RtspServer

pytestmark = pytest.mark.slow

#: A stream must end within this of its authority (one re-check and some slack).
ENDS_WITHIN_S = STREAM_RECHECK_S + 6


class Stream:
    """Reads a stream in a thread: bytes received, SSE events, when it ended."""

    def __init__(self, hub: HubProcess, path: str, headers: dict[str, str]) -> None:
        self.bytes = 0
        self.events: list[tuple[str, Any]] = []
        self.status: int | None = None
        self.ended_at: float | None = None
        self._thread = threading.Thread(target=self._run, args=(hub, path, headers), daemon=True)
        self._thread.start()

    def _run(self, hub: HubProcess, path: str, headers: dict[str, str]) -> None:
        try:
            with httpx.stream("GET", f"{hub.base}{path}", headers=headers, timeout=30) as r:
                self.status = r.status_code
                name = None
                for line in r.iter_lines() if path == "/api/events" else ():
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: ") and name:
                        self.events.append((name, json.loads(line[6:])))
                for chunk in r.iter_bytes() if path != "/api/events" else ():
                    self.bytes += len(chunk)
        except httpx.HTTPError:
            pass
        finally:
            self.ended_at = time.monotonic()

    def wait_open(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while self.status is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.status == 200, self.status

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()


def patch_user(hub: HubProcess, username: str, body: dict[str, Any]) -> None:
    r = httpx.patch(f"{hub.base}/api/users/{username}", json=body, headers=hub.auth(), timeout=5)
    assert r.status_code == 200, r.text


def test_feeds_and_live_video_end_with_the_login(
    tmp_path: Path, models_dir: Path, rtsp_server: RtspServer
) -> None:
    hub = HubProcess(tmp_path, live_config(models_dir, rtsp_server.url("crosswalk"), []))
    hub.start()
    try:
        hub.wait("camera online", lambda: hub.camera("cg-live")["status"]["state"] == "online", 30)
        users = {"op-disabled": {}, "op-moved": {}, "op-logout": {}}
        for name in users:
            r = hub.post("/api/users", {"username": name, "password": "op-pass-12345",
                                        "role": "operator", "area": TOWNSHIP})  # fmt: skip
            assert r.status_code == 201, r.text
        streams: dict[str, tuple[dict[str, str], Stream, Stream]] = {}
        for name in users:
            headers = login(hub, name, "op-pass-12345")
            feed = Stream(hub, "/api/events", headers)
            video = Stream(hub, "/api/cameras/cg-live/live.flv", headers)
            feed.wait_open()
            video.wait_open()
            streams[name] = (headers, feed, video)
        time.sleep(STREAM_RECHECK_S + 1)  # past one re-check: a valid login keeps streaming
        for _, feed, video in streams.values():
            assert feed.ended_at is None and video.ended_at is None
            assert video.bytes > 0

        changed_at = time.monotonic()
        patch_user(hub, "op-disabled", {"disabled": True})
        patch_user(hub, "op-moved", {"area": OTHER})
        headers = streams["op-logout"][0]
        assert httpx.post(f"{hub.base}/api/auth/logout", headers=headers,
                          timeout=5).status_code == 204  # fmt: skip
        reasons = {}
        for name, (_, feed, video) in streams.items():
            assert feed.join(ENDS_WITHIN_S + 5) and video.join(ENDS_WITHIN_S + 5), name
            assert feed.ended_at is not None and video.ended_at is not None
            assert feed.ended_at - changed_at < ENDS_WITHIN_S, name
            assert video.ended_at - changed_at < ENDS_WITHIN_S, name
            ended = [data for event, data in feed.events if event == "auth_ended"]
            assert len(ended) == 1, (name, feed.events[-3:])
            reasons[name] = ended[0]["reason"]
        assert "credential no longer valid" in reasons["op-disabled"]
        assert "credential no longer valid" in reasons["op-logout"]
        assert "scope changed" in reasons["op-moved"]
        # The admin's own feed, opened meanwhile, is untouched.
        admin = Stream(hub, "/api/events", hub.auth())
        admin.wait_open()
        time.sleep(STREAM_RECHECK_S + 1)
        assert admin.ended_at is None
    finally:
        hub.stop()
