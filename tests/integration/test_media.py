"""The worker's live-video endpoint (shaobing/media.py), on a real clip's packets and a
real HTTP connection: signed URLs only, the camera's FLV from its last keyframe, the
stream ended when the camera reconnects."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from core.secrets import SecretCipher
from ingest.live import LiveFeed
from shaobing.media import MediaServer, live_key, parse_listen, sign, signed_path, verify
from tests.integration.test_live import clip_packets, decode_flv

KEY = SecretCipher(SecretCipher.new_key())


def test_signatures_bind_camera_and_expiry() -> None:
    key = live_key(KEY)
    assert key == live_key(SecretCipher(KEY._key))  # every role derives the same key
    assert key != live_key(SecretCipher(SecretCipher.new_key()))
    now = 1_800_000_000.0
    sig = sign(key, "cam-1", int(now) + 30)
    assert verify(key, "cam-1", str(int(now) + 30), sig, now=now)
    assert not verify(key, "cam-2", str(int(now) + 30), sig, now=now)  # another camera
    assert not verify(key, "cam-1", str(int(now) + 31), sig, now=now)  # another expiry
    assert not verify(key, "cam-1", str(int(now) + 30), sig, now=now + 31)  # expired
    assert not verify(key, "cam-1", "soon", sig, now=now)
    path = signed_path(key, "村/1", now=now)
    assert path.startswith("/live/%E6%9D%91%2F1.flv?exp=")  # quoted: one path segment


def test_listen_addresses() -> None:
    assert parse_listen("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_listen("[::1]:8091") == ("::1", 8091)
    with pytest.raises(ValueError, match="host:port"):
        parse_listen("8091")


def test_the_worker_serves_signed_viewers_the_cameras_it_holds(videos_dir: Path) -> None:
    container, packets = clip_packets(videos_dir / "crosswalk_people.mp4", 200)
    feed, idle = LiveFeed(), LiveFeed()
    feed.stream_opened(container.streams.video[0])
    idle.stream_opened(container.streams.video[0])  # connected, no keyframe yet
    for p in packets[:40]:
        feed.packet(p)
    key = live_key(KEY)
    feeds = {"cam-1": feed, "cam-idle": idle}
    server = MediaServer(key, feeds.get, "127.0.0.1:0").start()
    try:
        assert server.base_url.startswith("http://127.0.0.1:")
        base = server.base_url
        # No signature, a wrong one, another camera's: refused before anything is read.
        assert httpx.get(f"{base}/live/cam-1.flv", timeout=5).status_code == 403
        bad = signed_path(key, "cam-1").replace("sig=", "sig=0")
        assert httpx.get(f"{base}{bad}", timeout=5).status_code == 403
        other = signed_path(live_key(SecretCipher(SecretCipher.new_key())), "cam-1")
        assert httpx.get(f"{base}{other}", timeout=5).status_code == 403
        # Not held here (moved to another worker), not streaming yet.
        r = httpx.get(f"{base}{signed_path(key, 'cam-9')}", timeout=5)
        assert r.status_code == 404 and "not held" in r.text
        assert httpx.get(f"{base}{signed_path(key, 'cam-idle')}", timeout=5).status_code == 503

        # A viewer: the GOP held so far at once, then live packets, until the camera
        # reconnects (the stream ends; the player reconnects).
        def live() -> None:
            time.sleep(0.5)
            for p in packets[40:]:
                feed.packet(p)
            time.sleep(0.3)
            feed.stream_opened(container.streams.video[0])

        pusher = threading.Thread(target=live)
        with httpx.stream("GET", f"{base}{signed_path(key, 'cam-1')}", timeout=10) as r:
            assert r.status_code == 200 and r.headers["content-type"] == "video/x-flv"
            assert server.viewers == 1
            pusher.start()
            data = b"".join(r.iter_raw())
        pusher.join()
        frames = decode_flv(data)
        assert frames[0].key_frame and len(frames) >= 160  # the held GOP + the live part
        deadline = time.monotonic() + 5
        while server.viewers and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.viewers == 0 and feed.viewers == 0  # the viewer was let go

        # The camera stops on this worker (its lease moved): the stream ends at once.
        for p in packets[:40]:
            feed.packet(p)
        with httpx.stream("GET", f"{base}{signed_path(key, 'cam-1')}", timeout=10) as r:
            assert r.status_code == 200
            threading.Timer(0.3, feed.end).start()
            started = time.monotonic()
            data = b"".join(r.iter_raw())
        assert time.monotonic() - started < 3 and decode_flv(data)[0].key_frame
    finally:
        server.stop()
    assert not server.thread.is_alive()
