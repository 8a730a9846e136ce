"""Evidence clips from real video: the packet ring, the remuxed MP4, the clip thread,
retention, and end to end on a real hub with an RTSP camera (clip served with Range)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from alerts.adapters.memory_bus import MemoryEventBus
from alerts.clips import ClipRecorder, EvidenceRetention, write_clip
from alerts.config import AlertsConfig
from alerts.messages import CLIP_KIND, EVENTS_TOPIC, ClipMessage
from camera_registry.config import IngestConfig, SourceConfig
from camera_registry.status import StatusBoard
from ingest.reader import StreamReader, iter_sampled_frames
from ingest.ring import PacketRing
from tests.hubproc import HubProcess
from tests.integration.test_e2e_closure import closure_config
from tests.peers.procs import RtspServer


def stream_time(packet: av.Packet) -> float:
    """Replay clock for the ring: the packet's own timestamp in seconds."""
    assert packet.pts is not None and packet.time_base is not None
    return float(packet.pts * packet.time_base)


def fill_ring(video: Path, ring: PacketRing) -> int:
    """Decode ``video`` for real (the reader's own loop), handing every packet to ``ring``."""
    with av.open(str(video)) as container:
        ring.stream_opened(container.streams.video[0])
        frames = iter_sampled_frames(container, camera_id="cam", detect_fps=5, box=(320, 320),
                                     mode="replay", max_decode_errors=5,
                                     on_packet=ring.packet)  # fmt: skip
        return sum(1 for _ in frames)


def probe(path: Path) -> dict[str, Any]:
    """First/last frame time, frame count and whether the first frame is a keyframe."""
    with av.open(str(path)) as c:
        frames = list(c.decode(c.streams.video[0]))
    times = [float(f.time) for f in frames if f.time is not None]
    return {"first": times[0], "last": times[-1], "n": len(frames),
            "key": frames[0].key_frame, "size": (frames[0].width, frames[0].height)}  # fmt: skip


@pytest.fixture
def crosswalk(videos_dir: Path) -> Path:
    return videos_dir / "crosswalk_people.mp4"


def test_clip_from_a_real_decode_starts_at_a_keyframe_and_covers_the_window(
    crosswalk: Path, tmp_path: Path
) -> None:
    ring = PacketRing(max_seconds=30, max_bytes=16 << 20, clock=stream_time)
    assert fill_ring(crosswalk, ring) > 100
    # crosswalk_people.mp4 has keyframes at 0, 10.43 and 20.85 s only.
    keys = ring.keyframe_times()
    assert [round(k, 2) for k in keys] == [0.0, 10.43, 20.85]
    clip = ring.cut(14.0 - 5, 14.0 + 5)  # an alert at 14 s, 5 s before and after
    assert clip is not None and clip.packets[0].keyframe
    assert clip.start == pytest.approx(0.0)  # the keyframe before 9 s is the one at 0 s
    assert 18.9 < clip.end < 19.1
    path = tmp_path / "clip.mp4"
    sha = write_clip(clip, path)
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    got = probe(path)
    assert got["key"] and got["size"] == (640, 360)
    assert got["first"] == pytest.approx(0.0, abs=0.1)  # rebased to 0
    assert got["last"] - got["first"] == pytest.approx(clip.end - clip.start, abs=0.01)
    assert got["n"] == len(clip.packets)  # remuxed, nothing lost or re-encoded
    with av.open(str(path)) as c:
        video = c.streams.video[0]
        assert video.duration is not None and video.time_base is not None
        duration = float(video.duration * video.time_base)
    assert duration == pytest.approx(19.0, abs=0.2)

    later = ring.cut(22.0, 25.0)  # the keyframe inside: 20.85 s
    assert later is not None and later.start == pytest.approx(20.85, abs=0.01)


def test_the_ring_respects_its_byte_and_time_bounds(crosswalk: Path) -> None:
    # crosswalk's GOPs are ~1 MB (10.4 s): 1.5 MB holds the last GOP, from its keyframe.
    small = PacketRing(max_seconds=30, max_bytes=1_500_000, clock=stream_time)
    fill_ring(crosswalk, small)
    assert 800_000 < small.bytes_held <= 1_500_000 and small.evicted == 500
    assert [round(t, 2) for t in small.keyframe_times()] == [20.85]
    # A bound smaller than one GOP holds nothing rather than undecodable packets.
    tiny = PacketRing(max_seconds=30, max_bytes=500_000, clock=stream_time)
    fill_ring(crosswalk, tiny)
    assert tiny.bytes_held == 0 and tiny.cut(0, 30) is None
    short = PacketRing(max_seconds=5, max_bytes=16 << 20, clock=stream_time)
    fill_ring(crosswalk, short)
    # The GOP that reaches into the last 5 s stays whole: a clip must start on its keyframe.
    newest = short.newest_time()
    assert newest is not None and [round(t, 2) for t in short.keyframe_times()] == [20.85]
    assert short.cut(newest - 5, newest) is not None
    whole = PacketRing(max_seconds=30, max_bytes=16 << 20, clock=stream_time)
    fill_ring(crosswalk, whole)
    # 28.6 s of 640x360 at ~0.86 Mbit/s: about 3.1 MB held for a 30 s ring.
    assert 2_900_000 < whole.bytes_held < 3_200_000
    assert short.bytes_held < whole.bytes_held / 3


def test_the_clip_thread_waits_for_the_seconds_after(crosswalk: Path, tmp_path: Path) -> None:
    bus = MemoryEventBus()
    bus.subscribe(EVENTS_TOPIC, "t")
    recorder = ClipRecorder(bus, AlertsConfig(clip_pre_s=2, clip_post_s=3), tmp_path,
                            clock=lambda: 0.0)  # fmt: skip
    ring = recorder.ring("cam")
    assert ring is not None
    ring.clock = stream_time
    recorder.start()
    with av.open(str(crosswalk)) as container:
        stream = container.streams.video[0]
        ring.stream_opened(stream)
        packets = container.demux(stream)
        for packet in packets:  # up to 12 s
            if packet.size:
                ring.packet(packet)
            if packet.pts is not None and stream_time(packet) > 12:
                break
        assert recorder.request("alert-1", "cam", started_at=11.0, created_at=12.0)
        time.sleep(0.5)
        assert bus.consume(EVENTS_TOPIC, "t", timeout_s=0.1) is None  # 15 s not yet buffered
        for packet in packets:
            if packet.size:
                ring.packet(packet)
    delivery = bus.consume(EVENTS_TOPIC, "t", timeout_s=5)
    recorder.stop()
    assert delivery is not None and delivery.payload["kind"] == CLIP_KIND
    msg = ClipMessage.from_dict(delivery.payload)
    assert msg.alert_id == "alert-1" and msg.start == pytest.approx(0.0)  # keyframe before 9 s
    assert 14.9 < msg.end < 15.1  # a P-frame a B-frame before 15 s refers to may follow
    path = Path(msg.path)
    assert path == tmp_path / "cam" / "19700101" / "alert-1.mp4"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == msg.sha256
    assert probe(path)["key"]


def test_retention_deletes_old_and_over_quota_never_open(tmp_path: Path) -> None:
    now = 1_800_000_000.0
    files = {}
    for name, age_days in (("old.jpg", 100), ("open-old.mp4", 200), ("mid.jpg", 10),
                           ("new.jpg", 1)):  # fmt: skip
        path = tmp_path / "cam" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x" * 1000)
        os.utime(path, (now - age_days * 86400,) * 2)
        files[name] = path
    keep = {str(files["open-old.mp4"])}
    cfg = AlertsConfig(retention_days=90, evidence_quota_gb=2500 / 1024**3)
    retention = EvidenceRetention(cfg, tmp_path, lambda: keep)
    deleted = retention.sweep(now)
    # old.jpg is too old; then 3000 bytes > 2500: the oldest deletable one (mid) goes too.
    assert sorted(deleted) == ["cam/mid.jpg", "cam/old.jpg"]  # keys in the storage
    assert files["open-old.mp4"].exists() and files["new.jpg"].exists()


def test_retention_thread_survives_a_failing_pass(tmp_path: Path) -> None:
    calls = []

    def protected() -> set[str]:
        calls.append(1)
        raise RuntimeError("database gone")

    retention = EvidenceRetention(AlertsConfig(), tmp_path, protected, interval_s=0.05)
    retention.start()
    time.sleep(0.3)
    assert retention.threads[0].is_alive() and len(calls) >= 2
    retention.stop()


@pytest.mark.slow
def test_ring_over_real_rtsp_holds_what_it_should(rtsp_server: RtspServer) -> None:
    """The ring behind a real StreamReader on RTSP: keyframes every second, a clip cut
    from live packets, and its memory per camera (reported in the test output)."""
    ring = PacketRing(max_seconds=30, max_bytes=16 << 20)
    url = rtsp_server.url("crosswalk")
    reader = StreamReader("cam", lambda: url, SourceConfig(url=url), IngestConfig(),
                          detect_fps=2, box=(320, 320), on_frame=lambda f: None,
                          status=StatusBoard(), packet_sink=ring)  # fmt: skip
    reader.start()
    try:
        time.sleep(8)
    finally:
        reader.stop()
        reader.join(5)
    newest = ring.newest_time()
    assert newest is not None and len(ring.keyframe_times()) >= 4
    clip = ring.cut(newest - 4, newest)
    assert clip is not None and clip.packets[0].keyframe
    span = newest - ring.keyframe_times()[0]
    rate = ring.bytes_held / max(span, 1e-3)
    mbit, per_30s = rate * 8 / 1e6, rate * 30 / 1e6
    print(f"\nRTSP crosswalk ring: {ring.bytes_held} bytes over {span:.1f} s = "
          f"{mbit:.2f} Mbit/s -> {per_30s:.1f} MB per camera for 30 s")  # fmt: skip


def clip_config(models_dir: Path, camera_url: str, receiver: str) -> dict[str, Any]:
    cfg = closure_config(models_dir, camera_url, receiver, receiver)
    cfg["alerts"] = {"cooldown_s": 600, "clip_pre_s": 3, "clip_post_s": 3}
    return cfg


@pytest.mark.slow
def test_an_alert_gets_its_clip_served_with_range(
    tmp_path: Path, models_dir: Path, rtsp_server: RtspServer
) -> None:
    hub = HubProcess(tmp_path, clip_config(models_dir, rtsp_server.url("crosswalk"),
                                           "http://127.0.0.1:9"))  # fmt: skip
    hub.start()
    try:

        def clipped() -> Any:
            items = hub.get("/api/alerts")["items"]
            return next((a for a in items if a["evidence"]["clip"]["url"]), None)

        alert = hub.wait("an alert with its clip", clipped, timeout=120)
        clip = alert["evidence"]["clip"]
        assert clip["url"] == f"/api/alerts/{alert['id']}/clip.mp4"
        assert clip["end"] - clip["start"] >= 3 and clip["start"] <= alert["started_at"]
        url = f"{hub.base}{clip['url']}"
        part = httpx.get(url, headers={**hub.auth(), "Range": "bytes=0-99"}, timeout=5)
        assert part.status_code == 206 and len(part.content) == 100
        assert part.headers["content-range"].startswith("bytes 0-99/")
        whole = httpx.get(url, headers=hub.auth(), timeout=5)
        assert whole.status_code == 200 and whole.content[:100] == part.content
        assert hashlib.sha256(whole.content).hexdigest() == clip["sha256"]
        assert whole.headers["x-content-sha256"] == clip["sha256"]
        assert "clip attached" in hub.log()
        assert httpx.get(url, timeout=5).status_code == 401
        health = hub.get("/healthz")
        assert health["threads"]["clips"] and health["threads"]["retention"]
    finally:
        hub.stop()
    assert hub.proc is not None and hub.proc.returncode == 0, hub.log()[-3000:]


def test_clip_thread_is_not_started_when_clips_are_off(tmp_path: Path) -> None:
    recorder = ClipRecorder(MemoryEventBus(), AlertsConfig(clips_enabled=False), tmp_path)
    assert recorder.ring("cam") is None and recorder.threads == []
    recorder.start()
    assert not recorder.request("a", "cam", 0, 0)
    assert threading.active_count() >= 1
