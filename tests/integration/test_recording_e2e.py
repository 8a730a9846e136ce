"""Recording in a real hub process (``shaobing run``) reading a real RTSP camera: segments
indexed and served by the API, the recorder in /healthz and /metrics; the hub killed
(SIGKILL) mid-segment and restarted: the segment cut short is repaired, with a log line."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.hubproc import HubProcess
from tests.integration.test_recording import ffprobe
from tests.peers.procs import RtspServer
from tests.redisproc import REDIS_URL, redis_prefix

CAMERA = "rec-0001"


def config(models_dir: Path, url: str) -> dict[str, object]:
    return {
        "detector": {"model": str(models_dir / "yolox_nano.onnx"), "workers": 1},
        "cameras": [{"id": CAMERA, "name": "城关镇录像", "source": {"url": url},
                     "detect_fps": 1,
                     "record": {"mode": "continuous", "segment_s": 4}}],
    }  # fmt: skip


@pytest.mark.slow
def test_a_hub_records_its_camera_and_repairs_after_a_crash(
    tmp_path: Path, models_dir: Path, rtsp_server: RtspServer
) -> None:
    hub = HubProcess(tmp_path, config(models_dir, rtsp_server.url("crosswalk"))).start()
    try:
        def segments() -> list[dict[str, object]]:
            return hub.get(f"/api/recordings/{CAMERA}/segments", start=0, end=4e9)  # type: ignore[no-any-return]

        segs = hub.wait("two segments", lambda: len(segments()) >= 2 and segments(), 60)
        health = httpx.get(f"{hub.base}/healthz", timeout=5).json()
        assert health["recording"]["status"] == "ok", health
        assert health["recording"]["cameras"][CAMERA]["segments"] >= 2
        metrics = httpx.get(f"{hub.base}/metrics", timeout=5).text
        assert f'shaobing_recording_segments_total{{camera="{CAMERA}"}}' in metrics
        assert "shaobing_recording_storage_ok 1.0" in metrics
        spool = tmp_path / "data" / "recording-spool" / "hub" / CAMERA
        # An open segment with complete fragments in it (one per keyframe, every second).
        hub.wait("an open segment", lambda: [p for p in spool.glob("*.part.mp4")
                                             if p.stat().st_size > 200_000], 20)  # fmt: skip
        assert hub.proc is not None
        os.killpg(hub.proc.pid, signal.SIGKILL)  # the crash
        hub.proc.wait(10)
        parts = list(spool.glob("*.part.mp4"))
        assert parts, "the open segment is left behind"
        before = len(segs)
        hub.start()
        hub.wait("the repair's log line", lambda: "cut short by a crash" in hub.log(), 30)
        assert "repaired" in hub.log(), hub.log()[-3000:]
        hub.wait("the repaired segment", lambda: [s for s in segments() if s["repaired"]], 30)
        assert not any(p.exists() for p in parts)
        all_segs = segments()
        assert len(all_segs) > before
        first, last = all_segs[0], all_segs[-1]
        r = hub.raw(f"/api/recordings/{CAMERA}/video.mp4?start={first['start']}"
                    f"&end={float(first['start']) + 8}")  # fmt: skip
        assert r.status_code == 200, r.text
        (tmp_path / "play.mp4").write_bytes(r.content)
        probe = ffprobe(tmp_path / "play.mp4")
        assert probe["streams"][0]["codec_name"] == "h264"
        assert float(probe["format"]["duration"]) >= 6
        assert last["end"] > first["start"]
    finally:
        hub.stop()


@pytest.mark.slow
def test_motion_and_objects_modes_record_activity_and_not_a_still_or_empty_scene(
    tmp_path: Path, models_dir: Path, videos_dir: Path
) -> None:
    """Real RTSP cameras in a hub process. Motion mode: people crossing (motion all the
    time, seen by the analysis motion gate) are recorded segment after segment; a still
    picture is not recorded at all. Objects mode: the same people are recorded (moving
    tracked objects); a scene full of motion but with no object in it (a cellular
    automaton) is not. Segments count their seconds of motion and of moving objects, and
    the timeline marks where they are."""
    still = tmp_path / "still.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=640x360:rate=25,trim=duration=0.04,loop=250:1",
                    "-t", "10", "-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p",
                    str(still)], check=True, timeout=60)  # fmt: skip
    life = tmp_path / "life.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                    "life=size=640x360:rate=25:ratio=0.3:mold=5:death_color=#304050",
                    "-t", "10", "-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p",
                    str(life)], check=True, timeout=60)  # fmt: skip
    rtsp = RtspServer({"crosswalk": videos_dir / "crosswalk_people.mp4", "still": still,
                       "life": life})  # fmt: skip
    window = {"pre_s": 1, "post_s": 2, "segment_s": 4}
    cameras = (("moving", "crosswalk", "motion"), ("still", "still", "motion"),
               ("people", "crosswalk", "objects"), ("life", "life", "objects"))  # fmt: skip
    cfg = {
        "detector": {"model": str(models_dir / "yolox_nano.onnx"), "workers": 1},
        "cameras": [{"id": cid, "source": {"url": rtsp.url(mount)}, "detect_fps": 2,
                     "record": {"mode": mode, **window}}
                    for cid, mount, mode in cameras],
    }  # fmt: skip
    (tmp_path / "hub").mkdir()
    hub = HubProcess(tmp_path / "hub", cfg)
    try:
        rtsp.start()
        hub.start()

        def segments(cid: str) -> list[dict[str, Any]]:
            return hub.get(f"/api/recordings/{cid}/segments", start=0, end=4e9)  # type: ignore[no-any-return]

        hub.wait("three segments of each scene with activity",
                 lambda: len(segments("moving")) >= 3 and len(segments("people")) >= 3,
                 120)  # fmt: skip
        health = httpx.get(f"{hub.base}/healthz", timeout=5).json()
        assert health["recording"]["cameras"]["still"]["mode"] == "motion"
        assert health["recording"]["cameras"]["life"]["mode"] == "objects"
        moving, people = segments("moving"), segments("people")
        assert {s["mode"] for s in moving} == {"motion"}
        assert {s["mode"] for s in people} == {"objects"}
        assert sum(s["end"] - s["start"] for s in moving) >= 10
        assert sum(s["end"] - s["start"] for s in people) >= 6
        # seconds with motion / moving objects counted (fewer than recorded on a loaded
        # machine: the analysis samples fewer frames then)
        assert sum(s["motion_s"] for s in moving) >= 2
        assert sum(s["objects_s"] for s in people) >= 2  # the walkers, counted
        assert segments("still") == []  # read and analysed the whole time, never recorded
        # motion everywhere, no object: recorded only around its own alerts (video quality
        # diagnosis may well find the automaton's picture odd), never for an object
        life = segments("life")
        assert all(s["objects_s"] == 0 for s in life), life
        if life:
            assert hub.get("/api/alerts", camera_id="life")["total"] >= 1, life
        assert hub.camera("life")["status"]["state"] == "online"
        line = hub.get("/api/recordings/people/timeline", start=people[0]["start"] - 60,
                       hours=1)  # fmt: skip
        assert line["activity"] and line["activity"][0][0] <= people[0]["end"]
        assert line["hours"][0]["objects_s"] >= 2
    finally:
        hub.stop()
        rtsp.stop()


def _worker_pid(config_path: Path, name: str) -> int:
    """The pid of this test's own worker process ``name`` (its command line names the
    test's config file)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(config_path).encode() in args and name.encode() in args and b"worker" in args:
            return int(proc.name)
    raise AssertionError(f"no process of worker {name}")


@pytest.mark.slow
def test_distributed_workers_record_what_they_hold_and_a_moved_lease_leaves_a_gap(
    tmp_path: Path, models_dir: Path, rtsp_server_factory: Callable[..., RtspServer]
) -> None:
    """`shaobing run --workers 2` (Redis bus and leases): each worker records the camera it
    holds (its own spool), segments indexed in the one database and served by the API;
    the holder of a camera killed (SIGKILL), the camera's lease moves (or comes back to
    the restarted worker) and its recording goes on, with the gap in the timeline."""
    server = rtsp_server_factory({"c1": "crosswalk_people.mp4", "c2": "crosswalk_people.mp4"})
    ids = ["dr-1", "dr-2"]
    with redis_prefix() as prefix:
        cfg = {
            "detector": {"model": str(models_dir / "yolox_nano.onnx"), "workers": 1},
            "bus": {"kind": "redis", "url": REDIS_URL, "prefix": prefix, "lease_s": 4},
            "cameras": [{"id": cid, "source": {"url": server.url(f"c{i + 1}")},
                         "detect_fps": 1, "record": {"mode": "continuous", "segment_s": 4}}
                        for i, cid in enumerate(ids)],
        }  # fmt: skip
        hub = HubProcess(tmp_path, cfg, args=["--workers", "2"])
        r = redis.Redis.from_url(REDIS_URL)

        def holders() -> dict[str, str]:
            values = r.mget([f"{prefix}:lease:{c}" for c in ids])
            return {c: v.decode().split("@", 1)[0] for c, v in zip(ids, values, strict=True) if v}

        def segments(cid: str) -> list[dict[str, Any]]:
            return hub.get(f"/api/recordings/{cid}/segments", start=0, end=4e9)  # type: ignore[no-any-return]

        try:
            hub.start()
            hub.wait("one camera per worker", lambda: len(set(holders().values())) == 2, 90)
            hub.wait("two segments of each camera",
                     lambda: all(len(segments(c)) >= 2 for c in ids), 90)  # fmt: skip
            held = holders()
            spool = tmp_path / "data" / "recording-spool"
            for cid, worker in held.items():  # each recorded by the worker holding it
                assert (spool / worker / cid).is_dir(), sorted(spool.rglob("*"))
            victim = held["dr-1"]
            os.kill(_worker_pid(hub.config_path, victim), signal.SIGKILL)
            killed_at = time.time()
            hub.wait("dr-1 recorded again after the kill",
                     lambda: [s for s in segments("dr-1") if s["start"] > killed_at],
                     90)  # fmt: skip
            segs = segments("dr-1")
            gaps = [b["start"] - a["end"] for a, b in zip(segs, segs[1:], strict=False)]
            assert max(gaps) >= 2.0, gaps  # the lease's move: a gap in the recording
            day = int(segs[0]["start"]) // 86400 * 86400
            timeline = hub.get("/api/recordings/dr-1/timeline", start=day, hours=48)
            assert len(timeline["spans"]) >= 2  # and the timeline shows it
            assert len(segments("dr-2")) >= 2
        finally:
            hub.stop()
