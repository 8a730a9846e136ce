"""The test peers themselves: RTSP server (GStreamer) and HTTP receiver."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import httpx
import pytest

from tests.peers.procs import PEERS_DIR, FrameInfo, RtspServer, free_port, read_frames
from tests.peers.receiver import Receiver

pytestmark = pytest.mark.slow


def assert_live_frames(frames: list[FrameInfo], count: int) -> None:
    """``count`` decoded 640x360 frames with strictly increasing timestamps."""
    assert len(frames) == count
    assert all((f.width, f.height) == (640, 360) for f in frames)
    # FFmpeg's RTSP demuxer gives the very first H.264 frame of a session no pts
    # (seen with real cameras too); every later frame must have one.
    pts = [f.pts for f in frames[1:]]
    assert all(p is not None for p in pts), f"frames without pts: {pts}"
    assert all(b > a for a, b in zip(pts, pts[1:], strict=False)), f"non-increasing pts: {pts}"


def test_rtsp_two_mounts_two_clients(rtsp_server: RtspServer) -> None:
    """Two clients share one mount while a third reads another; all get live frames."""
    urls = [rtsp_server.url("crosswalk"), rtsp_server.url("crosswalk"), rtsp_server.url("highway")]
    with ThreadPoolExecutor(len(urls)) as pool:
        results = list(pool.map(lambda u: read_frames(u, 30), urls))
    for frames in results:
        assert_live_frames(frames, 30)
        assert frames[0].key_frame  # decoding starts on a key frame


def test_rtsp_corrupt_clip_is_served(rtsp_server: RtspServer) -> None:
    """street_parked_cars.mp4 (truncated tail) is served like the others."""
    assert_live_frames(read_frames(rtsp_server.url("street"), 10), 10)


def test_rtsp_loops_with_monotonic_timestamps(
    rtsp_server_factory: Callable[..., RtspServer], videos_dir: Path, tmp_path: Path
) -> None:
    """A 1 s clip, read for ~3 s: loops without a timestamp going back, at real time."""
    clip = make_clip(videos_dir, tmp_path / "short.mp4", seconds=1.0)
    server = rtsp_server_factory({"short": clip})
    frames = read_frames(server.url("short"), 90)  # 29.97 fps: 3 loops
    assert_live_frames(frames, 90)
    span = frames[-1].time - frames[1].time  # type: ignore[operator]
    assert 2.5 < span < 3.5, f"89 frames at 29.97 fps span {span:.2f} s"


def test_rtsp_truncated_tail_loops(
    rtsp_server_factory: Callable[..., RtspServer], videos_dir: Path, tmp_path: Path
) -> None:
    """A clip cut mid-frame (corrupt tail) still loops: the server neither stops nor dies."""
    clip = make_clip(videos_dir, tmp_path / "cut.mp4", seconds=1.0)
    data = clip.read_bytes()
    clip.write_bytes(data[: int(len(data) * 0.8)])
    server = rtsp_server_factory({"cut": clip})
    assert_live_frames(read_frames(server.url("cut"), 60), 60)
    assert server.running


def test_rtsp_stop_then_restart_on_same_port(rtsp_server: RtspServer) -> None:
    """Camera loss: killed server refuses clients; restarted on the same port it serves."""
    url = rtsp_server.url("highway")
    assert_live_frames(read_frames(url, 5), 5)
    rtsp_server.kill()
    started = time.monotonic()
    with pytest.raises((av.error.FFmpegError, OSError)):
        read_frames(url, 1, timeout_s=3.0)
    assert time.monotonic() - started < 5.0
    rtsp_server.start()
    assert rtsp_server.url("highway") == url
    assert_live_frames(read_frames(url, 5), 5)


def test_receiver_records_and_answers_status(receiver: Receiver) -> None:
    """POSTs are recorded with headers, body and path; status is settable."""
    answer = httpx.post(
        f"{receiver.url}/hooks/alert",
        json={"rule": "intrusion"},
        headers={"X-Signature": "abc"},
        timeout=5,
    )
    assert answer.status_code == 200
    headers, body, path = receiver.wait_for(1)[0]
    assert path == "/hooks/alert"
    assert json.loads(body) == {"rule": "intrusion"}
    assert headers["X-Signature"] == "abc"
    assert receiver.methods == ["POST"]

    receiver.status = 503
    assert httpx.post(f"{receiver.url}/hooks/alert", content=b"x", timeout=5).status_code == 503
    assert len(receiver.requests) == 2


def test_receiver_restarts_on_same_port(receiver: Receiver) -> None:
    """stop() makes requests fail; start() serves again on the same port."""
    url = receiver.url
    httpx.post(url, content=b"1", timeout=5)
    receiver.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.post(url, content=b"2", timeout=2)
    receiver.start()
    assert receiver.url == url
    assert httpx.post(url, content=b"3", timeout=5).status_code == 200
    assert [body for _h, body, _p in receiver.requests] == [b"1", b"3"]


def test_receiver_script_writes_json_lines(tmp_path: Path) -> None:
    """``python tests/peers/receiver.py --port P --out FILE`` logs one JSON line a request."""
    port, out = free_port(), tmp_path / "requests.jsonl"
    proc = subprocess.Popen(
        [sys.executable, str(PEERS_DIR / "receiver.py"), "--port", str(port), "--out", str(out)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(2)]
        assert lines[-1] == "READY"
        httpx.post(f"http://127.0.0.1:{port}/x", json={"a": 1}, timeout=5)
        record = json.loads(out.read_text().splitlines()[0])
        assert record["path"] == "/x" and json.loads(record["body"]) == {"a": 1}
        assert record["method"] == "POST"
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0


def make_clip(videos_dir: Path, path: Path, seconds: float) -> Path:
    """The first ``seconds`` of highway_divided.mp4, re-encoded (moov first) into ``path``."""
    cmd = [
        "ffmpeg",
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        "-i",
        str(videos_dir / "highway_divided.mp4"),
        "-t",
        str(seconds),
        "-an",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "10",
        "-movflags",
        "+faststart",
        str(path),
    ]
    subprocess.run(cmd, check=True, timeout=60)
    return path
