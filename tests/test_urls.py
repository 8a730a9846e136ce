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
