"""A warning through a camera's speaker over the ONVIF audio back channel (issue 27),
against a real RTSP server on loopback that offers the back channel and records what it
receives (tests/peers/rtsp_backchannel.py): the RTSP exchange carries the ONVIF Require
header, Digest authentication works, the G.711 received is the warning (duration, level,
correlation with the source), and a camera without a back channel or with the wrong
password is a clear failure."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from linkage import g711
from linkage.backchannel import REQUIRE, parse_backchannel
from linkage.ports import ActionFailed
from tests.integration.test_linkage_voice import service
from tests.peers.rtsp_backchannel import BackchannelCamera

USER, PASSWORD = "admin", "Backchannel-pw-7"


@pytest.fixture
def camera() -> Iterator[BackchannelCamera]:
    cam = BackchannelCamera(USER, PASSWORD).start()
    yield cam
    cam.stop()


def speaker(url: str, password: str = PASSWORD, codec: str = "pcma") -> dict[str, object]:
    return {"id": "dam-cam", "kind": "onvif_backchannel", "url": url, "username": USER,
            "password": password, "codec": codec, "repeat": 2, "gap_s": 0.5}  # fmt: skip


@pytest.mark.parametrize("codec", ["pcma", "pcmu"])
def test_warning_played_through_the_back_channel(camera: BackchannelCamera, codec: str) -> None:
    voice = service([speaker(camera.url, codec=codec)])
    result = voice.play("dam-cam", warning="reservoir")
    assert result.outcome == "answered", result
    assert result.detail["codec"] == codec and result.detail["repeat"] == 2
    session = camera.wait_teardown(5)
    methods = [m for m, _ in camera.requests]
    assert methods[:2] == ["DESCRIBE", "DESCRIBE"]  # the second with Digest credentials
    assert methods[-3:] == ["SETUP", "PLAY", "TEARDOWN"]
    assert all(h.get("require") == REQUIRE for _, h in camera.requests)
    assert "interleaved=0-1" in session.transport
    assert {pt for pt, _, _ in session.packets} == {g711.PAYLOAD_TYPES[codec]}
    assert len(session.packets) == result.detail["packets"]
    seqs = [s for _, s, _ in session.packets]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False))
    source, _ = voice.audio(warning="reservoir")
    audio = g711.DECODERS[codec](session.payload())
    expected_s = (2 * len(source) + 0.5 * 8000) / 8000
    assert abs(len(audio) / 8000 - expected_s) < 0.021  # within one packet
    first, gap = audio[: len(source)], audio[len(source) : len(source) + 4000]
    assert np.sqrt(np.mean(first.astype(float) ** 2)) > 500 and np.abs(gap).max() < 64
    reference = g711.DECODERS[codec](g711.ENCODERS[codec](source))
    assert np.corrcoef(first.astype(float), reference.astype(float))[0, 1] > 0.99
    second = audio[len(source) + 4000 : 2 * len(source) + 4000]
    assert np.corrcoef(second.astype(float), reference.astype(float))[0, 1] > 0.99


def test_wrong_password_no_back_channel_and_no_camera() -> None:
    cam = BackchannelCamera(USER, PASSWORD).start()
    plain = BackchannelCamera(USER, PASSWORD, backchannel=False).start()
    try:
        voice = service([speaker(cam.url, password="wrong")])
        with pytest.raises(ActionFailed, match="not authorised") as err:
            voice.play("dam-cam", warning="reservoir")
        assert "wrong" not in str(err.value)
        voice = service([speaker(plain.url)])
        with pytest.raises(ActionFailed, match="offers no audio back channel"):
            voice.play("dam-cam", warning="reservoir")
        port = cam.port
    finally:
        cam.stop()
        plain.stop()
    voice = service([speaker(f"rtsp://127.0.0.1:{port}/onvif/media")])
    with pytest.raises(ActionFailed, match="does not answer RTSP"):
        voice.play("dam-cam", warning="reservoir")


def test_the_back_channel_track_is_found_in_the_sdp() -> None:
    sdp = ("v=0\r\nm=video 0 RTP/AVP 96\r\na=control:track1\r\na=recvonly\r\n"
           "m=audio 0 RTP/AVP 0\r\na=control:track2\r\na=recvonly\r\n"
           "m=audio 0 RTP/AVP 8 0\r\na=control:rtsp://cam/bc\r\na=sendonly\r\n")  # fmt: skip
    track = parse_backchannel(sdp, "rtsp://cam/media/")
    assert track is not None and track.control == "rtsp://cam/bc"
    assert track.payload_types == (8, 0)
    relative = parse_backchannel(sdp.replace("rtsp://cam/bc", "bc"), "rtsp://cam/media/")
    assert relative is not None and relative.control == "rtsp://cam/media/bc"
    assert parse_backchannel(sdp.replace("a=sendonly", "a=recvonly"), "rtsp://cam/") is None
