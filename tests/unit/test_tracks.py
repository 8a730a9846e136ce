"""The track indexer (pure: fake tracked boxes in, finished tracks out) and the colour
namer (synthetic crops of known colours, and crops of real footage)."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from analytics.types import Detections
from tracks.colour import COLOURS, dominant_colour
from tracks.indexer import Crop, FinishedTrack, IndexerConfig, TrackIndexer

CFG = IndexerConfig(min_frames=5, min_score=0.5, end_after_s=3.0, max_track_s=60.0)
PERSON, CAR, MOTORCYCLE = 0, 2, 3


def boxes(*objects: tuple[int, int, float, float]) -> Detections:
    """Tracked boxes: (track id, class id, score, size) each, at distinct places."""
    xyxy = [[10.0 * i, 10.0, 10.0 * i + size, 10.0 + size]
            for i, (_, _, _, size) in enumerate(objects)]  # fmt: skip
    return Detections(
        np.array(xyxy, dtype=np.float32).reshape(-1, 4),
        np.array([o[2] for o in objects]),
        np.array([o[1] for o in objects]),
        np.array([o[0] for o in objects]),
    )


def feed(
    indexer: TrackIndexer, frames: list[Detections], *, start: float = 1000.0, dt: float = 0.2
) -> tuple[list[FinishedTrack], float]:
    """Feed frames of camera ``cam`` every ``dt`` s; the tracks ended, and the last time."""
    ended: list[FinishedTrack] = []
    t = start
    for i, frame in enumerate(frames):
        t = start + i * dt
        ended += indexer.observe("cam", t, frame).ended
    return ended, t


def test_a_confirmed_track_is_indexed_when_it_ends_after_the_gap() -> None:
    indexer = TrackIndexer(CFG)
    ended, t = feed(indexer, [boxes((7, CAR, 0.8, 40))] * 10)
    assert ended == [] and len(indexer.open_tracks("cam")) == 1
    # Not seen for less than end_after_s: still open.
    assert indexer.observe("cam", t + 2.9, Detections.empty()).ended == []
    out = indexer.observe("cam", t + 3.1, Detections.empty()).ended
    assert len(out) == 1
    track = out[0]
    assert track.confirmed and track.track_id == 7 and track.class_id == CAR
    assert track.first_seen == 1000.0 and track.last_seen == pytest.approx(t)
    assert track.frames == 10 and track.score == pytest.approx(0.8)
    assert indexer.open_tracks("cam") == []


def test_short_or_unsure_tracks_are_not_confirmed() -> None:
    indexer = TrackIndexer(CFG)
    flicker = [boxes((1, PERSON, 0.9, 30))] * 4  # too few frames
    ended, t = feed(indexer, flicker)
    ended += indexer.observe("cam", t + 5, Detections.empty()).ended
    unsure = [boxes((2, PERSON, s, 30)) for s in (0.3, 0.4, 0.9, 0.35, 0.45, 0.3)]
    more, t = feed(indexer, unsure, start=t + 10)  # median 0.375 < 0.5
    ended += more + indexer.observe("cam", t + 5, Detections.empty()).ended
    assert [(e.track_id, e.confirmed) for e in ended] == [(1, False), (2, False)]
    assert indexer.rejected == 2


def test_the_class_is_the_majority_vote() -> None:
    indexer = TrackIndexer(CFG)
    classes = [MOTORCYCLE, PERSON, MOTORCYCLE, MOTORCYCLE, PERSON, MOTORCYCLE, CAR]
    ended, t = feed(indexer, [boxes((3, c, 0.7, 30)) for c in classes])
    ended += indexer.flush()
    assert len(ended) == 1 and ended[0].class_id == MOTORCYCLE and ended[0].confirmed


def test_crops_are_asked_for_the_largest_good_box_only() -> None:
    indexer = TrackIndexer(CFG)
    sizes_scores = [(20, 0.8), (21, 0.8), (30, 0.3), (30, 0.8), (31, 0.8), (40, 0.9)]
    asked = []
    for i, (size, score) in enumerate(sizes_scores):
        out = indexer.observe("cam", 1000 + i * 0.2, boxes((5, CAR, score, size)))
        for req in out.crops:
            asked.append(size)
            indexer.set_crop("cam", req.track_id, Crop(b"jpeg", "red", req.area, req.score))
    # 21 is not 20% larger than 20; 30 at score 0.3 is not good; 31 not larger than 30.
    assert asked == [20, 30, 40]
    (track,) = indexer.flush()
    assert track.crop is not None and track.crop.area == 40 * 40 and track.crop.colour == "red"


def test_tracks_of_cameras_and_ids_are_kept_apart() -> None:
    indexer = TrackIndexer(CFG)
    for i in range(6):
        t = 1000 + i * 0.2
        indexer.observe("north", t, boxes((1, PERSON, 0.8, 30), (2, CAR, 0.8, 50)))
        indexer.observe("south", t, boxes((1, CAR, 0.8, 50)))
    # North's car leaves; its person and south's car stay.
    ended = []
    for i in range(6, 30):
        t = 1000 + i * 0.2
        ended += indexer.observe("north", t, boxes((1, PERSON, 0.8, 30))).ended
        ended += indexer.observe("south", t, boxes((1, CAR, 0.8, 50))).ended
    assert [(e.camera_id, e.track_id, e.class_id) for e in ended] == [("north", 2, CAR)]
    rest = sorted((e.camera_id, e.track_id, e.class_id, e.frames) for e in indexer.flush())
    assert rest == [("north", 1, PERSON, 30), ("south", 1, CAR, 30)]


def test_a_long_stay_is_split_into_entries() -> None:
    indexer = TrackIndexer(CFG)  # max_track_s 60
    ended, _ = feed(indexer, [boxes((9, CAR, 0.8, 50))] * 700, dt=0.2)  # 140 s parked
    ended += indexer.flush()
    assert [round(e.last_seen - e.first_seen) for e in ended] == [60, 60, 20]
    assert all(e.confirmed and e.track_id == 9 for e in ended)
    assert ended[1].first_seen == pytest.approx(ended[0].last_seen + 0.2)


def test_a_clock_going_back_ends_the_open_tracks() -> None:
    indexer = TrackIndexer(CFG)
    feed(indexer, [boxes((1, PERSON, 0.8, 30))] * 6, start=1000.0)
    out = indexer.observe("cam", 500.0, boxes((1, PERSON, 0.8, 30)))
    assert [(e.track_id, e.first_seen) for e in out.ended] == [(1, 1000.0)]
    assert [t.first_seen for t in indexer.open_tracks("cam")] == [500.0]


def test_a_silent_camera_has_its_tracks_ended() -> None:
    indexer = TrackIndexer(CFG)
    for i in range(6):
        indexer.observe("cam", 1000 + i * 0.2, boxes((1, PERSON, 0.8, 30)), received=50.0 + i)
    assert indexer.expire_idle(now=60.0, idle_s=13.0) == []
    ended = indexer.expire_idle(now=70.0, idle_s=13.0)
    assert [(e.track_id, e.confirmed) for e in ended] == [(1, True)]


def test_untracked_boxes_are_ignored_and_open_tracks_are_bounded() -> None:
    indexer = TrackIndexer(IndexerConfig(max_open=3))
    untracked = Detections(np.array([[0, 0, 10, 10]]), np.array([0.9]), np.array([0]))
    assert indexer.observe("cam", 1.0, untracked).crops == []
    assert indexer.open_tracks("cam") == []
    many = boxes(*[(i, PERSON, 0.9, 10) for i in range(5)])
    out = indexer.observe("cam", 2.0, many)
    assert len(indexer.open_tracks("cam")) == 3 and len(out.ended) == 2


# -- colour --------------------------------------------------------------------------------

#: A colour name → an HSV (OpenCV ranges) typical of it.
HSV_OF = {
    "red": (0, 220, 200), "orange": (14, 230, 230), "yellow": (27, 220, 230),
    "green": (60, 200, 160), "cyan": (90, 200, 200), "blue": (115, 220, 200),
    "purple": (145, 160, 170), "white": (0, 10, 235), "grey": (0, 10, 128),
    "black": (0, 0, 25),
}  # fmt: skip


def solid(hsv: tuple[int, int, int], size: tuple[int, int] = (60, 40)) -> np.ndarray:
    patch = np.full((size[0], size[1], 3), hsv, dtype=np.uint8)
    return cv2.cvtColor(patch, cv2.COLOR_HSV2BGR)


@pytest.mark.parametrize("name", COLOURS)
def test_a_solid_crop_is_named_its_colour(name: str) -> None:
    rng = np.random.default_rng(1)
    crop = solid(HSV_OF[name]).astype(np.int16) + rng.integers(-6, 7, (60, 40, 3))
    assert dominant_colour(np.clip(crop, 0, 255).astype(np.uint8)) == name


def test_the_centre_decides_not_the_background() -> None:
    crop = solid(HSV_OF["grey"], (100, 100))  # road all around
    crop[25:75, 25:75] = solid(HSV_OF["red"], (50, 50))
    assert dominant_colour(crop) == "red"
    crop = solid(HSV_OF["green"], (100, 100))  # a hedge behind a white van
    crop[15:85, 15:85] = solid(HSV_OF["white"], (70, 70))
    assert dominant_colour(crop) == "white"


def test_a_coloured_car_with_dark_windows_and_tyres_is_its_colour() -> None:
    crop = solid(HSV_OF["blue"], (100, 100))
    crop[20:45, 20:80] = solid(HSV_OF["black"], (25, 60))  # windscreen
    crop[60:80, 20:80] = solid(HSV_OF["grey"], (20, 60))  # bumper and shadow
    assert dominant_colour(crop) == "blue"


def test_dark_shadows_with_a_colour_cast_are_black() -> None:
    # A black jacket in a camera whose shadows are bluish: saturated but dark.
    assert dominant_colour(solid((120, 90, 66))) == "black"


def test_an_empty_crop_has_no_colour() -> None:
    assert dominant_colour(np.zeros((0, 10, 3), np.uint8)) is None


def frame_at(clip: Path, index: int) -> np.ndarray:
    with av.open(str(clip)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return frame.to_ndarray(format="bgr24")
    raise AssertionError(f"{clip} has no frame {index}")


#: Objects in the shared clips, boxed by yolox_nano (clip, frame, box, colour seen).
REAL_OBJECTS = [
    ("street_parked_cars.mp4", 60, (88, 130, 159, 182), "red"),  # a red car parked
    ("highway_divided.mp4", 120, (153, 160, 210, 206), "blue"),  # a light-blue van
    ("highway_divided.mp4", 60, (132, 168, 186, 210), "black"),  # a black SUV
    ("crosswalk_people.mp4", 0, (257, 38, 334, 264), "white"),  # white shirt, light trousers
]


@pytest.mark.parametrize(("clip", "index", "box", "colour"), REAL_OBJECTS,
                         ids=[f"{c}-{col}" for c, _, _, col in REAL_OBJECTS])  # fmt: skip
def test_real_crops_are_named_as_a_person_would(
    videos_dir: Path, clip: str, index: int, box: tuple[int, int, int, int], colour: str
) -> None:
    image = frame_at(videos_dir / clip, index)
    x1, y1, x2, y2 = box
    assert dominant_colour(image[y1:y2, x1:x2]) == colour
