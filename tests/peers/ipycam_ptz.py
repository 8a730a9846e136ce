"""An ipycam virtual ONVIF camera for the PTZ and WS-Discovery tests (issue 27).

Run with the project's venv python, normally inside a network namespace the test
created (``ip netns exec NS python tests/peers/ipycam_ptz.py ...``)::

    python tests/peers/ipycam_ptz.py --ip IP --onvif-port P --workdir DIR
        [--user U --password PW] [--discovery] [--name NAME]

Differences from ``ipycam_launcher.py`` (the streaming camera):

* ONVIF/HTTP is bound to ``--ip`` (127.0.0.1 by default) and the camera reports
  URLs on that address.
* ``--discovery`` keeps ipycam's real WS-Discovery server (UDP 3702, the multicast
  group joined on the interface holding ``--ip``, Hello/Bye). Only ever use it
  inside a network namespace: the tests run it behind a veth pair of their own.
  Without it discovery is replaced by a no-op as in ``ipycam_launcher.py``.
* No video clip and no RTSP requirement: a synthetic frame is pushed (PTZ and
  discovery need ONVIF, not a stream; ipycam falls back to MJPEG without ffmpeg).
* The working directory is ``--workdir``: ipycam keeps its presets in
  ``./ptz_presets.json``, which must not land in the repository.

Prints ``READY`` once ONVIF accepts connections; SIGTERM/SIGINT stops it.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import ipycam.camera as ipycam_camera
import numpy as np
from ipycam import CameraConfig, IPCamera

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.peers.ipycam_launcher import NoDiscovery, free_port  # noqa: E402


def confine(ip: str, discovery: bool) -> None:
    """Bind ipycam's HTTP and RTSP servers to ``ip``; no discovery unless asked."""

    class BoundTCPServer(ipycam_camera.ReusableThreadingTCPServer):  # type: ignore[misc,name-defined]
        def __init__(self, server_address: tuple[str, int], *args: Any, **kwargs: Any) -> None:
            super().__init__((ip, server_address[1]), *args, **kwargs)

    class BoundRTSPServer(ipycam_camera.NativeRTSPServer):  # type: ignore[misc,name-defined]
        def __init__(self, port: int = 8554, host: str = ip) -> None:
            super().__init__(port=port, host=ip)

    ipycam_camera.ReusableThreadingTCPServer = BoundTCPServer  # type: ignore[misc]
    ipycam_camera.NativeRTSPServer = BoundRTSPServer  # type: ignore[misc]
    if not discovery:
        ipycam_camera.WSDiscoveryServer = NoDiscovery  # type: ignore[misc,assignment]


def wait_port(ip: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((ip, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ip", default="127.0.0.1")
    parser.add_argument("--onvif-port", type=int, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--user", default="")
    parser.add_argument("--password", default="")
    parser.add_argument("--name", default="Shaobing PTZ Camera")
    parser.add_argument("--discovery", action="store_true")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(args.workdir)
    confine(args.ip, args.discovery)
    config = CameraConfig(
        name=args.name, local_ip=args.ip, onvif_port=args.onvif_port,
        rtsp_port=free_port(), web_port=free_port(), rtmp_port=free_port(),
        go2rtc_api_port=free_port(), username=args.user, password=args.password,
        main_width=320, main_height=180, main_fps=5, sub_width=160, sub_height=90, sub_fps=5,
        hw_accel="cpu", show_timestamp=False, recording_enabled=False,
    )  # fmt: skip
    camera = IPCamera(config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if not camera.start():
        print("ipycam_ptz: camera failed to start", file=sys.stderr, flush=True)
        return 2
    frame = np.zeros((180, 320, 3), np.uint8)
    try:
        if not wait_port(args.ip, args.onvif_port, 20.0):
            print(f"ipycam_ptz: ONVIF port {args.onvif_port} not listening", file=sys.stderr)
            return 2
        print("READY", flush=True)
        while not stop.wait(0.2):
            camera.stream(frame)
        return 0
    finally:
        camera.stop()


if __name__ == "__main__":
    sys.exit(main())
