"""GB/T 28181 against real SIPp peers: a device registers with digest, keeps alive,
answers the catalog query (two pages, GB2312) and an INVITE (PS over RTP from a real
clip); the catalog becomes cameras with their area; the stream decodes."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gb28181.config import SipConfig
from gb28181.registry import Changes
from gb28181.server import SipServer
from tests.peers import sipp as peers

pytestmark = pytest.mark.slow  # real SIPp peers

DEVICE = "34020000001180000001"
PLATFORM = "34020000002000000001"
DOMAIN = "3402000000"
PASSWORD = "Gb-Secr3t"


def wait_for(check: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Recorder:
    """A ChangeSink that keeps every change (the camera-registry sink is tested apart)."""

    def __init__(self) -> None:
        self.changes: list[Changes] = []

    def apply(self, changes: Changes) -> None:
        self.changes.append(changes)


def sip_config(**over: object) -> SipConfig:
    data: dict[str, object] = dict(
        enabled=True, id=PLATFORM, domain=DOMAIN, host="127.0.0.1", port=0,
        transports=["udp", "tcp"], password=PASSWORD, keepalive_interval_s=0.5,
        keepalive_misses=3, rtp_port_min=41000, rtp_port_max=41100,
    )  # fmt: skip
    data.update(over)
    return SipConfig.model_validate(data)


@pytest.fixture()
def server() -> Iterator[SipServer]:
    srv = SipServer(sip_config(), Recorder())
    srv.start()
    yield srv
    srv.stop()


def test_device_registers_keeps_alive_and_catalog_is_collected(server: SipServer) -> None:
    dev = peers.start_device(server.udp_port, device_id=DEVICE, password=PASSWORD,
                             platform_id=PLATFORM, domain=DOMAIN)  # fmt: skip
    try:
        wait_for(lambda: DEVICE in server.registry.devices, 10, "the device to register")
        device = server.registry.devices[DEVICE]
        assert device.state == "online"
        wait_for(lambda: len(device.channels) == 3, 10, "the catalog's 3 items")
        wait_for(lambda: device.last_keepalive is not None, 5, "a keepalive")
        names = {c.id: c.name for c in device.channels.values()}
        assert names["34150201001310000001"] == "东门路口"  # GB2312 on the wire
        assert device.channels["34150200001320000002"].online is False
        assert {c.id for c in device.video_channels()} == {
            "34150201001310000001", "34150200001320000002"}
        wait_for(lambda: device.info.get("Manufacturer") == "Hikvision", 5, "DeviceInfo")
        assert device.info["DeviceName"] == "东门硬盘录像机"
        wait_for(lambda: device.status.get("Online") == "ONLINE", 5, "DeviceStatus")
        assert device.status["Record"] == "OFF" and device.status["Encode"] == "ON"
        assert dev.alive(), dev.logs()
    finally:
        dev.stop()
    # Silent now: 3 missed keepalives (0.5 s each) make it offline, channels too.
    wait_for(lambda: server.registry.devices[DEVICE].state == "offline", 6, "offline")
    sink = server.sink
    assert isinstance(sink, Recorder)
    wait_for(lambda: any(DEVICE in c.went_offline for c in sink.changes), 3, "offline change")
    last = [c for c in sink.changes if DEVICE in c.went_offline][-1]
    assert last.online == {"34150201001310000001": False, "34150200001320000002": False,
                           "34150200002150000001": False}


def test_wrong_password_is_refused(server: SipServer) -> None:
    dev = peers.start_device(server.udp_port, device_id=DEVICE, password="not-it",
                             platform_id=PLATFORM, domain=DOMAIN)  # fmt: skip
    try:
        wait_for(lambda: server.counters.get("refused_auth", 0) >= 1, 10, "a 403")
        assert DEVICE not in server.registry.devices
    finally:
        dev.stop()


def test_unknown_device_refused_when_not_admitted() -> None:
    cfg = sip_config(admit_unknown=False, devices=[{"id": "34020000001320000099",
                                                    "password": "x-own"}])  # fmt: skip
    srv = SipServer(cfg, Recorder())
    srv.start()
    dev = peers.start_device(srv.udp_port, device_id=DEVICE, password=PASSWORD,
                             platform_id=PLATFORM, domain=DOMAIN)  # fmt: skip
    try:
        wait_for(lambda: srv.counters.get("refused_unknown_device", 0) >= 1, 10, "a 403")
        assert DEVICE not in srv.registry.devices
    finally:
        dev.stop()
        srv.stop()


def test_tcp_device_registers(server: SipServer) -> None:
    dev = peers.start_device(server.tcp_port, device_id=DEVICE, password=PASSWORD,
                             platform_id=PLATFORM, domain=DOMAIN, transport="t1")  # fmt: skip
    try:
        wait_for(lambda: len(server.registry.devices.get(DEVICE, _NoDev).channels) == 3, 10,
                 "registration and catalog over TCP")  # fmt: skip
        assert server.registry.devices[DEVICE].transport == "tcp"
    finally:
        dev.stop()


class _NoDev:
    channels: dict[str, object] = {}


_ = Path


# -- streams on demand -------------------------------------------------------------------

CHANNEL = "34150201001310000001"


def _clip(videos: Path) -> Path:
    return videos / "crosswalk_people.mp4"


def _first_frame(path: Path):  # type: ignore[no-untyped-def]
    import av

    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            return frame.to_ndarray(format="bgr24")
    raise AssertionError("no frame")


@pytest.mark.parametrize("rtp_transport", ["udp", "tcp_passive"])
def test_invite_yields_the_clips_frames_through_the_reader(videos_dir: Path,
                                                           rtp_transport: str) -> None:
    import numpy as np

    from camera_registry.config import IngestConfig, SourceConfig
    from camera_registry.status import StatusBoard
    from gb28181.component import GbPlatform
    from ingest.reader import SampledFrame, StreamReader

    clip = _clip(videos_dir)
    platform = GbPlatform(sip_config(rtp_transport=rtp_transport), sink=Recorder())
    platform.start()
    server = platform.server
    # UDP: the sender also swaps neighbouring packets and repeats every 7th under another
    # SSRC; the reorderer and the SSRC filter must give the clip's frames all the same.
    extra = ("--tcp",) if rtp_transport == "tcp_passive" else ("--reorder",
                                                                "--wrong-ssrc-every", "7")
    dev = peers.start_device(server.udp_port, device_id=DEVICE, password=PASSWORD,
                             platform_id=PLATFORM, domain=DOMAIN,
                             sender=peers.media_sender_command(clip, *extra))  # fmt: skip
    frames: list[SampledFrame] = []
    packets: list[object] = []

    class Sink:
        def stream_opened(self, stream: object) -> None:
            packets.append("opened")

        def packet(self, packet: object) -> None:
            packets.append(packet)

    status = StatusBoard()
    reader = StreamReader(
        "gb-cam", lambda: f"gb28181://{DEVICE}/{CHANNEL}",
        SourceConfig(url=f"gb28181://{DEVICE}/{CHANNEL}"), IngestConfig(),
        detect_fps=5, box=(640, 640), on_frame=frames.append, status=status, packet_sink=Sink(),
    )  # fmt: skip
    try:
        wait_for(lambda: len(server.registry.devices.get(DEVICE, _NoDev).channels) == 3, 10,
                 "registration")  # fmt: skip
        reader.start()
        wait_for(lambda: len(frames) >= 10, 20, "10 sampled frames from the GB stream")
        assert status.get("gb-cam").state == "online"
        assert server.health()["streams"] == 1
        first = frames[0].source_bgr()
        expected = _first_frame(clip)
        assert first.shape == expected.shape == (360, 640, 3)
        # The device's own H.264, not re-encoded: the first frame is the clip's first frame.
        assert float(np.abs(first.astype(int) - expected.astype(int)).mean()) < 1.0
        assert packets[0] == "opened" and len(packets) > 10
        if rtp_transport == "udp":
            stats = server.health()["stream_stats"][0]
            assert stats["wrong_ssrc"] > 0 and stats["lost"] == 0 and stats["late"] == 0
    finally:
        reader.stop()
        reader.join(10)
        dev.stop()
    wait_for(lambda: server.health()["streams"] == 0, 5, "BYE and the port released")
    assert server.health()["rtp_ports_in_use"] == 0
    platform.stop()


def test_bad_input_is_refused_counted_and_nothing_stops(server: SipServer) -> None:
    import socket

    from prometheus_client import REGISTRY

    def refused(reason: str) -> float:
        return REGISTRY.get_sample_value("shaobing_sip_refused_total", {"reason": reason}) or 0.0

    before = {r: refused(r) for r in ("malformed", "not_registered", "bad_body", "flood")}
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    addr = ("127.0.0.1", server.udp_port)
    sock.sendto(b"\x16\x03\x01 not SIP at all\r\n\r\n", addr)
    msg = ("MESSAGE sip:%s@%s SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKq\r\n"
           "From: <sip:34020000001320000077@3402000000>;tag=x\r\nTo: <sip:%s@%s>\r\n"
           "Call-ID: bad-1\r\nCSeq: 1 MESSAGE\r\nContent-Length: %d\r\n\r\n%s")  # fmt: skip
    body = "<Notify><CmdType>Keepalive</CmdType><SN>1</SN><DeviceID>34020000001320000077" \
           "</DeviceID></Notify>"  # fmt: skip
    sock.sendto((msg % (PLATFORM, DOMAIN, PLATFORM, DOMAIN, len(body), body)).encode(), addr)
    sock.sendto((msg % (PLATFORM, DOMAIN, PLATFORM, DOMAIN, 9, "<Notify>x")).encode(), addr)
    register = ("REGISTER sip:%s@%s SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK%d\r\n"
                "From: <sip:34020000001320000078@3402000000>;tag=x\r\n"
                "To: <sip:34020000001320000078@3402000000>\r\nCall-ID: flood\r\n"
                "CSeq: %d REGISTER\r\nContent-Length: 0\r\n\r\n")  # fmt: skip
    for i in range(25):
        sock.sendto((register % (PLATFORM, DOMAIN, i, i + 1)).encode(), addr)
    sock.close()
    wait_for(lambda: refused("flood") - before["flood"] >= 5, 5, "the flood dropped")
    assert refused("malformed") - before["malformed"] >= 1
    assert refused("not_registered") - before["not_registered"] >= 1
    assert refused("bad_body") - before["bad_body"] >= 1
    # The server still serves a real device.
    dev = peers.start_device(server.udp_port, device_id=DEVICE, password=PASSWORD,
                             platform_id=PLATFORM, domain=DOMAIN)  # fmt: skip
    try:
        wait_for(lambda: DEVICE in server.registry.devices, 10, "a registration after it all")
        assert server.health()["status"] == "ok"
    finally:
        dev.stop()


def test_garbage_media_is_reported_and_nothing_stops(videos_dir: Path) -> None:
    from camera_registry.config import IngestConfig, SourceConfig
    from camera_registry.status import StatusBoard
    from gb28181.component import GbPlatform
    from ingest.reader import StreamReader

    platform = GbPlatform(sip_config(media_timeout_s=2.0), sink=Recorder())
    platform.start()
    server = platform.server
    sender = peers.media_sender_command(_clip(videos_dir), "--garbage", "--seconds", "8")
    dev = peers.start_device(server.udp_port, device_id=DEVICE, password=PASSWORD,
                             platform_id=PLATFORM, domain=DOMAIN, sender=sender)  # fmt: skip
    status = StatusBoard()
    url = f"gb28181://{DEVICE}/{CHANNEL}"
    reader = StreamReader("gb-garbage", lambda: url, SourceConfig(url=url),
                          IngestConfig(reconnect_max_s=30, reconnect_initial_s=20),
                          detect_fps=5, box=(640, 640), on_frame=lambda f: None,
                          status=status)  # fmt: skip
    try:
        wait_for(lambda: DEVICE in server.registry.devices, 10, "registration")
        reader.start()
        wait_for(lambda: status.get("gb-garbage").state == "offline", 40, "the reader offline")
        error = status.get("gb-garbage").last_error or ""
        assert "bad_media" in error, error  # bytes came, no stream in them
        assert status.get("gb-garbage").frames_decoded == 0
        wait_for(lambda: server.health()["rtp_ports_in_use"] == 0, 5, "the port released")
        assert server.health()["status"] == "ok" and reader.is_alive()
    finally:
        reader.stop()
        reader.join(10)
        dev.stop()
        platform.stop()


def test_invite_without_media_is_reported_and_the_port_released() -> None:
    from camera_registry.config import IngestConfig, SourceConfig
    from camera_registry.status import StatusBoard
    from gb28181.component import GbPlatform
    from ingest.reader import StreamReader

    platform = GbPlatform(sip_config(media_timeout_s=1.0), sink=Recorder())
    platform.start()
    server = platform.server
    dev = peers.start_device(server.udp_port, device_id=DEVICE, password=PASSWORD,
                             platform_id=PLATFORM, domain=DOMAIN, sender="true")  # fmt: skip
    status = StatusBoard()
    url = f"gb28181://{DEVICE}/{CHANNEL}"
    reader = StreamReader("gb-silent", lambda: url, SourceConfig(url=url),
                          IngestConfig(reconnect_max_s=30, reconnect_initial_s=20),
                          detect_fps=5, box=(640, 640), on_frame=lambda f: None,
                          status=status)  # fmt: skip
    try:
        wait_for(lambda: DEVICE in server.registry.devices, 10, "registration")
        reader.start()
        wait_for(lambda: status.get("gb-silent").state == "offline", 15, "the reader offline")
        error = status.get("gb-silent").last_error or ""
        assert "no_media (0 bytes received)" in error, error
        wait_for(lambda: server.health()["streams"] == 0, 5, "BYE sent, session closed")
        assert server.health()["rtp_ports_in_use"] == 0
    finally:
        reader.stop()
        reader.join(10)
        dev.stop()
        platform.stop()
    # A channel of a device that is not registered: a clear error, no INVITE.
    assert "not registered" in _open_error(f"gb28181://34020000001180000099/{CHANNEL}")


def _open_error(url: str) -> str:
    from camera_registry.config import IngestConfig, SourceConfig
    from gb28181.component import GbPlatform
    from ingest.reader import open_source

    platform = GbPlatform(sip_config(), sink=Recorder())
    platform.start()
    try:
        with open_source(url, SourceConfig(url=url), IngestConfig()):
            return ""
    except Exception as exc:  # noqa: BLE001 - the message is what is checked
        return str(exc)
    finally:
        platform.stop()


def test_register_refresh_and_unregister_over_udp(server: SipServer) -> None:
    """A device's REGISTER by hand: 401, 200 with Date, a refresh by the same Call-ID,
    then Expires 0: it is offline at once."""
    import socket

    from gb28181 import sip as s

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(3)
    dev = "34020000001320000055"
    port = sock.getsockname()[1]

    def register(expires: int, cseq: int, auth: str | None = None) -> s.SipMessage:
        msg = s.request("REGISTER", f"sip:{PLATFORM}@{DOMAIN}", via_host="127.0.0.1",
                        via_port=port, transport="udp", from_uri=f"sip:{dev}@{DOMAIN}",
                        from_tag="t1", to_uri=f"sip:{dev}@{DOMAIN}", call_id="reg-55",
                        cseq=cseq, contact=f"sip:{dev}@127.0.0.1:{port}",
                        headers=[("Expires", str(expires))] + (
                            [("Authorization", auth)] if auth else []))  # fmt: skip
        sock.sendto(msg.encode(), ("127.0.0.1", server.udp_port))
        return s.parse_message(sock.recv(65535))

    def authed(expires: int, cseq: int) -> s.SipMessage:
        challenge = register(expires, cseq)
        assert challenge.status == 401
        auth = s.authorization(challenge.header("WWW-Authenticate") or "", username=dev,
                               password=PASSWORD, method="REGISTER",
                               uri=f"sip:{PLATFORM}@{DOMAIN}")  # fmt: skip
        return register(expires, cseq + 1, auth)

    try:
        ok = authed(600, 1)
        assert ok.status == 200 and ok.header("Expires") == "600"
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}$", ok.header("Date") or "")
        registered_at = server.registry.devices[dev].registered_at
        assert authed(600, 3).status == 200  # refresh: the same session
        assert server.registry.devices[dev].registered_at == registered_at
        assert authed(0, 5).status == 200
        assert server.registry.devices[dev].state == "offline"
        assert authed(99999, 7).header("Expires") == "3600"  # capped at register_expires_s
    finally:
        sock.close()
