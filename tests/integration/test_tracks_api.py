"""The track index of a real hub (its database, clip recorder and ``tracks`` thread; no
camera started): synthetic frames in, rows, thumbnails and clips out; the search API
with its filters, scope, evidence routes and errors; retention; the queue that never
blocks analysis; the search on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from accounts import passwords
from accounts.service import create_user
from analytics.types import Detections
from api.app import create_app
from core.area import Area
from shaobing.bootstrap import Hub
from shaobing.config import parse_config
from tests.databases import database
from tests.integration.test_clips import fill_ring, stream_time
from tracks import store
from tracks.config import TracksConfig
from tracks.service import CameraPlace, TrackIndex

PW = "tracks-pass-0123"
COUNTY = {"county": "示例县"}
CG = {**COUNTY, "township": "城关镇", "village": "人民村"}
HX = {**COUNTY, "township": "河西镇", "village": "河西村"}
SOURCE = (640, 360)  # the camera's picture
ANALYSED = (320, 180)  # what the detector saw: boxes are in these pixels
RED, BLUE, GREY = (30, 30, 200), (200, 60, 20), (128, 128, 128)  # BGR
CAR, PERSON = 2, 0


@dataclass
class FakeFrame:
    """An analysed frame: a grey street with coloured objects painted at their boxes."""

    wall_ts: float
    objects: list[tuple[tuple[float, float, float, float], tuple[int, int, int]]]

    @property
    def frame_size(self) -> tuple[int, int]:
        return ANALYSED

    @property
    def source(self) -> av.VideoFrame:
        """The decoded picture, in the decoder's format (YUV), as a reader hands it on."""
        image = np.full((SOURCE[1], SOURCE[0], 3), GREY, np.uint8)
        sx, sy = SOURCE[0] / ANALYSED[0], SOURCE[1] / ANALYSED[1]
        for (x1, y1, x2, y2), colour in self.objects:
            cv2.rectangle(image, (int(x1 * sx), int(y1 * sy)), (int(x2 * sx), int(y2 * sy)),
                          colour, -1)  # fmt: skip
        return av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")


def tracked(*objects: tuple[int, int, float, tuple[float, float, float, float]]) -> Detections:
    """(track id, class, score, box) each."""
    return Detections(
        np.array([o[3] for o in objects], dtype=np.float32).reshape(-1, 4),
        np.array([o[2] for o in objects]), np.array([o[1] for o in objects]),
        np.array([o[0] for o in objects]),
    )  # fmt: skip


def hub_config(tmp: Path, models_dir: Path) -> dict[str, Any]:
    def camera(cam_id: str, area: dict[str, str]) -> dict[str, Any]:
        return {"id": cam_id, "name": f"{cam_id} 路口", "area": area,
                "source": {"url": f"rtsp://127.0.0.1:9/{cam_id}"}}  # fmt: skip

    return {
        "data_dir": str(tmp / "data"),
        "detector": {"model": str(models_dir / "yolox_nano.onnx")},
        "tracks": {"min_frames": 5, "min_score": 0.5, "end_after_s": 2.0},
        "cameras": [camera("cg-cam", CG), camera("hx-cam", HX)],
    }


def wait_for(what: str, check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def rows(hub: Hub) -> list[store.TrackRecord]:
    with hub.sessions() as session:
        return list(session.query(store.TrackRecord).order_by(store.TrackRecord.camera_id))


class World:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        app = create_app(hub.services, hub.sessions, allowed_hosts=["testserver"])
        self.client = TestClient(app)
        self.tokens: dict[str, str] = {}

    def login(self, name: str) -> None:
        r = self.client.post("/api/auth/login", json={"username": name, "password": PW})
        assert r.status_code == 200, r.text
        self.client.cookies.clear()
        self.tokens[name] = r.json()["token"]

    def get(self, name: str, url: str, **headers: str) -> Any:
        return self.client.get(url, headers={"Authorization": f"Bearer {self.tokens[name]}",
                                             **headers})  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, models_dir: Path,
          videos_dir: Path) -> Iterator[World]:  # fmt: skip
    tmp = tmp_path_factory.mktemp("tracks")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(passwords, "HASHER", PasswordHasher(time_cost=1, memory_cost=8,
                                                       parallelism=1))  # fmt: skip
        hub = Hub(parse_config(hub_config(tmp, models_dir), "tracks.yaml", tmp))
        for cam in hub.load_cameras():
            hub.cameras[cam.id] = cam
        # The clip recorder's ring of cg-cam holds a real clip on its stream clock: the
        # frames below use the same clock (seconds 1 to 9 of crosswalk_people.mp4).
        ring = hub.producer.clips.ring("cg-cam")
        assert ring is not None
        ring.clock = stream_time
        fill_ring(videos_dir / "crosswalk_people.mp4", ring)
        hub.producer.clips.start()
        hub.tracks.start()
        w = World(hub)
        with hub.sessions.begin() as session:
            for name, role, area in (("admin", "admin", {}), ("op-cg", "operator", CG),
                                     ("op-hx", "operator", HX), ("viewer", "viewer", COUNTY),
                                     ("investigator", "investigator", COUNTY)):  # fmt: skip
                create_user(session, name, role, password=PW, area=Area(**area))
        for name in ("admin", "op-cg", "op-hx", "viewer", "investigator"):
            w.login(name)
        play_scene(hub)
        yield w
        hub.tracks.stop()
        hub.producer.clips.stop()
        hub.engine.dispose()


def play_scene(hub: Hub) -> None:
    """cg-cam: a red car for 5 s (25 frames) and a 3-frame flicker; hx-cam: a person in
    blue. Then empty frames until both have ended."""
    car_box, ghost_box, person_box = (40, 60, 120, 110), (200, 20, 230, 50), (150, 40, 180, 140)
    t = 1.0
    for i in range(25):
        t = 1.0 + i * 0.2
        objects = [(5, CAR, 0.8, car_box)]
        painted = [(car_box, RED)]
        if i < 3:
            objects.append((6, PERSON, 0.9, ghost_box))
        hub.tracks.submit("cg-cam", FakeFrame(t, painted), tracked(*objects))
        hub.tracks.submit("hx-cam", FakeFrame(1000.0 + t, [(person_box, BLUE)]),
                          tracked((1, PERSON, 0.7, person_box)))  # fmt: skip
        time.sleep(0.01)  # a camera's pace; the queue holds 64
    for i in range(1, 15):
        hub.tracks.submit("cg-cam", FakeFrame(t + i * 0.2, []), Detections.empty())
        hub.tracks.submit("hx-cam", FakeFrame(1000.0 + t + i * 0.2, []), Detections.empty())
    wait_for(
        "two tracks indexed, one with its clip",
        lambda: len(found := rows(hub)) == 2 and found[0].clip_path,
    )


def test_confirmed_tracks_are_stored_with_thumbnail_colour_and_clip(world: World) -> None:
    hub = world.hub
    car, person = rows(hub)
    assert (car.camera_id, car.object_class, car.colour, car.frames) == ("cg-cam", "car", "red", 25)
    assert (car.camera_name, car.township, car.village) == ("cg-cam 路口", "城关镇", "人民村")
    assert car.first_seen == pytest.approx(1.0) and car.last_seen == pytest.approx(5.8)
    assert car.score == pytest.approx(0.8)
    assert (person.camera_id, person.object_class, person.colour) == ("hx-cam", "person", "blue")
    assert hub.tracks.indexer.rejected == 1  # the 3-frame flicker
    assert person.clip_path is None  # hx-cam has no ring (no stream ever opened)
    # The thumbnail: a small JPEG of the best crop, taken from the full-resolution picture.
    # Stored through the evidence storage: references are keys under tracks/.
    assert car.thumbnail_path is not None and car.thumbnail_path.startswith("tracks/cg-cam/")
    assert car.clip_path is not None and car.clip_path.startswith("tracks/cg-cam/")
    thumb_file = hub.evidence.local_path(car.thumbnail_path)
    clip_file = hub.evidence.local_path(car.clip_path)
    assert thumb_file is not None and clip_file is not None
    thumb = cv2.imread(str(thumb_file))
    assert thumb is not None and max(thumb.shape[:2]) <= 192 and thumb.shape[1] > 150
    # The clip: from 2 s before the first sighting (the keyframe before it) to 2 s after.
    assert car.clip_sha256
    with av.open(str(clip_file)) as clip:
        frames = list(clip.decode(video=0))
    assert frames[0].key_frame and (frames[0].width, frames[0].height) == (640, 360)
    assert 7.5 < frames[-1].time - frames[0].time < 8.2  # keyframe at 0 s .. 5.8 + 2 s
    assert car.size_bytes == thumb_file.stat().st_size + clip_file.stat().st_size
    # Every folder of the index is the owner's only.
    folder = clip_file.parent
    for level in (folder, folder.parent, folder.parent.parent):
        assert stat.S_IMODE(level.stat().st_mode) == 0o700, level
    assert level == hub.snapshot_dir / "tracks"


def test_search_filters_by_time_camera_area_class_and_colour(world: World) -> None:
    def ids(url: str) -> list[str]:
        r = world.get("investigator", url)
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["total"] == len(page["items"])
        return [i["camera_id"] for i in page["items"]]

    assert ids("/api/tracks") == ["hx-cam", "cg-cam"]  # newest first
    assert ids("/api/tracks?object_class=car&colour=red") == ["cg-cam"]
    assert ids("/api/tracks?colour=blue") == ["hx-cam"]
    assert ids("/api/tracks?object_class=truck") == []
    assert ids("/api/tracks?camera_id=cg-cam") == ["cg-cam"]
    assert ids("/api/tracks?area=示例县/河西镇") == ["hx-cam"]
    assert ids("/api/tracks?area=示例县/城关镇/人民村") == ["cg-cam"]
    # Seen in a range: any overlap counts (the car was there from 1.0 to 5.8 s).
    assert ids("/api/tracks?start=5&end=6") == ["cg-cam"]
    assert ids("/api/tracks?start=0&end=1.5") == ["cg-cam"]
    assert ids("/api/tracks?start=6&end=900") == []
    assert ids("/api/tracks?start=1000") == ["hx-cam"]
    page = world.get("investigator", "/api/tracks?limit=1&offset=1").json()
    assert page["total"] == 2 and [i["camera_id"] for i in page["items"]] == ["cg-cam"]
    item = page["items"][0]
    assert item["thumbnail_url"] == f"/api/tracks/{item['id']}/thumbnail.jpg"
    assert item["clip_url"] == f"/api/tracks/{item['id']}/clip.mp4"
    assert item["area"]["township"] == "城关镇" and item["camera_name"] == "cg-cam 路口"


@pytest.mark.parametrize("query", [
    "colour=magenta", "start=-1", "end=abc", "start=10&end=5", "limit=0", "limit=501",
    "offset=-1", "area=" + "x" * 301, "camera_id=" + "c" * 65, "start=1e12",
])  # fmt: skip
def test_bad_parameters_are_422_not_500(world: World, query: str) -> None:
    r = world.get("admin", f"/api/tracks?{query}")
    assert r.status_code == 422, r.text


def test_a_township_user_sees_only_its_townships_tracks(world: World) -> None:
    car, person = rows(world.hub)
    for name, mine, other in (("op-cg", car, person), ("op-hx", person, car)):
        page = world.get(name, "/api/tracks").json()
        assert [i["id"] for i in page["items"]] == [mine.id] and page["total"] == 1
        # A filter narrows the scope, never widens it.
        wider = world.get(name, f"/api/tracks?camera_id={other.camera_id}").json()
        assert wider == {"total": 0, "limit": 50, "offset": 0, "items": []}
        assert world.get(name, "/api/tracks?area=示例县").json()["total"] == 1
        assert world.get(name, f"/api/tracks/{mine.id}/thumbnail.jpg").status_code == 200
        for route in ("thumbnail.jpg", "clip.mp4"):
            assert world.get(name, f"/api/tracks/{other.id}/{route}").status_code == 404
    assert world.get("op-cg", f"/api/tracks/{car.id}/clip.mp4").status_code == 200
    # No evidence permission, no search.
    r = world.get("viewer", "/api/tracks")
    assert r.status_code == 403 and "evidence:read" in r.json()["detail"]


def test_thumbnail_and_clip_are_served_with_ranges(world: World) -> None:
    car = rows(world.hub)[0]
    thumb = world.get("investigator", f"/api/tracks/{car.id}/thumbnail.jpg")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(thumb.content, np.uint8), cv2.IMREAD_COLOR) is not None
    url = f"/api/tracks/{car.id}/clip.mp4"
    part = world.get("investigator", url, Range="bytes=0-99")
    assert part.status_code == 206 and len(part.content) == 100
    whole = world.get("investigator", url)
    assert whole.status_code == 200 and whole.content[:100] == part.content
    assert whole.headers["x-content-sha256"] == car.clip_sha256
    with av.open(io.BytesIO(whole.content)) as clip:
        assert clip.streams.video[0].codec_context.name == "h264"
    assert world.get("investigator", "/api/tracks/no-such-track/clip.mp4").status_code == 404

    def viewings() -> int:
        audit = world.get("admin", "/api/audit?action=evidence_view&limit=500").json()
        entries = audit["items"] if isinstance(audit, dict) else audit
        return sum(e["target"] == f"track:{car.id}" for e in entries)

    before = viewings()
    assert world.get("investigator", url, Range="bytes=100-199").status_code == 206
    assert viewings() == before  # a player's further ranges are the same viewing
    assert world.get("investigator", url).status_code == 200
    assert viewings() == before + 1


def test_healthz_reports_the_tracks_thread(world: World) -> None:
    threads = world.client.get("/healthz").json()["threads"]
    assert threads["tracks"] is True


# -- retention -----------------------------------------------------------------------------


def add_stored(index: TrackIndex, first_seen: float, size: int) -> store.TrackRecord:
    folder = index.directory / "cam" / "day"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"t{first_seen:.0f}"
    thumb, clip = folder / f"{name}.jpg", folder / f"{name}.mp4"
    thumb.write_bytes(b"j" * 10)
    clip.write_bytes(b"m" * (size - 10))
    record = store.TrackRecord(
        id=name, camera_id="cam", camera_name="cam", track_id=1, object_class="car",
        colour="red", first_seen=first_seen, last_seen=first_seen + 5, frames=10, score=0.8,
        thumbnail_path=str(thumb), clip_path=str(clip), clip_sha256="x", size_bytes=size,
        created_at=first_seen,
    )  # fmt: skip
    with index.sessions.begin() as session:
        store.add_track(session, record)
    return record


def test_retention_deletes_old_tracks_then_the_oldest_beyond_the_quota(tmp_path: Path) -> None:
    with database("sqlite", tmp_path) as sessions:
        day = 86400.0
        now = 100 * day
        index = TrackIndex(TracksConfig(retention_days=30, max_disk_mb=1), sessions,
                           tmp_path / "tracks", ["car"], lambda _: None,
                           clock=lambda: now)  # fmt: skip
        old = add_stored(index, now - 31 * day, 1000)
        mid = [add_stored(index, now - (20 - i) * day, 400_000) for i in range(4)]  # 1.6 MB
        assert index.sweep() == 1 + 2  # the expired one, then the oldest over 1 MiB
        with sessions() as session:
            left = sorted(r.id for r in session.query(store.TrackRecord))
        assert left == sorted(r.id for r in mid[2:])
        for record in (old, *mid[:2]):
            assert not Path(str(record.thumbnail_path)).exists()
            assert not Path(str(record.clip_path)).exists()
        for record in mid[2:]:
            assert Path(str(record.clip_path)).exists()
        assert index.sweep() == 0


# -- the queue and the thread ----------------------------------------------------------------


def test_a_full_queue_drops_and_counts_and_the_thread_survives_errors(tmp_path: Path) -> None:
    with database("sqlite", tmp_path) as sessions:
        index = TrackIndex(TracksConfig(), sessions, tmp_path / "tracks", ["person"],
                           lambda _: CameraPlace("cam", Area()), queue_size=2)  # fmt: skip
        release = threading.Event()
        calls: list[float] = []
        observe = index.indexer.observe

        def slow_then_failing(camera_id: str, ts: float, boxes: Detections, **kw: Any) -> Any:
            calls.append(ts)
            if len(calls) == 1:
                release.wait(10)
            if len(calls) == 2:
                raise RuntimeError("a bad frame")
            return observe(camera_id, ts, boxes, **kw)

        index.indexer.observe = slow_then_failing  # type: ignore[method-assign]
        index.start()
        box = (10.0, 10.0, 50.0, 90.0)
        for i in range(10):  # the thread is blocked on the first: submit must not wait
            index.submit("cam", FakeFrame(float(i), [(box, RED)]), tracked((1, PERSON, 0.9, box)))
        assert index.dropped >= 6  # one being handled, two (or three) queued
        release.set()
        wait_for("the queued frames handled", lambda: len(calls) == 10 - index.dropped)
        assert index.errors == 1 and index.threads[0].is_alive()
        for i in range(10, 20):  # the thread goes on after the error
            index.submit("cam", FakeFrame(float(i), [(box, RED)]), tracked((1, PERSON, 0.9, box)))
            time.sleep(0.01)
        index.stop()
        assert not index.threads[0].is_alive()
        with sessions() as session:
            (record,) = session.query(store.TrackRecord).all()  # indexed at stop
        assert record.object_class == "person" and record.colour == "red"


def test_nothing_is_queued_when_the_index_is_off(tmp_path: Path) -> None:
    with database("sqlite", tmp_path) as sessions:
        index = TrackIndex(TracksConfig(enabled=False), sessions, tmp_path / "t", ["person"],
                           lambda _: None)  # fmt: skip
        index.start()
        index.submit("cam", FakeFrame(1.0, []), Detections.empty())
        assert index.threads == [] and index.dropped == 0 and not (tmp_path / "t").exists()


# -- the search on both databases -----------------------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_search_in_sql_on_both_databases(kind: str, tmp_path: Path) -> None:
    with database(kind, tmp_path) as sessions:
        specs = [  # id, camera, area, class, colour, first, last
            ("a", "c1", CG, "car", "red", 100.0, 110.0),
            ("b", "c1", CG, "person", "blue", 200.0, 500.0),
            ("c", "c2", HX, "car", "red", 300.0, 301.0),
            ("d", "c2", HX, "motorcycle", "red", 7300.0, 7310.0),
        ]
        with sessions.begin() as session:
            for tid, cam, area, cls, colour, first, last in specs:
                store.add_track(session, store.TrackRecord(
                    id=tid, camera_id=cam, camera_name=cam, **area, track_id=1,
                    object_class=cls, colour=colour, first_seen=first, last_seen=last,
                    frames=10, score=0.8, size_bytes=0, created_at=last,
                ))  # fmt: skip

        def ids(scope: tuple[str, ...] | None = None, **q: Any) -> list[str]:
            with sessions() as session:
                found, total = store.search(session, store.TrackQuery(**q), scope)
            assert total == len(found) or "limit" in q
            return [r.id for r in found]

        assert ids() == ["d", "c", "b", "a"]
        assert ids(object_class="car", colour="red") == ["c", "a"]
        assert ids(start=400.0, end=7200.0) == ["b"]  # still there at 400 s
        assert ids(start=7000.0, end=7400.0, colour="red", object_class="motorcycle") == ["d"]
        assert ids(scope=("示例县", "城关镇")) == ["b", "a"]
        assert ids(scope=("示例县", "城关镇"), area=("示例县", "河西镇")) == []
        assert ids(area=("示例县", "河西镇", "河西村"), camera_id="c2") == ["d", "c"]
        assert ids(limit=2, offset=1) == ["c", "b"]
        with sessions() as session:
            assert store.search(session, store.TrackQuery(limit=1), None)[1] == 4
