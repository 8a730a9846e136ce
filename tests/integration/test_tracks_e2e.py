"""End to end: a real hub (``shaobing run``) analysing a real clip over RTSP indexes the
people it sees; the search API finds them with a thumbnail and a clip PyAV plays."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import av
import cv2
import httpx
import numpy as np
import pytest

from tests.hubproc import HubProcess
from tests.peers.procs import RtspServer

TOWNSHIP = {"county": "示例县", "township": "城关镇", "village": "人民村"}


@pytest.mark.slow
def test_people_crossing_are_found_with_thumbnail_and_playable_clip(
    tmp_path: Path, models_dir: Path, rtsp_server: RtspServer
) -> None:
    hub = HubProcess(tmp_path, {
        "detector": {"model": str(models_dir / "yolox_nano.onnx"), "workers": 2},
        "cameras": [{"id": "cg-0001", "name": "城关镇人民路口", "area": TOWNSHIP,
                     "source": {"url": rtsp_server.url("crosswalk")}, "detect_fps": 5}],
    })  # fmt: skip
    hub.start()
    try:

        def person_with_clip() -> Any:
            page = hub.get("/api/tracks", object_class="person", area="示例县/城关镇")
            return next((t for t in page["items"] if t["clip_url"]), None)

        track = hub.wait("a person track with its clip", person_with_clip, timeout=120)
        assert track["camera_id"] == "cg-0001" and track["camera_name"] == "城关镇人民路口"
        assert track["area"]["village"] == "人民村"
        assert track["last_seen"] - track["first_seen"] >= 0.8  # at least 5 frames at 5 fps
        assert track["score"] >= 0.45 and track["colour"] is not None
        thumb = hub.raw(track["thumbnail_url"])
        assert thumb.status_code == 200
        image = cv2.imdecode(np.frombuffer(thumb.content, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape[0] > image.shape[1]  # a standing person
        clip = hub.raw(track["clip_url"])
        assert clip.status_code == 200 and clip.headers["content-type"] == "video/mp4"
        with av.open(io.BytesIO(clip.content)) as container:
            frames = list(container.decode(video=0))
        assert frames[0].key_frame and (frames[0].width, frames[0].height) == (640, 360)
        seen = track["last_seen"] - track["first_seen"]
        assert frames[-1].time - frames[0].time >= seen + 2  # its sightings and the margin
        assert httpx.get(f"{hub.base}{track['clip_url']}", timeout=5).status_code == 401
        # A window without it finds it not; the thread is reported healthy.
        later = hub.get("/api/tracks", start=track["last_seen"] + 3600)
        assert track["id"] not in {t["id"] for t in later["items"]}
        assert hub.get("/healthz")["threads"]["tracks"] is True
    finally:
        hub.stop()
    assert hub.proc is not None and hub.proc.returncode == 0, hub.log()[-3000:]
