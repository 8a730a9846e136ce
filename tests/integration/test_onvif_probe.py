"""camera_registry.onvif_probe against a real ONVIF device (ipycam on loopback)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from camera_registry.onvif_probe import OnvifProbeError, probe_onvif, probe_onvif_sync
from camera_registry.urls import url_host, with_credentials
from tests.conftest import IPYCAM_PASSWORD, IPYCAM_USER
from tests.peers.procs import IpyCamProcess, free_port, read_frames

pytestmark = pytest.mark.slow


async def test_probe_reports_identity_profiles_and_uris(ipycam_camera: IpyCamProcess) -> None:
    result = await probe_onvif(
        "127.0.0.1", ipycam_camera.onvif_port, IPYCAM_USER, IPYCAM_PASSWORD, timeout=10
    )
    assert (result.manufacturer, result.model) == ("PythonCam", "VirtualCam-1")
    assert result.firmware and result.serial and result.hardware_id
    assert len(result.profiles) >= 2
    sizes = {(p.width, p.height) for p in result.profiles}
    assert {(640, 360), (320, 180)} <= sizes
    assert all(p.encoding == "H264" and p.fps == 24 for p in result.profiles)
    assert result.main_uri == f"rtsp://127.0.0.1:{ipycam_camera.rtsp_port}/video_main"
    assert result.sub_uri == f"rtsp://127.0.0.1:{ipycam_camera.rtsp_port}/video_sub"
    assert result.snapshot_uri == f"http://127.0.0.1:{ipycam_camera.onvif_port}/snapshot.jpg"
    assert result.rewritten is False
    for uri in (result.main_uri, result.sub_uri, result.snapshot_uri):
        assert "@" not in uri and IPYCAM_PASSWORD not in uri


async def test_main_uri_and_snapshot_are_usable(ipycam_camera: IpyCamProcess) -> None:
    result = await probe_onvif("127.0.0.1", ipycam_camera.onvif_port, IPYCAM_USER, IPYCAM_PASSWORD)
    assert result.main_uri and result.snapshot_uri
    # ipycam's RTSP server ignores credentials; a real camera needs them in the URL.
    frames = read_frames(with_credentials(result.main_uri, IPYCAM_USER, IPYCAM_PASSWORD), 3)
    assert (frames[-1].width, frames[-1].height) == (640, 360)
    # The snapshot is behind HTTP Basic auth when the camera has credentials.
    assert httpx.get(result.snapshot_uri, timeout=5).status_code == 401
    snap = httpx.get(result.snapshot_uri, auth=(IPYCAM_USER, IPYCAM_PASSWORD), timeout=5)
    assert snap.status_code == 200 and snap.content[:2] == b"\xff\xd8"  # JPEG


async def test_nat_rewrites_reported_host(ipycam_camera: IpyCamProcess) -> None:
    """Reached as "localhost", the device still reports 127.0.0.1: URIs are rewritten."""
    result = await probe_onvif("localhost", ipycam_camera.onvif_port, IPYCAM_USER, IPYCAM_PASSWORD)
    assert result.rewritten is True
    assert result.main_uri == f"rtsp://localhost:{ipycam_camera.rtsp_port}/video_main"
    assert result.sub_uri == f"rtsp://localhost:{ipycam_camera.rtsp_port}/video_sub"
    assert url_host(result.snapshot_uri or "") == "localhost"
    assert all(url_host(p.stream_uri or "") == "localhost" for p in result.profiles)


async def test_profile_selection_by_name(ipycam_camera: IpyCamProcess) -> None:
    result = await probe_onvif(
        "127.0.0.1", ipycam_camera.onvif_port, IPYCAM_USER, IPYCAM_PASSWORD, profile="substream"
    )
    assert result.main_uri and result.main_uri.endswith("/video_sub")
    with pytest.raises(OnvifProbeError, match="no profile named 'nope'"):
        await probe_onvif(
            "127.0.0.1", ipycam_camera.onvif_port, IPYCAM_USER, IPYCAM_PASSWORD, profile="nope"
        )


async def test_wrong_password_is_an_auth_error(ipycam_camera: IpyCamProcess) -> None:
    wrong = "Not-The-Pw-42"
    with pytest.raises(OnvifProbeError) as info:
        await probe_onvif("127.0.0.1", ipycam_camera.onvif_port, IPYCAM_USER, wrong)
    error = info.value
    assert error.kind == "auth"
    assert f"127.0.0.1:{ipycam_camera.onvif_port}" in str(error)
    assert "authentication failed" in str(error)
    assert wrong not in str(error) and wrong not in repr(error)


async def test_missing_credentials_are_refused(ipycam_camera: IpyCamProcess) -> None:
    with pytest.raises(OnvifProbeError) as info:
        await probe_onvif("127.0.0.1", ipycam_camera.onvif_port, None, None)
    assert info.value.kind == "auth"


def test_unreachable_port_fails_fast() -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(OnvifProbeError) as info:
        probe_onvif_sync("127.0.0.1", port, "admin", "whatever-pw", timeout=5)
    assert time.monotonic() - started < 5
    assert info.value.kind == "unreachable"
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "whatever-pw" not in str(info.value)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections but never answers (a hung device)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


def test_silent_device_times_out(silent_server: int) -> None:
    started = time.monotonic()
    with pytest.raises(OnvifProbeError) as info:
        probe_onvif_sync("127.0.0.1", silent_server, "admin", "pw-123", timeout=1.5)
    elapsed = time.monotonic() - started
    assert info.value.kind == "timeout"
    assert 1.4 < elapsed < 3.0, f"took {elapsed:.2f} s"


async def test_camera_without_auth(ipycam_factory: Callable[..., IpyCamProcess]) -> None:
    camera = ipycam_factory("highway_divided.mp4")
    result = await probe_onvif("127.0.0.1", camera.onvif_port, None, None)
    assert result.main_uri == camera.main_url
    assert [p.fps for p in result.profiles] == [30, 30]  # 29.97 fps clip, rounded by ipycam
