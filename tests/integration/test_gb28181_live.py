"""Live view on demand of a GB/T 28181 channel nobody analyses, against a real SIPp device
sending PS over RTP of a real clip: the first viewer's request INVITEs the channel, the
device's own H.264 reaches the live feed (remuxed to FLV, decodable, not re-encoded), and
BYE goes out once the last viewer has left for the linger time; a device that sends no
media is reported ``no_media`` and re-invited with backoff while someone still asks."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import pytest

from alerts.export import verify_export
from camera_registry.config import IngestConfig
from gb28181.component import GbPlatform
from gb28181.config import SipConfig
from gb28181.registry import Changes
from ingest.live import FlvRemuxer, LiveFeed, LiveUnavailable
from tests.peers import sipp as peers

pytestmark = pytest.mark.slow  # real SIPp peers

DEVICE = "34020000001180000001"
PLATFORM = "34020000002000000001"
DOMAIN = "3402000000"
PASSWORD = "Gb-Secr3t-live"
CHANNEL = "34150201001310000001"
URL = f"gb28181://{DEVICE}/{CHANNEL}"
CAMERA = f"gb-{CHANNEL}"
LINK_SECRET = "gb-link-secret-0123456789"
AUDIO_OUT = "34150201001370000001"  # the device's audio output (type code 137)


def write_tone(path: Path, seconds: float) -> None:
    """A WAV (8 kHz, 16-bit) of a 440 Hz tone: the warning of the broadcast test."""
    import wave

    import numpy as np

    t = np.arange(int(8000 * seconds)) / 8000
    samples = (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2")
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(8000)
        wf.writeframes(samples.tobytes())


class _Sink:
    def apply(self, changes: Changes) -> None:
        pass


def wait_for(check: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def platform_with(**over: object) -> GbPlatform:
    data: dict[str, object] = dict(
        enabled=True, id=PLATFORM, domain=DOMAIN, host="127.0.0.1", port=0,
        transports=["udp"], password=PASSWORD, keepalive_interval_s=1,
        rtp_port_min=43000, rtp_port_max=43100, live_linger_s=0.5, live_backoff_max_s=1,
    )  # fmt: skip
    data.update(over)
    return GbPlatform(SipConfig.model_validate(data), sink=_Sink())


@pytest.fixture()
def feeds() -> Iterator[dict[str, LiveFeed]]:
    yield {}


def test_live_view_opens_the_channel_on_demand_and_byes_after_the_last_viewer(
    videos_dir: Path, feeds: dict[str, LiveFeed]
) -> None:
    platform = platform_with()
    platform.start()
    held: set[str] = set()
    live = platform.attach_live(lambda c: feeds.setdefault(c, LiveFeed()), held.__contains__,
                                IngestConfig())  # fmt: skip
    server = platform.server
    clip = videos_dir / "crosswalk_people.mp4"
    sender = peers.media_sender_command(clip, "--seconds", "30")
    dev = peers.start_device(server.udp_port, device_id=DEVICE, password=PASSWORD,
                             platform_id=PLATFORM, domain=DOMAIN, sender=sender)  # fmt: skip
    try:
        wait_for(lambda: len(getattr(server.registry.devices.get(DEVICE), "channels", {})) == 3,
                 10, "registration and catalog")  # fmt: skip
        assert server.health()["streams"] == 0  # nobody watches: no stream
        platform.live_on_demand(CAMERA, URL)  # the first viewer: INVITE, first keyframe
        assert server.health()["streams"] == 1
        feed = feeds[CAMERA]
        got: list[object] = []
        start, unsubscribe = feed.subscribe(got.append)
        assert start is not None and start.codec == "h264" and start.packets[0].keyframe
        # A second viewer shares the stream: no second INVITE.
        platform.live_on_demand(CAMERA, URL)
        assert server.health()["streams"] == 1 and live.states()[0]["invites"] == 1
        wait_for(lambda: len(got) >= 30, 10, "30 live packets")
        # The live path remuxes them to FLV as for an RTSP camera: the bytes decode.
        remuxer = FlvRemuxer(start.template)
        flv = b"".join(remuxer.feed(p) for p in [*start.packets, *got])  # type: ignore[list-item]
        remuxer.close()
        with av.open(io.BytesIO(flv), format="flv") as container:
            frames = [f for f in container.decode(video=0)]
        assert len(frames) >= 20 and (frames[0].width, frames[0].height) == (640, 360)
        assert live.states()[0]["state"] == "streaming"
        unsubscribe()  # the last viewer leaves: BYE after the linger, the port given back
        wait_for(lambda: server.health()["streams"] == 0, 10, "BYE after the linger")
        wait_for(lambda: live.states() == [], 5, "the on-demand stream gone")
        assert server.health()["rtp_ports_in_use"] == 0
        # A camera a reader holds (analysed) is not opened again for its viewers.
        held.add(CAMERA)
        platform.live_on_demand(CAMERA, URL)
        assert server.health()["streams"] == 0
        # Not a GB camera: nothing to open.
        platform.live_on_demand("rtsp-cam", "rtsp://127.0.0.1:1/x")
        assert live.states() == []
    finally:
        dev.stop()
        platform.stop()
    assert server.health()["rtp_ports_in_use"] == 0


def test_no_media_is_reported_and_reinvited_while_wanted(feeds: dict[str, LiveFeed]) -> None:
    platform = platform_with(media_timeout_s=1.0, invite_timeout_s=2.0, live_linger_s=3)
    platform.start()
    live = platform.attach_live(lambda c: feeds.setdefault(c, LiveFeed()), lambda c: False,
                                IngestConfig())  # fmt: skip
    server = platform.server
    dev = peers.start_device(server.udp_port, device_id=DEVICE, password=PASSWORD,
                             platform_id=PLATFORM, domain=DOMAIN, sender="true")  # fmt: skip
    try:
        wait_for(lambda: DEVICE in server.registry.devices, 10, "registration")
        with pytest.raises(LiveUnavailable) as failed:
            platform.live_on_demand(CAMERA, URL)
        assert failed.value.state == "no_media" and "0 bytes received" in str(failed.value)
        # Still wanted (within the linger): invited again with backoff, each time no_media.
        wait_for(lambda: live.states() and live.states()[0]["invites"] >= 2, 10, "a re-invite")
        assert live.states()[0]["state"] in ("no_media", "inviting")
        # Nobody asks any more: the retries stop, the ports are free.
        wait_for(lambda: live.states() == [], 15, "the retries to stop")
        wait_for(lambda: server.health()["streams"] == 0, 5, "no stream left")
        assert server.health()["rtp_ports_in_use"] == 0
        # A channel of a device that never registered: device_offline, no INVITE.
        with pytest.raises(LiveUnavailable) as offline:
            platform.live_on_demand("gb-x", f"gb28181://34020000001180000099/{CHANNEL}")
        assert offline.value.state == "device_offline"
        assert server.health()["status"] == "ok"
    finally:
        dev.stop()
        platform.stop()
    assert PASSWORD not in str(live.states())


def test_hub_live_view_on_demand_and_enabling_an_imported_channel_without_restart(
    tmp_path: Path, models_dir: Path, videos_dir: Path
) -> None:
    """In a real hub process: the imported (disabled) channel's live.flv opens the stream
    on demand and plays (FLV decodes); BYE after the linger; enabling the channel through
    the API starts its analysis without a restart, disabling stops it."""
    import httpx

    from tests.hubproc import HubProcess
    from tests.peers.procs import free_port

    sip_port, audio_port = free_port(), free_port()
    wav = tmp_path / "warning.wav"
    write_tone(wav, seconds=1.0)
    received = tmp_path / "broadcast.json"
    hub = HubProcess(tmp_path, {
        "detector": {"model": str(models_dir / "yolox_nano.onnx"), "workers": 1},
        "sip": {"enabled": True, "id": PLATFORM, "domain": DOMAIN, "host": "127.0.0.1",
                "port": sip_port, "password": PASSWORD, "keepalive_interval_s": 1,
                "rtp_port_min": 43200, "rtp_port_max": 43300, "live_linger_s": 1},
        "ingest": {"reconnect_max_s": 1.0},
        "api": {"link_secret": LINK_SECRET},
        "linkage": {"speakers": [{"id": "gb-speaker", "name": "东门广播", "kind": "gb28181",
                                  "uri": f"gb28181://{DEVICE}/{AUDIO_OUT}", "gap_s": 0.5}],
                    "warnings": {"tone": {"file": str(wav)}}},
    })  # fmt: skip
    hub.start()
    clip = videos_dir / "crosswalk_people.mp4"
    sender = peers.media_sender_command(clip, "--seconds", "40")
    dev = peers.start_device(sip_port, device_id=DEVICE, password=PASSWORD,
                             platform_id=PLATFORM, domain=DOMAIN, keepalive_ms=1000,
                             sender=sender, audio_port=audio_port,
                             audio_rx=peers.rtp_sink_command(received))  # fmt: skip
    try:
        cam = hub.wait("the imported camera", lambda: hub.camera(CAMERA), 20)
        assert cam["enabled"] is False and hub.get("/healthz")["sip"]["streams"] == 0
        flv = b""
        with httpx.stream("GET", f"{hub.base}/api/cameras/{CAMERA}/live.flv",
                          headers=hub.auth(), timeout=20) as resp:  # fmt: skip
            assert resp.status_code == 200, resp.read()
            assert hub.get("/healthz")["sip"]["streams"] == 1
            for chunk in resp.iter_bytes():
                flv += chunk
                if len(flv) > 150_000:
                    break
        with av.open(io.BytesIO(flv), format="flv") as container:
            frames = [f for f in container.decode(video=0)]
        assert len(frames) >= 10 and (frames[0].width, frames[0].height) == (640, 360)
        hub.wait("BYE after the last viewer left", lambda: hub.get("/healthz")["sip"]["streams"]
                 == 0, 15)  # fmt: skip
        # Enabled through the API: analysed at once, no restart (the registry is followed).
        url = f"{hub.base}/api/gb28181/channels/{CHANNEL}/enabled"
        on = httpx.put(url, json={"enabled": True}, headers=hub.auth(), timeout=5)
        assert on.status_code == 200 and on.json() == {"camera_id": CAMERA, "enabled": True}
        assert hub.camera(CAMERA)["enabled"] is True
        hub.wait("frames analysed from the enabled channel", lambda: hub.camera(CAMERA)[
            "status"]["frames_analysed"] > 5, 40)  # fmt: skip
        assert hub.get("/healthz")["sip"]["streams"] == 1
        off = httpx.put(url, json={"enabled": False}, headers=hub.auth(), timeout=5)
        assert off.status_code == 200
        hub.wait("the channel stopped", lambda: hub.camera(CAMERA)["status"]["state"]
                 == "disabled", 15)  # fmt: skip
        hub.wait("its stream closed", lambda: hub.get("/healthz")["sip"]["streams"] == 0, 10)
        # The device's recordings: RecordInfo (two pages), then 3 s played back as an MP4.
        t0 = 1796601600.0  # 2026-12-07T08:00:00 in Asia/Shanghai (the hub's time zone)
        recs = hub.get(f"/api/gb28181/channels/{CHANNEL}/records", start=t0, end=t0 + 7200)
        assert recs["complete"] and recs["camera_id"] == CAMERA and len(recs["items"]) == 3
        assert recs["items"][0]["start"] == t0 and recs["items"][0]["end"] == t0 + 600
        played = httpx.post(f"{hub.base}/api/gb28181/channels/{CHANNEL}/playback",
                            json={"start": t0, "end": t0 + 3}, headers=hub.auth(),
                            timeout=30)  # fmt: skip
        assert played.status_code == 200, played.text
        assert played.headers["content-type"] == "video/mp4"
        with av.open(io.BytesIO(played.content)) as container:
            assert len(list(container.decode(video=0))) >= 60
        # The same range into a signed case export (verified like any other).
        exported = httpx.post(f"{hub.base}/api/gb28181/channels/{CHANNEL}/playback/export",
                              json={"start": t0, "end": t0 + 2, "case_number": "案-2026-7",
                                    "reason": "调查"}, headers=hub.auth(), timeout=30)  # fmt: skip
        assert exported.status_code == 200, exported.text
        archive = tmp_path / "export.zip"
        archive.write_bytes(exported.content)
        verified = verify_export(archive, LINK_SECRET.encode())
        assert verified.ok and verified.files == 1, verified.problems
        with zipfile.ZipFile(archive) as zf:
            manifest = json.loads(zf.read("manifest.json"))
            entry = manifest["device_recordings"][0]
            assert entry["device_id"] == DEVICE and entry["channel_id"] == CHANNEL
            with av.open(io.BytesIO(zf.read(manifest["files"][0]["name"]))) as container:
                assert len(list(container.decode(video=0))) >= 40
        too_long = httpx.post(f"{hub.base}/api/gb28181/channels/{CHANNEL}/playback",
                              json={"start": t0, "end": t0 + 7200}, headers=hub.auth(),
                              timeout=5)  # fmt: skip
        assert too_long.status_code == 422
        hub.wait("the playback's stream closed", lambda: hub.get("/healthz")["sip"]["streams"]
                 == 0, 10)  # fmt: skip

        # PTZ of the GB channel through the same API as ONVIF cameras: DeviceControl PTZCmd.
        def ptz(action: str, body: object = None) -> httpx.Response:
            return httpx.post(f"{hub.base}/api/cameras/{CAMERA}/ptz/{action}", json=body,
                              headers=hub.auth(), timeout=10)  # fmt: skip

        assert hub.get(f"/api/cameras/{CAMERA}/ptz/presets") == []  # 2016: no preset list
        goto = ptz("goto", {"preset": "3"})
        assert goto.status_code == 200 and goto.json()["preset"]["token"] == "3"
        assert ptz("move", {"pan": 1.0}).status_code == 200  # stops by itself after 1 s
        assert ptz("home").status_code == 200  # preset 1 (the move's auto-stop cancelled)
        assert ptz("stop").status_code == 200
        bad = ptz("goto", {"preset": "门口"})
        assert bad.status_code == 502 and "1-255" in bad.json()["detail"]
        device_log = dev.workdir / "logs.log"  # what the SIPp device logged (its <log>)
        sent = ("A50F01820003003A", "A50F0101FF0000B5", "A50F018200010038", "A50F0100000000B5")
        hub.wait(
            "the device got goto 3, right, goto 1 and stop",
            lambda: all(f"ptz {c}" in device_log.read_text(errors="replace") for c in sent),
            10,
        )
        # 喊话 through the device's audio output: Notify Broadcast, the device INVITEs the
        # hub, the warning goes to it as G.711 A-law over RTP (twice, 0.5 s apart), BYE.
        spoke = httpx.post(
            f"{hub.base}/api/linkage/speak",
            headers=hub.auth(),
            timeout=30,
            json={"speaker": "gb-speaker", "warning": "tone", "repeat": 2},
        )
        assert spoke.status_code == 200 and spoke.json()["outcome"] == "answered", spoke.text
        got = hub.wait("the device received the audio", lambda: received.exists()
                       and json.loads(received.read_text()), 15)  # fmt: skip
        assert got["packets"] == 125 and got["payload_types"] == [8] and got["in_order"]
        assert got["bytes"] == 125 * 160  # 2.5 s of 8 kHz A-law
        # Not an imported channel: refused, nothing changed.
        missing = httpx.put(f"{hub.base}/api/gb28181/channels/34150201001310009999/enabled",
                            json={"enabled": True}, headers=hub.auth(), timeout=5)  # fmt: skip
        assert missing.status_code == 404
    finally:
        dev.stop()
        hub.stop()
    assert PASSWORD not in hub.log()


def test_gb_ptz_move_stops_by_itself_and_other_cameras_go_to_onvif() -> None:
    from linkage.gb_ptz import GbPtz, RoutedPtz
    from linkage.ports import ActionFailed

    platform = platform_with()
    platform.start()
    server = platform.server
    dev = peers.start_device(server.udp_port, device_id=DEVICE, password=PASSWORD,
                             platform_id=PLATFORM, domain=DOMAIN)  # fmt: skip
    gb = GbPtz(server, lambda c: (DEVICE, CHANNEL) if c == CAMERA else None, move_stop_s=0.5)
    routed = RoutedPtz(gb, None)
    device_log = dev.workdir / "logs.log"
    try:
        wait_for(lambda: DEVICE in server.registry.devices, 10, "registration")
        routed.move(CAMERA, -0.5, 0.5, 0)  # left and up at half speed
        wait_for(lambda: "ptz A50F010A808000BF" in device_log.read_text(), 5, "the move")
        wait_for(lambda: "ptz A50F0100000000B5" in device_log.read_text(), 5, "the auto-stop")
        assert routed.set_preset(CAMERA, "7").token == "7"
        wait_for(lambda: "ptz A50F01810007003D" in device_log.read_text(), 5, "set preset 7")
        with pytest.raises(ActionFailed, match="no PTZ control"):
            routed.stop("rtsp-cam")  # not GB, and no ONVIF adapter here
        with pytest.raises(ActionFailed, match="not registered"):
            GbPtz(server, lambda c: ("34020000001180000099", CHANNEL)).stop(CAMERA)
    finally:
        gb.close()
        dev.stop()
        platform.stop()
