"""Live views over a real hub and a real RTSP camera: HTTP-FLV video remuxed from the
camera's packets, the boxes/zones overlay, the server-sent-events feed, and zones and
rules changed through the API without a restart (and kept across one)."""

from __future__ import annotations

import io
import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from ingest.live import FlvRemuxer, LiveFeed
from tests.hubproc import HubProcess
from tests.peers.procs import RtspServer

WHOLE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
TOWNSHIP = {"county": "示例县", "township": "城关镇"}
OTHER = {"county": "示例县", "township": "河西镇"}


# -- the feed and the remuxer, on a real clip's packets ------------------------------------


def clip_packets(path: Path, n: int) -> tuple[av.container.InputContainer, list[av.Packet]]:
    container = av.open(str(path))
    stream = container.streams.video[0]
    packets = [p for p in container.demux(stream) if p.size]
    return container, packets[:n]


def decode_flv(data: bytes, *, cut: bool = False) -> list[av.VideoFrame]:
    """The frames of an FLV stream; ``cut``: read off a live stream, its last tag may
    be incomplete."""
    frames: list[av.VideoFrame] = []
    with av.open(io.BytesIO(data), format="flv") as flv:
        assert flv.streams.video[0].codec_context.name == "h264"
        try:
            for frame in flv.decode(video=0):
                frames.append(frame)
        except av.error.InvalidDataError:
            if not cut:
                raise
    return frames


def test_a_viewer_starts_on_the_last_keyframe_and_follows_live(videos_dir: Path) -> None:
    container, packets = clip_packets(videos_dir / "crosswalk_people.mp4", 80)
    feed = LiveFeed()
    feed.stream_opened(container.streams.video[0])
    assert feed.subscribe(lambda p: None)[0].packets == []  # nothing held yet
    keys = [i for i, p in enumerate(packets) if p.is_keyframe]
    assert keys[0] == 0
    for p in packets[:50]:
        feed.packet(p)
    received: list[Any] = []
    start, unsubscribe = feed.subscribe(received.append)
    assert start is not None and start.codec == "h264"
    assert start.packets[0].keyframe
    assert len(start.packets) == 50 - max(k for k in keys if k < 50)
    for p in packets[50:]:
        feed.packet(p)
    assert len(received) == 30
    remuxer = FlvRemuxer(start.template)
    data = b"".join(remuxer.feed(p) for p in [*start.packets, *received])
    remuxer.close()
    frames = decode_flv(data)
    assert len(frames) == len(start.packets) + 30
    times = [f.time for f in frames]
    assert 0 <= times[0] < 0.2 and times == sorted(times)  # from 0 (B-frames: a reorder delay)
    unsubscribe()
    feed.packet(packets[0])
    assert len(received) == 30  # unsubscribed: nothing more


def test_a_reconnection_ends_the_viewers_streams(videos_dir: Path) -> None:
    container, packets = clip_packets(videos_dir / "crosswalk_people.mp4", 5)
    feed = LiveFeed()
    feed.stream_opened(container.streams.video[0])
    for p in packets:
        feed.packet(p)
    received: list[Any] = []
    feed.subscribe(received.append)
    feed.stream_opened(container.streams.video[0])  # the camera reconnected
    assert received == [None] and feed.viewers == 0
    start, _ = feed.subscribe(lambda p: None)
    assert start is not None and start.packets == []  # waits for the new stream's keyframe


def test_the_remuxer_drops_what_the_muxer_would_refuse(videos_dir: Path) -> None:
    container, packets = clip_packets(videos_dir / "crosswalk_people.mp4", 10)
    feed = LiveFeed()
    feed.stream_opened(container.streams.video[0])
    for p in packets:
        feed.packet(p)
    start, _ = feed.subscribe(lambda p: None)
    assert start is not None
    remuxer = FlvRemuxer(start.template)
    assert remuxer.feed(start.packets[1]) == b""  # not a keyframe: cannot start there
    first = remuxer.feed(start.packets[0])
    assert first.startswith(b"FLV")
    assert remuxer.feed(start.packets[0]) == b""  # the same decode time again
    remuxer.close()


# -- over a real hub ----------------------------------------------------------------------------


def live_config(models_dir: Path, camera_url: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "detector": {"model": str(models_dir / "yolox_nano.onnx"), "workers": 2},
        "alerts": {"cooldown_s": 600, "clip_pre_s": 2, "clip_post_s": 2},
        "areas": [{"county": "示例县", "code": "510123"}, {**TOWNSHIP, "code": "510123100"},
                  {**OTHER, "code": "510123101"}],
        "cameras": [{
            "id": "cg-live", "name": "城关镇人民路口", "area": TOWNSHIP,
            "source": {"url": camera_url, **({} if "://" in camera_url else {"loop": True})},
            "detect_fps": 5,
            "zones": [{"name": "square", "points": WHOLE}], "rules": rules,
        }],
    }  # fmt: skip


def read_for(hub: HubProcess, path: str, seconds: float) -> tuple[int, bytes]:
    data = bytearray()
    deadline = time.monotonic() + seconds
    with httpx.stream("GET", f"{hub.base}{path}", headers=hub.auth(), timeout=10) as resp:
        if resp.status_code != 200:
            resp.read()
            return resp.status_code, resp.content
        for chunk in resp.iter_bytes():
            data += chunk
            if time.monotonic() > deadline:
                break
    return 200, bytes(data)


class SseReader:
    """Reads ``/api/events`` in a thread; events as (name, data)."""

    def __init__(self, hub: HubProcess, headers: dict[str, str]) -> None:
        self.events: list[tuple[str, Any]] = []
        self.comments = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(hub, headers), daemon=True)
        self._thread.start()

    def _run(self, hub: HubProcess, headers: dict[str, str]) -> None:
        with httpx.stream("GET", f"{hub.base}/api/events", headers=headers, timeout=30) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            name = None
            for line in r.iter_lines():
                if self._stop.is_set():
                    return
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: ") and name:
                    self.events.append((name, json.loads(line[6:])))
                    name = None
                elif line.startswith(":"):
                    self.comments += 1

    def stop(self) -> None:
        self._stop.set()

    def of(self, name: str, alert_id: str | None = None) -> list[Any]:
        return [
            d for n, d in self.events if n == name and (alert_id is None or d["id"] == alert_id)
        ]


def login(hub: HubProcess, username: str, password: str) -> dict[str, str]:
    r = httpx.post(f"{hub.base}/api/auth/login", json={"username": username,
                   "password": password}, timeout=5)  # fmt: skip
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['token']}"}


@pytest.mark.slow
def test_live_video_overlay_feed_and_zones_changed_live(
    tmp_path: Path, models_dir: Path, rtsp_server: RtspServer
) -> None:
    # No rule at first: nothing can fire until the zone editor adds one.
    hub = HubProcess(tmp_path, live_config(models_dir, rtsp_server.url("crosswalk"), []))
    hub.start()
    try:
        hub.wait("camera online", lambda: hub.camera("cg-live")["status"]["state"] == "online", 30)
        assert hub.camera("cg-live")["status"]["codec"] == "h264"

        # Live video: the camera's H.264 in FLV, decodable, advancing, from a keyframe.
        status, data = read_for(hub, "/api/cameras/cg-live/live.flv", 4.0)
        assert status == 200 and data.startswith(b"FLV")
        frames = decode_flv(data, cut=True)
        assert len(frames) >= 40, len(frames)  # ≥ 4 s at 24 fps, less what the cut drops
        assert frames[-1].time - frames[0].time >= 1.5
        assert frames[0].key_frame

        overlay = hub.wait("boxes", lambda: hub.get("/api/cameras/cg-live/overlay")["boxes"], 20)
        assert {b["cls"] for b in overlay} >= {"person"}
        assert hub.get("/api/cameras/cg-live/overlay")["zones"] == []  # no rule: none drawn

        # A township user of another township sees neither the camera nor its video.
        r = hub.post("/api/users", {"username": "hx-op", "password": "hx-op-pass-123",
                                    "role": "operator", "area": OTHER})  # fmt: skip
        assert r.status_code == 201, r.text
        other = login(hub, "hx-op", "hx-op-pass-123")
        r = httpx.get(f"{hub.base}/api/cameras/cg-live/live.flv", headers=other, timeout=5)
        assert r.status_code == 404

        feed, other_feed = SseReader(hub, hub.auth()), SseReader(hub, other)
        time.sleep(1.0)
        # A wrong zone name: 422 naming the field, the config not echoed, nothing applied.
        bad = {
            "zones": [{"name": "square", "points": WHOLE}],
            "rules": [{"name": "in-square", "type": "intrusion", "zone": "nowhere"}],
        }
        r = httpx.put(f"{hub.base}/api/cameras/cg-live/analytics", json=bad,
                      headers=hub.auth(), timeout=10)  # fmt: skip
        assert r.status_code == 422 and "nowhere" in r.text and "rtsp://" not in r.text
        assert hub.get("/api/cameras/cg-live/analytics")["source"] == "config"

        # The editor adds an intrusion rule: it applies at once, without a restart.
        good = {"zones": [{"name": "square", "points": WHOLE}],
                "rules": [{"name": "in-square", "type": "intrusion", "zone": "square",
                           "min_duration_s": 1}]}  # fmt: skip
        r = httpx.put(f"{hub.base}/api/cameras/cg-live/analytics", json=good,
                      headers=hub.auth(), timeout=10)  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["source"] == "console" and r.json()["updated_by"] == "admin"
        alert = hub.wait("an intrusion alert on the feed", lambda: feed.of("alert"), 30)[0]
        assert alert["type"] == "intrusion" and alert["rule"] == "in-square"
        assert alert["camera"]["id"] == "cg-live"
        assert hub.get("/api/cameras/cg-live/overlay")["zones"][0]["kind"] == "polygon"

        r = hub.post(f"/api/alerts/{alert['id']}/actions", {"action": "acknowledge"})
        assert r.status_code == 200, r.text
        # (an incident also changes as later intrusions join it: those say "new")
        def acknowledged() -> list[Any]:
            return [c for c in feed.of("alert_changed", alert["id"])
                    if c["status"] == "acknowledged"]  # fmt: skip

        changed = hub.wait("alert_changed", acknowledged, 10)
        assert changed[-1]["status"] == "acknowledged"
        assert other_feed.of("alert") == [] and other_feed.of("alert_changed") == []
        feed.stop()
        other_feed.stop()
        audit = hub.get("/api/audit", action="camera_analytics_changed")["items"]
        assert audit and audit[0]["target"] == "cg-live" and "in-square" in audit[0]["detail"]
    finally:
        hub.stop()

    # The edit survives a restart: the console's zones and rules override the config's.
    hub.start()
    try:
        saved = hub.get("/api/cameras/cg-live/analytics")
        assert saved["source"] == "console"
        assert [r["name"] for r in saved["rules"]] == ["in-square"]
        assert saved["detect"]["tiles"] is None

        # Detection settings: edited through the same call, checked by the same model, and
        # kept when a later save (the zone editor) leaves them out.
        url = f"{hub.base}/api/cameras/cg-live/analytics"
        r = httpx.put(url, json={**good, "detect": {"tiles": [9, 1]}}, headers=hub.auth(),
                      timeout=10)  # fmt: skip
        assert r.status_code == 422 and "tiles" in r.text
        r = httpx.put(url, json={**good, "detect": {"tiles": [2, 1], "min_frames": 3}},
                      headers=hub.auth(), timeout=10)  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["detect"]["tiles"] == [2, 1] and r.json()["detect"]["min_frames"] == 3
        r = httpx.put(url, json=good, headers=hub.auth(), timeout=10)
        assert r.status_code == 200 and r.json()["detect"]["tiles"] == [2, 1], r.text
        status = hub.wait("the camera analysing with tiles",
                          lambda: hub.get("/api/cameras/cg-live")["status"]["state"] == "online",
                          30)  # fmt: skip
        assert status
    finally:
        hub.stop()


@pytest.mark.slow
def test_a_codec_flv_cannot_carry_answers_415(
    tmp_path: Path, models_dir: Path, videos_dir: Path
) -> None:
    clip = tmp_path / "mpeg4.mp4"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(videos_dir / "crosswalk_people.mp4"),
         "-t", "4", "-c:v", "mpeg4", "-an", str(clip)],
        check=True,
    )  # fmt: skip
    hub = HubProcess(tmp_path, live_config(models_dir, str(clip), []))
    cfg = hub.config_path.read_text(encoding="utf-8")
    assert "mpeg4.mp4" in cfg
    hub.start()
    try:
        hub.wait("camera online", lambda: hub.camera("cg-live")["status"]["state"] == "online", 30)
        assert hub.camera("cg-live")["status"]["codec"] == "mpeg4"
        status, body = read_for(hub, "/api/cameras/cg-live/live.flv", 2)
        assert status == 415 and b"snapshot" in body
        assert hub.raw("/api/cameras/cg-live/snapshot.jpg").status_code == 200  # the fallback
    finally:
        hub.stop()
