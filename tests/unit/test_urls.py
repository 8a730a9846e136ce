from __future__ import annotations

import pytest

from camera_registry.urls import (
    UrlError,
    mask_secrets,
    mask_url,
    rewrite_host,
    strip_credentials,
    validate_stream_url,
    with_credentials,
)


def test_mask_url_hides_userinfo() -> None:
    assert mask_url("rtsp://admin:Secr3t@10.0.0.5:554/ch1") == "rtsp://***@10.0.0.5:554/ch1"
    assert (
        mask_url("error opening rtsp://u:p@h/x: refused") == "error opening rtsp://***@h/x: refused"
    )
    assert mask_url("rtsp://10.0.0.5/ch1") == "rtsp://10.0.0.5/ch1"


def test_mask_secrets_hides_bare_password() -> None:
    assert mask_secrets("auth failed for Secr3t", ("Secr3t",)) == "auth failed for ***"


def test_credentials_round_trip_with_special_characters() -> None:
    url = with_credentials("rtsp://10.0.0.5:554/ch1", "admin", "p@ss:w/rd")
    assert url == "rtsp://admin:p%40ss%3Aw%2Frd@10.0.0.5:554/ch1"
    assert strip_credentials(url) == ("rtsp://10.0.0.5:554/ch1", "admin", "p@ss:w/rd")


def test_rewrite_host_keeps_path_port_and_credentials() -> None:
    assert rewrite_host("rtsp://u:p@192.168.1.64:554/Streaming/101?x=1", "203.0.113.9") == (
        "rtsp://u:p@203.0.113.9:554/Streaming/101?x=1"
    )
    assert rewrite_host("rtsp://192.168.1.64/a", "example.org", 8554) == "rtsp://example.org:8554/a"


@pytest.mark.parametrize(
    "url", ["rtps://host/x", "rtsp:///nohost", "rtsp://host:70000/x", "ftp://host/file"]
)
def test_invalid_urls_are_rejected(url: str) -> None:
    with pytest.raises(UrlError):
        validate_stream_url(url)


def test_plain_paths_and_file_urls_are_accepted() -> None:
    assert validate_stream_url("clips/a.mp4") == "clips/a.mp4"
    assert validate_stream_url("file:///tmp/a.mp4") == "file:///tmp/a.mp4"


@pytest.mark.parametrize(
    "url",
    [
        # Dahua / Hikvision-style query parameters
        "rtsp://10.0.0.5:554/cam/realmonitor?channel=1&subtype=0&user=admin&password=Secr3t",
        # credentials in the path (several Chinese NVR brands)
        "rtsp://host/user=admin&password=Secr3t&channel=1&stream=0.sdp?",
        # Xiongmai / XMeye: '_' between parameters
        "rtsp://10.0.0.7:554/user=admin_password=Secr3t_channel=1_stream=0.sdp?real_stream",
        "http://10.0.0.8/snapshot.cgi?USR=admin&PWD=Secr3t",
        "http://10.0.0.8/live?Username=admin&Passwd=Secr3t&token=Secr3t&api_key=Secr3t",
        "rtsp://admin:Secr3t@10.0.0.5/ch1?auth=Secr3t;key=Secr3t",
    ],
)
def test_mask_url_hides_credentials_in_path_and_query(url: str) -> None:
    masked = mask_url(url)
    assert "Secr3t" not in masked and "admin" not in masked
    assert masked.split("://")[0] in ("rtsp", "http")


def test_mask_url_keeps_the_rest_of_the_url() -> None:
    assert mask_url("rtsp://h/cam/realmonitor?channel=1&subtype=0&user=u&password=p") == (
        "rtsp://h/cam/realmonitor?channel=1&subtype=0&user=***&password=***"
    )
    assert mask_url("rtsp://h/user=u_password=p_channel=1_stream=0.sdp?real_stream") == (
        "rtsp://h/user=***_password=***_channel=1_stream=0.sdp?real_stream"
    )
    # Not credentials: channel names, key frames, a word ending in a key.
    for text in ("rtsp://h/live?name=东门&channel=2", "keyframe=1 monkey=3 passage=2"):
        assert mask_url(text) == text


def test_mask_secrets_in_error_text_and_printed_mappings() -> None:
    text = (
        "Connection refused: 'rtsp://127.0.0.1:9/x?user=admin&password=Secr3t' "
        "input_value={'username': 'admin', 'password': 'Secr3t', \"token\": \"Secr3t\"}"
    )
    masked = mask_secrets(text)
    assert "Secr3t" not in masked and "'password': '***'" in masked
    # A known password also when FFmpeg prints it percent-encoded.
    assert mask_secrets("rtsp://h/?x=p%40ss%3Aw%2Frd", ("p@ss:w/rd",)) == "rtsp://h/?x=***"
