"""A device's recordings (GB/T 28181 §9.7, §9.8) against a real SIPp device: RecordInfo
answered in two pages is collected until SumNum, and a playback INVITE (``s=Playback``,
``t=`` range) brings the recording (PS over RTP of a real clip) into an MP4 that decodes
(remuxed, not re-encoded); BYE ends it and gives the port back. And TCP active media: the
hub connects to the port the device answers with."""

from __future__ import annotations

import time
from pathlib import Path

import av
import pytest

from gb28181.component import GbPlatform
from gb28181.config import SipConfig
from gb28181.playback import epoch_of, fetch_clip, local_time
from gb28181.registry import Changes
from gb28181.server import InviteFailed
from tests.peers import sipp as peers

pytestmark = pytest.mark.slow  # real SIPp peers

DEVICE = "34020000001180000001"
PLATFORM = "34020000002000000001"
DOMAIN = "3402000000"
PASSWORD = "Gb-Secr3t-rec"
CHANNEL = "34150201001310000001"
TZ = "Asia/Shanghai"


class _Sink:
    def apply(self, changes: Changes) -> None:
        pass


def wait_for(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def platform_with(**over: object) -> GbPlatform:
    data: dict[str, object] = dict(
        enabled=True, id=PLATFORM, domain=DOMAIN, host="127.0.0.1", port=0,
        transports=["udp"], password=PASSWORD, keepalive_interval_s=1,
        rtp_port_min=43400, rtp_port_max=43500,
    )  # fmt: skip
    data.update(over)
    return GbPlatform(SipConfig.model_validate(data), sink=_Sink())


def test_record_info_is_collected_and_playback_becomes_an_mp4(videos_dir: Path,
                                                             tmp_path: Path) -> None:  # fmt: skip
    platform = platform_with()
    platform.start()
    server = platform.server
    clip = videos_dir / "crosswalk_people.mp4"
    sender = peers.media_sender_command(clip, "--seconds", "30")
    dev = peers.start_device(server.udp_port, device_id=DEVICE, password=PASSWORD,
                             platform_id=PLATFORM, domain=DOMAIN, sender=sender,
                             transport="u1")  # fmt: skip
    try:
        wait_for(lambda: len(getattr(server.registry.devices.get(DEVICE), "channels", {})) == 3,
                 10, "registration and catalog")  # fmt: skip
        start = epoch_of("2026-12-07T08:00:00", TZ)
        assert start is not None
        items, complete = server.call(
            server.query_records(
                DEVICE, CHANNEL, local_time(start, TZ), local_time(start + 7200, TZ)
            ),
            30,
        )
        assert complete and len(items) == 3  # two pages, SumNum 3
        assert [i.start_time for i in items] == ["2026-12-07T08:00:00", "2026-12-07T08:10:00",
                                                 "2026-12-07T09:00:00"]  # fmt: skip
        assert items[0].file_size == 104857600 and items[2].type == "alarm"
        assert epoch_of(items[1].end_time, TZ) == start + 1200
        # Playback of 4 s of the first recording into an MP4 (the device's own H.264).
        out = tmp_path / "playback.mp4"
        made = fetch_clip(server, DEVICE, CHANNEL, int(start), int(start) + 4, out)
        assert made.ended_by == "range covered" and made.codec == "h264"
        assert 3.9 <= made.duration_s <= 5 and (made.width, made.height) == (640, 360)
        with av.open(str(out)) as container:
            frames = list(container.decode(video=0))
        assert len(frames) >= 90 and frames[0].key_frame  # ~24 fps for 4 s, from a keyframe
        wait_for(lambda: server.health()["streams"] == 0, 5, "BYE after the playback")
        assert server.health()["rtp_ports_in_use"] == 0
        with pytest.raises(ValueError):
            fetch_clip(server, DEVICE, CHANNEL, int(start), int(start), out)
    finally:
        dev.stop()
        platform.stop()


def test_playback_without_media_is_reported(tmp_path: Path) -> None:
    platform = platform_with(media_timeout_s=1.0)
    platform.start()
    server = platform.server
    dev = peers.start_device(server.udp_port, device_id=DEVICE, password=PASSWORD,
                             platform_id=PLATFORM, domain=DOMAIN, sender="true")  # fmt: skip
    try:
        wait_for(lambda: DEVICE in server.registry.devices, 10, "registration")
        with pytest.raises(InviteFailed) as failed:
            fetch_clip(server, DEVICE, CHANNEL, 1_800_000_000, 1_800_000_010,
                       tmp_path / "none.mp4")  # fmt: skip
        assert failed.value.state == "no_media"
        assert not (tmp_path / "none.mp4").exists()
        wait_for(lambda: server.health()["rtp_ports_in_use"] == 0, 5, "the port released")
    finally:
        dev.stop()
        platform.stop()


def test_tcp_active_media_the_hub_connects_to_the_device(videos_dir: Path) -> None:
    """TCP active (RFC 4571): the offer says ``a=setup:active``; the device answers with the
    port its sender listens on and the hub connects there; the stream decodes."""
    from camera_registry.config import IngestConfig, SourceConfig
    from ingest.reader import open_source
    from tests.peers.procs import free_port

    platform = platform_with(rtp_transport="tcp_active")
    platform.start()
    server = platform.server
    port = free_port()
    sender = peers.media_sender_command(videos_dir / "crosswalk_people.mp4", "--listen-port",
                                        str(port), "--seconds", "10")  # fmt: skip
    dev = peers.start_device(server.udp_port, device_id=DEVICE, password=PASSWORD,
                             platform_id=PLATFORM, domain=DOMAIN, sender=sender,
                             media_port=port, media_proto="TCP/RTP/AVP")  # fmt: skip
    url = f"gb28181://{DEVICE}/{CHANNEL}"
    try:
        wait_for(lambda: DEVICE in server.registry.devices, 10, "registration")
        with open_source(url, SourceConfig(url=url), IngestConfig()) as container:
            frames = 0
            for _ in container.decode(video=0):
                frames += 1
                if frames >= 30:
                    break
            assert frames == 30 and container.streams.video[0].codec_context.width == 640
            assert server.health()["stream_stats"][0]["received"] > 30
        wait_for(lambda: server.health()["streams"] == 0, 5, "BYE")
        assert server.health()["rtp_ports_in_use"] == 0
    finally:
        dev.stop()
        platform.stop()
    # A device whose answered port nobody listens on: no_media, the dialog ended.
    platform = platform_with(rtp_transport="tcp_active", media_timeout_s=1.0)
    platform.start()
    server = platform.server
    dev = peers.start_device(server.udp_port, device_id=DEVICE, password=PASSWORD,
                             platform_id=PLATFORM, domain=DOMAIN, media_port=free_port(),
                             media_proto="TCP/RTP/AVP")  # fmt: skip
    try:
        wait_for(lambda: DEVICE in server.registry.devices, 10, "registration")
        with pytest.raises(InviteFailed) as failed:
            with open_source(url, SourceConfig(url=url), IngestConfig()):
                pass
        assert failed.value.state == "no_media" and "cannot connect" in str(failed.value)
        assert server.health()["streams"] == 0 and server.health()["rtp_ports_in_use"] == 0
    finally:
        dev.stop()
        platform.stop()
