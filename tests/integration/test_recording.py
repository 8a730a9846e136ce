"""Recording (recording/): segments cut at keyframes from a real RTSP camera's packets,
crash repair, parameter changes, events mode, storage failures. MP4s checked with
ffprobe."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from camera_registry.config import IngestConfig, RecordConfig, SourceConfig
from camera_registry.status import StatusBoard
from core.storage_directory import SharedDirectory
from ingest.live import LiveFeed, LiveStart
from ingest.reader import StreamReader
from ingest.ring import BufferedPacket, StreamTemplate
from recording.recorder import Recorder
from recording.segments import OpenSegment, SegmentFormat, part_name
from recording.store import SegmentRecord
from shaobing.db import open_database
from tests.peers.procs import RtspServer


def ffprobe(path: Path) -> dict[str, Any]:
    if shutil.which("ffprobe") is None:
        pytest.fail("ffprobe not found (apt-get install ffmpeg)", pytrace=False)
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_packets", "-show_entries",
         "format=duration,format_name:stream=codec_name,width,height,nb_read_packets",
         "-of", "json", str(path)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def moov_before_mdat(data: bytes) -> bool:
    return 0 <= data.find(b"moov") < data.find(b"mdat")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine, sessions = open_database(f"sqlite:///{tmp_path / 'hub.db'}")
    yield sessions
    engine.dispose()


def rows(sessions: sessionmaker[Session]) -> list[SegmentRecord]:
    with sessions() as session:
        return list(session.scalars(select(SegmentRecord).order_by(SegmentRecord.start)))


class ClipFeed:
    """Stands in for a camera's LiveFeed in the pure-timing tests: a real clip's packets
    handed to the subscriber with times taken from the clip (no waiting)."""

    def __init__(self, path: Path, *, origin: float = 1_700_000_000.0) -> None:
        self.container = av.open(str(path))
        self.stream = self.container.streams.video[0]
        self.template = StreamTemplate(self.stream)
        self.origin = origin
        self.viewer: Callable[[BufferedPacket | None], None] | None = None
        self.codec = self.stream.codec_context.name

    def subscribe(self, viewer: Callable[[BufferedPacket | None], None]
                  ) -> tuple[LiveStart, Callable[[], None]]:  # fmt: skip
        self.viewer = viewer
        return LiveStart(self.template, self.codec, []), lambda: None

    def play(self, seconds: float | None = None) -> int:
        assert self.viewer is not None
        tb = self.stream.time_base or Fraction(1, 90000)
        n = 0
        for p in self.container.demux(self.stream):
            if not p.size or p.pts is None:
                continue
            t = self.origin + float(p.pts * tb)
            if seconds is not None and t - self.origin > seconds:
                break
            self.viewer(BufferedPacket(bytes(p), p.pts, p.dts, int(p.duration or 0),
                                       bool(p.is_keyframe), t))  # fmt: skip
            n += 1
        return n


def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def test_a_real_rtsp_camera_is_recorded_in_keyframe_segments(
    tmp_path: Path, db: sessionmaker[Session], rtsp_server: RtspServer
) -> None:
    """A StreamReader on the real RTSP server feeds the live feed; the recorder cuts
    segments of about 4 s at keyframes; each is a faststart MP4 that ffprobe reads,
    with the SHA-256 and size of its index row, one after the other in time."""
    storage = SharedDirectory(tmp_path / "rec")
    recorder = Recorder(storage, db, tmp_path / "spool")
    feed = LiveFeed()
    url = rtsp_server.url("crosswalk")
    reader = StreamReader("cam1", lambda: url, SourceConfig(url=url), IngestConfig(),
                          detect_fps=1, box=(320, 320), on_frame=lambda f: None,
                          status=StatusBoard(), packet_sink=feed)  # fmt: skip
    recorder.add_camera("cam1", RecordConfig(mode="continuous", segment_s=4), feed)
    recorder.start()
    reader.start()
    try:
        assert wait_for(lambda: len(rows(db)) >= 3, timeout=40), recorder.health()
    finally:
        reader.stop()
        reader.join(5)
        recorder.stop()
    segments = rows(db)
    assert len(segments) >= 3
    for seg in segments:
        data = (tmp_path / "rec" / seg.key).read_bytes()
        assert hashlib.sha256(data).hexdigest() == seg.sha256 and len(data) == seg.size_bytes
        assert moov_before_mdat(data), "segments are +faststart"
        probe = ffprobe(tmp_path / "rec" / seg.key)
        stream = probe["streams"][0]
        assert stream["codec_name"] == "h264" and (stream["width"], stream["height"]) == (
            seg.width, seg.height)
        with av.open(str(tmp_path / "rec" / seg.key)) as c:
            first = next(p for p in c.demux(c.streams.video[0]) if p.size)
            assert first.is_keyframe
        assert seg.codec == "h264" and seg.mode == "continuous"
    # All but the last (closed at stop) are at least segment_s long, and not much more
    # (the server sends a keyframe every second).
    for seg in segments[:-1]:
        assert 4.0 <= seg.end - seg.start <= 6.5, (seg.start, seg.end)
    for a, b in zip(segments, segments[1:], strict=False):
        assert b.start >= a.end - 0.5 and b.start - a.end < 1.5  # contiguous
    assert not list((tmp_path / "spool").rglob("*.part.mp4")), "spool emptied"
    # Video is evidence: owner-only folders and files, like the snapshots.
    assert (tmp_path / "spool" / "cam1").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "rec" / segments[0].key).stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "rec" / segments[0].key).parent.stat().st_mode & 0o777 == 0o700
    assert recorder.health()["cameras"]["cam1"]["segments"] == len(segments)


def test_a_segment_cut_short_by_a_crash_is_repaired_and_an_empty_one_dropped(
    tmp_path: Path, db: sessionmaker[Session], videos_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    spool = tmp_path / "spool"
    feed = ClipFeed(videos_dir / "crosswalk_people.mp4")
    fmt = SegmentFormat.of(feed.template, "h264")
    start = 1_700_000_000.0
    part = spool / part_name("cam1", start, "continuous")
    seg = OpenSegment(part, fmt, start)
    for p in feed.container.demux(feed.stream):
        if p.size and p.pts is not None:
            seg.write(BufferedPacket(bytes(p), p.pts, p.dts, int(p.duration or 0),
                                     bool(p.is_keyframe), start))  # fmt: skip
        if seg.packets >= 250:
            break
    seg.close()
    data = part.read_bytes()
    part.write_bytes(data[: len(data) * 2 // 3])  # the crash: the tail never written
    garbage = spool / part_name("cam2", start, "events")
    garbage.parent.mkdir(parents=True)
    garbage.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 40)
    recorder = Recorder(SharedDirectory(tmp_path / "rec"), db, spool)
    with caplog.at_level(logging.WARNING, logger="recording.recorder"):
        recorder.recover()
    segments = rows(db)
    assert len(segments) == 1 and segments[0].camera_id == "cam1" and segments[0].repaired
    assert segments[0].start == start and 0 < segments[0].end - start < 250 / 25
    probe = ffprobe(tmp_path / "rec" / segments[0].key)
    assert 0 < int(probe["streams"][0]["nb_read_packets"]) < 250
    assert recorder.repaired == 1 and recorder.dropped_parts == 1
    assert "repaired" in caplog.text and "dropped" in caplog.text
    assert not garbage.exists() and not part.exists()


X265 = "keyint=25:bframes=0:repeat-headers=1:log-level=error"
ENCODERS = {"h264": ("libx264", {"g": "25", "bf": "0"}),
            "hevc": ("libx265", {"x265-params": X265})}  # fmt: skip


def make_resolution_change(path: Path, codec: str = "h264") -> None:
    """An MPEG-TS stream (real libx264 or libx265) whose resolution changes after 3 s, with
    its parameter sets repeated on each keyframe, as a camera sends them."""
    encoder, options = ENCODERS[codec]
    out = av.open(str(path), "w", format="mpegts")
    stream = out.add_stream(encoder, rate=25)
    stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
    pts = 0
    for w, h in ((320, 240), (640, 360)):
        cc = av.CodecContext.create(encoder, "w")
        cc.width, cc.height, cc.pix_fmt = w, h, "yuv420p"
        cc.time_base = Fraction(1, 25)
        cc.options = dict(options)
        packets = []
        for i in range(75):
            frame = av.VideoFrame.from_ndarray(
                np.full((h, w, 3), (i * 7) % 255, np.uint8), format="rgb24"
            ).reformat(format="yuv420p")
            frame.pts = i
            packets.extend(cc.encode(frame))  # type: ignore[attr-defined]
        packets.extend(cc.encode(None))  # type: ignore[attr-defined]
        for p in packets:
            p.stream = stream
            p.pts = p.dts = pts
            p.time_base = Fraction(1, 25)
            pts += 1
            out.mux(p)
    out.close()


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_a_resolution_change_starts_a_new_segment(
    tmp_path: Path, db: sessionmaker[Session], codec: str
) -> None:
    clip = tmp_path / "change.ts"
    make_resolution_change(clip, codec)
    feed = ClipFeed(clip)
    feed.codec = codec
    recorder = Recorder(SharedDirectory(tmp_path / "rec"), db, tmp_path / "spool")
    recorder.add_camera("cam1", RecordConfig(mode="continuous", segment_s=60),
                        feed)  # type: ignore[arg-type]  # fmt: skip
    recorder.start()
    feed.play()
    recorder.stop()
    segments = rows(db)
    assert [(s.width, s.height) for s in segments] == [(320, 240), (640, 360)]
    for seg in segments:
        probe = ffprobe(tmp_path / "rec" / seg.key)["streams"][0]
        assert (probe["width"], probe["height"]) == (seg.width, seg.height)
        assert probe["codec_name"] == codec and seg.codec == codec
        assert int(probe["nb_read_packets"]) == 75
        with av.open(str(tmp_path / "rec" / seg.key)) as c:
            sizes = {(f.width, f.height) for f in c.decode(video=0)}
        assert sizes == {(seg.width, seg.height)}


def test_events_mode_keeps_only_the_seconds_around_an_alert(
    tmp_path: Path, db: sessionmaker[Session], videos_dir: Path
) -> None:
    feed = ClipFeed(videos_dir / "crosswalk_people.mp4")
    recorder = Recorder(SharedDirectory(tmp_path / "rec"), db, tmp_path / "spool")
    record = RecordConfig(mode="events", pre_s=2, post_s=3, segment_s=60)
    recorder.add_camera("cam1", record, feed)  # type: ignore[arg-type]
    recorder.start()
    alert_t = feed.origin + 10.0
    recorder.mark("cam1", alert_t)  # known before the packets: a mark at t=10 s
    feed.play(seconds=25)
    recorder.stop()
    segments = rows(db)
    assert len(segments) == 1, [(s.start - feed.origin, s.end - feed.origin) for s in segments]
    seg = segments[0]
    assert seg.mode == "events"
    # From the keyframe at or before 8 s to the keyframe after 13 s (GOPs of the clip).
    assert alert_t - 2 - 10 <= seg.start <= alert_t - 2
    assert alert_t + 3 <= seg.end <= alert_t + 3 + 12
    assert seg.end - seg.start < 25


def test_unwritable_storage_is_reported_and_recording_resumes(
    tmp_path: Path, db: sessionmaker[Session], videos_dir: Path
) -> None:
    blocked = tmp_path / "rec"
    blocked.write_bytes(b"not a folder")  # the disk the storage is on went away
    feed = ClipFeed(videos_dir / "crosswalk_people.mp4")
    recorder = Recorder(SharedDirectory(blocked), db, tmp_path / "spool")
    recorder.add_camera("cam1", RecordConfig(mode="continuous", segment_s=3),
                        feed)  # type: ignore[arg-type]  # fmt: skip
    recorder.start()
    feed.play(seconds=25)  # the clip's keyframes are about 10 s apart
    assert wait_for(lambda: recorder.health()["cameras"]["cam1"]["failed"] >= 1)
    health = recorder.health()
    assert health["status"] == "degraded" and not health["storage_ok"]
    assert health["storage_error"] and health["thread_alive"]
    blocked.unlink()  # the disk is back
    feed.origin += 100  # the camera goes on
    feed.container.seek(0)
    feed.play(seconds=40)
    recorder.stop()
    assert rows(db), "segments stored again once the storage works"
    assert recorder.health()["storage_ok"]


def test_recorder_thread_survives_and_stops(tmp_path: Path, db: sessionmaker[Session]) -> None:
    recorder = Recorder(SharedDirectory(tmp_path / "rec"), db, tmp_path / "spool")
    recorder.start()
    assert recorder.health()["thread_alive"]
    recorder.stop()
    assert not any(t.is_alive() for t in recorder.threads)
    assert threading.active_count() >= 1


def test_a_writer_that_falls_behind_drops_packets_not_memory(
    tmp_path: Path, db: sessionmaker[Session], videos_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    import recording.recorder as rec

    monkeypatch.setattr(rec, "MAX_QUEUE", 50)
    feed = ClipFeed(videos_dir / "crosswalk_people.mp4")
    recorder = Recorder(SharedDirectory(tmp_path / "rec"), db, tmp_path / "spool")
    recorder.add_camera("cam1", RecordConfig(mode="continuous", segment_s=4),
                        feed)  # type: ignore[arg-type]  # fmt: skip
    feed.play()  # the thread is not running yet: nothing is taken off the queue
    assert recorder.health()["queue"] <= 52  # bounded: the rest was dropped
    recorder.start()
    assert wait_for(lambda: recorder.health()["queue"] == 0)
    feed.origin += 100
    feed.container.seek(0)
    feed.play()  # caught up: recording goes on from the next keyframe
    recorder.stop()
    assert recorder.health()["cameras"]["cam1"]["dropped"] >= 1  # fed faster than real time
    assert rows(db), "segments after the queue drained"


def test_the_service_follows_the_cameras_read_here(
    tmp_path: Path, db: sessionmaker[Session], videos_dir: Path
) -> None:
    """A camera that leaves (its lease moved) has its open segment closed and indexed; one
    that arrives, or whose mode changes, is followed from then on."""
    from analytics.config import CameraConfig
    from recording.config import RecordingConfig
    from recording.service import RecordingService

    feeds = {"cam1": ClipFeed(videos_dir / "crosswalk_people.mp4"),
             "cam2": ClipFeed(videos_dir / "crosswalk_people.mp4")}  # fmt: skip

    def camera(cam_id: str, mode: str) -> CameraConfig:
        return CameraConfig.model_validate({"id": cam_id, "source": {"url": "rtsp://127.0.0.1:9/x"},
                                            "record": {"mode": mode, "segment_s": 60}})  # fmt: skip

    here = [camera("cam1", "continuous")]
    service = RecordingService(RecordingConfig(), tmp_path / "rec", tmp_path / "spool", db)
    service.follow(lambda: here, feeds.__getitem__)  # type: ignore[arg-type]
    service.start()
    try:
        feeds["cam1"].play(seconds=15)  # one open segment (60 s target)
        assert wait_for(lambda: bool(service.health()["cameras"].get("cam1", {}).get("recording")))
        assert rows(db) == []
        here[:] = [camera("cam2", "events")]  # cam1's lease moved here → cam2 arrived
        assert wait_for(lambda: len(rows(db)) == 1, timeout=10), "cam1's segment closed"
        assert wait_for(lambda: "cam2" in service.health()["cameras"], timeout=10)
        assert "cam1" not in service.health()["cameras"]
        assert service.health()["cameras"]["cam2"]["mode"] == "events"
    finally:
        service.stop()
    assert rows(db)[0].camera_id == "cam1"


@pytest.mark.parametrize("alert_first", [True, False], ids=["alert-stored-first", "alert-late"])
def test_events_mode_follows_the_alerts_in_the_database(
    tmp_path: Path, db: sessionmaker[Session], videos_dir: Path, alert_first: bool
) -> None:
    """An alert row of the camera (any alert service's) opens the window, whether it is
    read before the packets of its time arrive or after (an alert is stored a moment after
    its event: the buffer holds the seconds before)."""
    from tests.factories import make_alert, store

    now = time.time()
    feed = ClipFeed(videos_dir / "crosswalk_people.mp4", origin=now - 40)
    alert_t = feed.origin + 14.0
    recorder = Recorder(SharedDirectory(tmp_path / "rec"), db, tmp_path / "spool")
    record = RecordConfig(mode="events", pre_s=3, post_s=3, segment_s=60)
    recorder.add_camera("cam1", record, feed)  # type: ignore[arg-type]
    if alert_first:
        store(db, make_alert(1, camera_id="cam1", created_at=alert_t))
        recorder.start()
        assert wait_for(lambda: recorder.cameras["cam1"].want_until > 0)
        feed.play()
    else:
        recorder.start()
        feed.play(seconds=22)  # into the buffer: no alert yet
        assert wait_for(lambda: recorder.health()["queue"] == 0)
        assert rows(db) == []
        store(db, make_alert(1, camera_id="cam1", created_at=alert_t))
        assert wait_for(lambda: recorder.cameras["cam1"].want_until > 0)
    recorder.stop()
    segments = rows(db)
    assert len(segments) == 1, [(s.start - feed.origin, s.end - feed.origin) for s in segments]
    seg = segments[0]
    assert alert_t - 3 - 12 <= seg.start <= alert_t - 3  # the clip's keyframes: ~10 s apart
    assert alert_t + 3 - 0.5 <= seg.end <= alert_t + 3 + 12  # to the GOP's end after it
    assert seg.alert_count == 1 and seg.mode == "events"


def test_bad_recording_config_says_file_field_and_reason() -> None:
    from shaobing.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as caught:
        parse_config({"cameras": [{"id": "c1", "source": {"url": "rtsp://127.0.0.1:9/x"},
                                   "record": {"mode": "sometimes", "pre_s": -1}}],
                      "recording": {"quota_gb": 0}}, "hub.yaml", Path("."))  # fmt: skip
    text = str(caught.value)
    assert "hub.yaml: cameras[0](id=c1).record.mode: Input should be 'off', 'continuous'" in text
    assert "hub.yaml: cameras[0](id=c1).record.pre_s:" in text
    assert "hub.yaml: recording.quota_gb:" in text
