"""Run an ipycam virtual ONVIF camera on loopback, fed with a looping video clip.

Run with the project's venv python::

    python tests/peers/ipycam_launcher.py --clip PATH --onvif-port P --rtsp-port R \\
        --web-port W [--user U --password PW] [--go2rtc-api-port G --rtmp-port M]

Loopback only, no packet leaves the host:

* ``ipycam.camera.WSDiscoveryServer`` (which binds UDP 3702, joins the WS-Discovery
  multicast group and multicasts Hello/Bye) is replaced by a no-op before start.
* The ONVIF/HTTP server and the native RTSP server, which ipycam binds to all
  interfaces, are bound to 127.0.0.1 instead; ``local_ip`` is 127.0.0.1, so the
  URIs the camera reports point at 127.0.0.1.
* go2rtc is never used: ``go2rtc_api_port`` (probed on 127.0.0.1 at start to
  detect go2rtc) and ``rtmp_port`` default to free ports where nothing listens,
  so ipycam always takes its native RTSP path and two instances never collide.

The main stream is 640x360 and the sub stream 320x180, at the clip's frame rate
(rounded; ipycam takes an integer). Frames are read with OpenCV and pushed at real
time, looping forever (a frame that fails to decode ends the loop: the truncated
tail of a corrupt clip is skipped).

Prints ``READY`` on stdout once ONVIF and RTSP accept connections. On SIGTERM or
SIGINT it stops the camera, kills any ffmpeg child left behind, and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import ipycam.camera as ipycam_camera
import numpy as np
from ipycam import CameraConfig, IPCamera

LOOPBACK = "127.0.0.1"
MAIN_SIZE = (640, 360)
SUB_SIZE = (320, 180)
READY_TIMEOUT_S = 20.0

log = logging.getLogger("ipycam_launcher")


class NoDiscovery:
    """Stands in for ``WSDiscoveryServer``: no socket, no multicast, no Hello/Bye."""

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        pass

    def start(self) -> None:
        """Do nothing (the real one multicasts a Hello)."""

    def stop(self) -> None:
        """Do nothing (the real one multicasts a Bye)."""


class LoopbackTCPServer(ipycam_camera.ReusableThreadingTCPServer):
    """ipycam's HTTP (ONVIF, snapshot, web UI) server, bound to 127.0.0.1 only."""

    def __init__(self, server_address: tuple[str, int], *args: Any, **kwargs: Any) -> None:
        super().__init__((LOOPBACK, server_address[1]), *args, **kwargs)


class LoopbackRTSPServer(ipycam_camera.NativeRTSPServer):
    """ipycam's native RTSP server, bound to 127.0.0.1 only."""

    def __init__(self, port: int = 8554, host: str = LOOPBACK) -> None:
        super().__init__(port=port, host=LOOPBACK)


def confine_to_loopback() -> None:
    """Patch ipycam so nothing it opens is reachable from, or sends to, the network."""
    ipycam_camera.WSDiscoveryServer = NoDiscovery  # type: ignore[misc,assignment]
    ipycam_camera.ReusableThreadingTCPServer = LoopbackTCPServer  # type: ignore[misc]
    ipycam_camera.NativeRTSPServer = LoopbackRTSPServer  # type: ignore[misc]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float) -> bool:
    """True once 127.0.0.1:port accepts TCP connections, False after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def clip_fps(path: Path) -> int:
    """The clip's frame rate rounded to an integer (ipycam wants an int), 25 if unknown."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise SystemExit(f"ipycam_launcher: cannot open clip {path}")
        fps = cap.get(cv2.CAP_PROP_FPS)
    finally:
        cap.release()
    return max(1, round(fps)) if fps and fps > 0 else 25


def build_config(args: argparse.Namespace, fps: int) -> CameraConfig:
    """Camera configuration: loopback, explicit ports, 640x360 main / 320x180 sub."""
    return CameraConfig(
        name=args.name,
        local_ip=LOOPBACK,
        onvif_port=args.onvif_port,
        rtsp_port=args.rtsp_port,
        web_port=args.web_port,
        rtmp_port=args.rtmp_port or free_port(),
        go2rtc_api_port=args.go2rtc_api_port or free_port(),
        username=args.user or "",
        password=args.password or "",
        main_width=MAIN_SIZE[0],
        main_height=MAIN_SIZE[1],
        main_fps=fps,
        main_bitrate="1M",
        sub_width=SUB_SIZE[0],
        sub_height=SUB_SIZE[1],
        sub_fps=fps,
        sub_bitrate="300K",
        hw_accel="cpu",
        show_timestamp=False,
        recording_enabled=False,
        source_type="video_file",
        source_info=args.clip.name,
    )


def feed_frames(camera: IPCamera, clip: Path, stop: threading.Event) -> None:
    """Push the clip's frames into the camera forever (``camera.stream`` paces them)."""
    while not stop.is_set():
        cap = cv2.VideoCapture(str(clip))
        pushed = 0
        try:
            while not stop.is_set():
                ok, frame = cap.read()
                if not ok or frame is None:
                    break
                camera.stream(fit(frame))
                pushed += 1
        finally:
            cap.release()
        if pushed == 0:
            log.error("no frame decoded from %s; retrying in 1 s", clip)
            stop.wait(1.0)


def fit(frame: np.ndarray) -> np.ndarray:
    """The frame at main-stream size."""
    if (frame.shape[1], frame.shape[0]) != MAIN_SIZE:
        frame = cv2.resize(frame, MAIN_SIZE)
    return frame


def kill_children() -> None:
    """Kill and reap every child of this process (ffmpeg encoders ipycam left)."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == me:
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except ProcessLookupError:
                pass
    reap_children(timeout=2.0)


def reap_children(timeout: float) -> None:
    """Collect exited children so none is left a zombie."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return  # no children left
        if pid == 0:
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, required=True)
    parser.add_argument("--onvif-port", type=int, required=True)
    parser.add_argument("--rtsp-port", type=int, required=True)
    parser.add_argument("--web-port", type=int, default=0, help="unused by ipycam 1.3")
    parser.add_argument("--rtmp-port", type=int, default=0, help="0: a free, unused port")
    parser.add_argument("--go2rtc-api-port", type=int, default=0, help="0: a free, unused port")
    parser.add_argument("--user", default=None)
    parser.add_argument("--password", default=None)
    parser.add_argument("--name", default="Shaobing Test Camera")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    if not args.clip.is_file():
        parser.error(f"clip not found: {args.clip}")
    if bool(args.user) != bool(args.password):
        parser.error("--user and --password go together")
    args.web_port = args.web_port or free_port()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="ipycam_launcher %(levelname)s %(name)s: %(message)s")
    confine_to_loopback()
    camera = IPCamera(build_config(args, clip_fps(args.clip)))

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    if not camera.start():
        print("ipycam_launcher: camera failed to start", file=sys.stderr, flush=True)
        return 2
    feeder = threading.Thread(target=feed_frames, args=(camera, args.clip, stop),
                              name="feeder", daemon=True)
    feeder.start()
    try:
        if camera.streaming_mode not in ("native_rtsp", "native_rtsp_webrtc"):
            print(f"ipycam_launcher: no native RTSP (mode {camera.streaming_mode})",
                  file=sys.stderr, flush=True)
            return 2
        for port in (args.onvif_port, args.rtsp_port):
            if not wait_port(port, READY_TIMEOUT_S):
                print(f"ipycam_launcher: port {port} not listening", file=sys.stderr, flush=True)
                return 2
        print("READY", flush=True)
        while not stop.wait(0.5):
            pass
        return 0
    finally:
        stop.set()
        feeder.join(timeout=3.0)
        camera.stop()
        kill_children()


if __name__ == "__main__":
    sys.exit(main())
