"""Live view: glass-to-glass latency and the hub's CPU per live tile.

    .venv/bin/python -m bench.bench_live [--viewers 16] [--seconds 15] [--stream main|sub]

A real GStreamer RTSP camera (the crosswalk clip, 640x360 H.264) paints the wall
clock into every frame (32 luma blocks at the top left) before encoding; a real hub
reads it and serves ``/api/cameras/{id}/live.flv``. A probe client decodes that
stream (FFmpeg, no buffering) and compares each frame's painted time with the clock
when it is decoded: camera encoder → RTSP → hub (demux, remux to FLV) → HTTP → decoder.
A browser adds its Media Source buffer on top (mpegts.js with latency chasing: a few
hundred ms). Then ``--viewers`` clients read the stream at once (bytes only, as
browsers would; decoding is theirs) and the hub's CPU is compared with none.
Prints the machine and the figures. ``--stream sub``: the same measures on the camera's
sub stream (``source.sub_url``, here a second RTSP session of the same mount), which the
API process opens while it is watched (its own demux thread, ingest/substream.py).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path

import av
import httpx
import numpy as np

from core.assets import assets_dir
from ingest.substream import LINGER_S
from tests.hubproc import HubProcess
from tests.peers.procs import RtspServer

ASSETS = assets_dir()
STAMP_BITS, STAMP_BLOCK = 32, 16


def read_stamp(frame: av.VideoFrame) -> int | None:
    """The painted wall clock (ms, low 32 bits), or None if the blocks are unreadable."""
    luma = frame.to_ndarray(format="gray")
    row = luma[STAMP_BLOCK // 2, : STAMP_BITS * STAMP_BLOCK]
    centres = row[STAMP_BLOCK // 2 :: STAMP_BLOCK][:STAMP_BITS].astype(int)
    if np.any((centres > 90) & (centres < 160)):  # neither black nor white: not a stamp
        return None
    value = 0
    for c in centres:
        value = (value << 1) | int(c >= 128)
    return value


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its threads (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def hub_cpu(pid: int, seconds: float) -> float:
    start, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - start) / (time.monotonic() - t0)


def probe_latency(url: str, token: str, seconds: float) -> list[float]:
    """Latency (s) of each decoded frame after the first 3 s (the start-up GOP burst)."""
    out: list[float] = []
    options = {"headers": f"Authorization: Bearer {token}\r\n", "fflags": "nobuffer",
               "probesize": "32768", "analyzeduration": "0"}  # fmt: skip
    with av.open(url, format="flv", options=options, timeout=10) as container:
        start = time.monotonic()
        for frame in container.decode(video=0):
            now_ms = int(time.time() * 1000) & 0xFFFFFFFF
            stamp = read_stamp(frame)
            if time.monotonic() - start > 3 and stamp is not None:
                out.append(((now_ms - stamp) & 0xFFFFFFFF) / 1000)
            if time.monotonic() - start > 3 + seconds:
                break
    return out


def reader(url: str, headers: dict[str, str], stop: threading.Event, counts: list[int]) -> None:
    with httpx.stream("GET", url, headers=headers, timeout=10) as resp:
        for chunk in resp.iter_bytes():
            counts.append(len(chunk))
            if stop.is_set():
                return


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--stream", choices=("main", "sub"), default="main")
    args = parser.parse_args()
    clip = ASSETS / "videos" / "crosswalk_people.mp4"
    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cores, "
          f"{platform.python_implementation()} {platform.python_version()}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, RtspServer({"cam": clip}, stamp=True) as camera:
        hub = HubProcess(Path(tmp), {
            "detector": {"model": str(ASSETS / "models" / "yolox_nano.onnx")},
            "cameras": [{"id": "live", "detect_fps": 5,
                         "source": {"url": camera.url("cam"), "sub_url": camera.url("cam")}}],
        })  # fmt: skip
        hub.start()
        try:
            hub.wait("camera online", lambda: hub.camera("live")["status"]["state"] == "online",
                     30)  # fmt: skip
            url = f"{hub.base}/api/cameras/live/live.flv?stream={args.stream}"
            token = hub.auth()["Authorization"].split()[1]
            latencies = probe_latency(url, token, args.seconds)
            assert hub.proc is not None
            if args.stream == "sub":  # the probe's sub stream closes once it lingered
                time.sleep(LINGER_S + 2)
            idle = hub_cpu(hub.proc.pid, args.seconds)
            stop, counts = threading.Event(), [0]
            threads = [threading.Thread(target=reader, args=(url, hub.auth(), stop, counts),
                                        daemon=True) for _ in range(args.viewers)]  # fmt: skip
            for t in threads:
                t.start()
            time.sleep(3)
            busy = hub_cpu(hub.proc.pid, args.seconds)
            viewers = hub.camera("live")["status"]["live_viewers"]
            stop.set()
        finally:
            hub.stop()
    lat = sorted(latencies)
    p95 = lat[int(0.95 * (len(lat) - 1))] if lat else float("nan")
    print(f"{args.stream} stream: glass to decoded frame (camera → RTSP → hub → HTTP-FLV → "
          f"decoder), {len(lat)} "
          f"frames: p50 {statistics.median(lat) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
          f"max {lat[-1] * 1000:.0f} ms")  # fmt: skip
    print(f"hub CPU: {idle * 100:.1f} % of a core without viewers (ingest + analysis at 5 fps); "
          f"{busy * 100:.1f} % with {viewers} live viewers → "
          f"{(busy - idle) / max(1, args.viewers) * 100:.2f} % of a core per tile; "
          f"{sum(counts) / 1e6:.1f} MB sent")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
