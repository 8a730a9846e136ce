"""Stream readers against real sources: file (paced, looped), HTTP, RTSP over TCP and UDP."""

from __future__ import annotations

import functools
import http.server
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from camera_registry.config import IngestConfig, SourceConfig
from camera_registry.status import CameraStatus, StatusBoard
from ingest.reader import SampledFrame, Sampler, StreamReader, analysis_size
from tests.peers.procs import RtspServer
from tests.peers.silent import SilentServer


class Collector:
    def __init__(self) -> None:
        self.frames: list[SampledFrame] = []
        self.event = threading.Event()
        self.want = 0

    def __call__(self, frame: SampledFrame) -> None:
        self.frames.append(frame)
        if len(self.frames) >= self.want:
            self.event.set()


def read(
    url: str, want: int, timeout: float = 20, **source_kw: object
) -> tuple[Collector, CameraStatus, float]:
    """Read until ``want`` frames arrived; the status is as it was then (not after stop)."""
    collector = Collector()
    collector.want = want
    status = StatusBoard()
    source = SourceConfig(url=url, **source_kw)  # type: ignore[arg-type]
    reader = StreamReader("cam", lambda: url, source, IngestConfig(), detect_fps=5,
                          box=(416, 416), on_frame=collector, status=status)  # fmt: skip
    started = time.monotonic()
    reader.start()
    try:
        assert collector.event.wait(timeout), f"got {len(collector.frames)} of {want} frames"
        elapsed = time.monotonic() - started
        seen = status.snapshot("cam")
        assert seen is not None
    finally:
        reader.stop()
        reader.join(5)
    return collector, seen, elapsed


def test_sampler_follows_stream_time() -> None:
    s = Sampler(5)
    taken = [t / 25 for t in range(100) if s.take(t / 25)]  # 4 s of 25 fps
    assert len(taken) == 20
    assert all(abs(b - a - 0.2) < 0.05 for a, b in zip(taken, taken[1:], strict=False))


def test_analysis_size_keeps_aspect_and_never_upscales() -> None:
    assert analysis_size(640, 360, (416, 416)) == (416, 234)
    assert analysis_size(320, 180, (416, 416)) == (320, 180)
    assert analysis_size(1280, 720, (640, 640)) == (640, 360)


def test_file_is_paced_in_real_time_and_loops(videos_dir: Path) -> None:
    # highway_receding_720p.mp4 is 6.7 s long: 40 frames at 5 fps need a loop and ~8 s.
    frames, status, elapsed = read(str(videos_dir / "highway_receding_720p.mp4"), 40, loop=True)
    assert elapsed >= 7.0
    pts = [f.pts for f in frames.frames]
    assert min(b - a for a, b in zip(pts, pts[1:], strict=False)) < 0  # the clip restarted
    first = frames.frames[0]
    assert first.source_size == (1280, 720) and first.image.shape == (234, 416, 3)
    assert status.state == "online"


def test_file_without_realtime_is_fast_and_finishes(videos_dir: Path) -> None:
    frames, status, elapsed = read(str(videos_dir / "highway_divided.mp4"), 50, realtime=False)
    assert elapsed < 11.4  # faster than the clip's own 11.4 s
    assert len(frames.frames) >= 50


@pytest.fixture
def http_server(videos_dir: Path, tmp_path: Path) -> Iterator[str]:
    """Serves the crossing clip as an MPEG-TS stream over HTTP (as HTTP-TS cameras do)."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(videos_dir / "crosswalk_people.mp4"), "-c", "copy",
         "-f", "mpegts", str(tmp_path / "live.ts")],
        check=True,
    )  # fmt: skip
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_source(http_server: str) -> None:
    frames, status, _ = read(f"{http_server}/live.ts", 10)
    assert len(frames.frames) >= 10 and status.codec == "h264"


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_rtsp_transports(rtsp_server: RtspServer, transport: str) -> None:
    frames, status, _ = read(rtsp_server.url("highway"), 10, transport=transport)
    st = status
    assert st.state == "online" and st.resolution == (640, 360)
    ts = [f.t for f in frames.frames]
    assert ts == sorted(ts)
    # 5 fps sampled from a ~30 fps stream: about 0.2 s apart on the rule clock.
    gaps = [b - a for a, b in zip(ts[1:], ts[2:], strict=False)]
    assert 0.1 < sum(gaps) / len(gaps) < 0.4


def test_a_reader_stopped_in_a_hung_handshake_writes_nothing_afterwards() -> None:
    """A patrol visit stops a camera that hangs its RTSP handshake without waiting for
    the reader: when FFmpeg's open timeout ends the handshake, the stopped reader leaves
    without recording a failure (the camera's status is the patrol's, or the next
    visit's)."""
    silent = SilentServer()
    status = StatusBoard()
    reader = StreamReader(
        "hung", lambda: f"rtsp://127.0.0.1:{silent.port}/stream", SourceConfig(url="rtsp://x"),
        IngestConfig(open_timeout_s=2, read_timeout_s=2), detect_fps=5, box=(416, 416),
        on_frame=lambda f: None, status=status,
    )  # fmt: skip
    try:
        reader.start()
        deadline = time.monotonic() + 10
        while silent.accepted == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert silent.accepted == 1  # connected, handshake hanging
        before = status.get("hung").state
        reader.stop()
        reader.join(30)  # FFmpeg's open timeout ends the handshake
        assert not reader.is_alive()
        after = status.get("hung")
        assert after.state == before and after.last_error is None and after.reconnects == 0
        # unstopped, the same hang is recorded as a failure (what the check above rules out)
        other = StreamReader(
            "hung2", lambda: f"rtsp://127.0.0.1:{silent.port}/stream",
            SourceConfig(url="rtsp://x"), IngestConfig(open_timeout_s=2, read_timeout_s=2),
            detect_fps=5, box=(416, 416), on_frame=lambda f: None, status=status,
        )  # fmt: skip
        other.start()
        deadline = time.monotonic() + 30
        while status.get("hung2").last_error is None and time.monotonic() < deadline:
            time.sleep(0.1)
        other.stop()
        other.join(30)
        assert status.get("hung2").state == "offline"
    finally:
        silent.close()
