"""Shared pytest fixtures: asset paths and real network peers on 127.0.0.1.

Peers (see tests/peers/): a GStreamer RTSP server looping real clips, an ipycam
virtual ONVIF camera, and an HTTP receiver. Missing system pieces (Debian's
python3 with GStreamer, ffmpeg, the asset clips) make the tests that need them
fail with a clear message; they are never skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from core.assets import assets_dir
from tests.peers.procs import (
    IpyCamProcess,
    PeerError,
    RtspServer,
    check_ffmpeg,
    check_gst_python,
)
from tests.peers.receiver import Receiver

#: Credentials of the ``ipycam_camera`` fixture.
IPYCAM_USER = "admin"
IPYCAM_PASSWORD = "Secr3t-pw"

#: Mount name -> clip file of the ``rtsp_server`` fixture.
RTSP_MOUNTS = {
    "crosswalk": "crosswalk_people.mp4",
    "highway": "highway_divided.mp4",
    "street": "street_parked_cars.mp4",
}


def _assets_root() -> Path:
    """``$SHAOBING_ASSETS`` or ``<checkout>/../shared/assets``."""
    return assets_dir()


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        pytest.fail(f"{what} directory not found: {path} (set SHAOBING_ASSETS to the folder "
                    "holding videos/ and models/)", pytrace=False)
    return path


def _require(check: Callable[[], None]) -> None:
    """Run a system check; fail (never skip) the test with its message."""
    try:
        check()
    except PeerError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def videos_dir() -> Path:
    """Folder of the real test clips (see INVENTORY.md there)."""
    return _require_dir(_assets_root() / "videos", "test videos")


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """Folder of the shared detector models."""
    return _require_dir(_assets_root() / "models", "models")


@pytest.fixture(scope="session")
def _gst_ok() -> None:
    _require(check_gst_python)


@pytest.fixture(scope="session")
def _ffmpeg_ok() -> None:
    _require(check_ffmpeg)


@pytest.fixture
def rtsp_server_factory(
    videos_dir: Path, _gst_ok: None
) -> Iterator[Callable[..., RtspServer]]:
    """Start RTSP servers: ``factory({"cam1": "crosswalk_people.mp4"}, port=None)``.

    Clip names are resolved against ``videos_dir`` (absolute paths work too). The
    servers are started and READY on return, and stopped after the test.
    """
    servers: list[RtspServer] = []

    def make(mounts: Mapping[str, str | os.PathLike[str]], port: int | None = None) -> RtspServer:
        resolved = {name: videos_dir / clip for name, clip in mounts.items()}
        server = RtspServer(resolved, port=port)
        servers.append(server)
        try:
            return server.start()  # type: ignore[return-value]
        except PeerError as exc:
            pytest.fail(str(exc), pytrace=False)

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def rtsp_server(rtsp_server_factory: Callable[..., RtspServer]) -> RtspServer:
    """A running RTSP server with mounts ``crosswalk``, ``highway`` and ``street``
    (see RTSP_MOUNTS): ``rtsp_server.url("highway")``. Function-scoped, so a test
    may stop, kill or restart it."""
    return rtsp_server_factory(RTSP_MOUNTS)


@pytest.fixture
def ipycam_factory(
    videos_dir: Path, _ffmpeg_ok: None
) -> Iterator[Callable[..., IpyCamProcess]]:
    """Start ipycam cameras: ``factory("crosswalk_people.mp4", username=None,
    password=None)``; stopped after the test."""
    cameras: list[IpyCamProcess] = []

    def make(clip: str | os.PathLike[str] = "crosswalk_people.mp4",
             username: str | None = None, password: str | None = None) -> IpyCamProcess:
        camera = IpyCamProcess(videos_dir / clip, username=username, password=password)
        cameras.append(camera)
        try:
            return camera.start()  # type: ignore[return-value]
        except PeerError as exc:
            pytest.fail(str(exc), pytrace=False)

    yield make
    for camera in cameras:
        camera.stop()


@pytest.fixture(scope="session")
def ipycam_camera(videos_dir: Path, _ffmpeg_ok: None) -> Iterator[IpyCamProcess]:
    """A session-wide ipycam ONVIF camera looping crosswalk_people.mp4, user
    ``admin`` / password ``Secr3t-pw`` (IPYCAM_USER / IPYCAM_PASSWORD). Shared:
    do not stop it; use ``ipycam_factory`` for a camera a test controls."""
    camera = IpyCamProcess(videos_dir / "crosswalk_people.mp4",
                           username=IPYCAM_USER, password=IPYCAM_PASSWORD)
    try:
        camera.start()
    except PeerError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield camera
    camera.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A started HTTP receiver on 127.0.0.1 (``receiver.url``, ``.requests``,
    ``.status``); stopped after the test."""
    rx = Receiver().start()
    yield rx
    rx.stop()
