"""Moving tracked objects (analytics/activity.py): what the recorder's objects mode and
the timeline's activity marks count."""

from __future__ import annotations

import numpy as np

from analytics.activity import moving_objects
from analytics.history import TrackHistory
from analytics.types import Detections

NAMES = ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
         "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
         "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
         "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
         "kite"]  # fmt: skip


def frame(boxes: list[tuple[float, float, float, float, int, int]]) -> Detections:
    """(x1, y1, x2, y2, class id, track id) per box."""
    arr = np.array(boxes, dtype=np.float64).reshape(-1, 6)
    return Detections(arr[:, :4], np.full(len(arr), 0.9), arr[:, 4], arr[:, 5].astype(np.int64))


def run(per_frame: list[list[tuple[float, float, float, float, int, int]]]) -> int:
    history = TrackHistory()
    t = 0.0
    for boxes in per_frame:
        tracked = frame(boxes)
        history.update(tracked, t)
        t += 0.5
    return moving_objects(tracked, history, t - 0.5, NAMES)


def test_a_walker_moves_a_parked_car_does_not() -> None:
    frames = [[(100 + 20 * k, 100, 140 + 20 * k, 200, 0, 1),  # a walker, 100 px tall
               (300, 300, 420, 360, 2, 2)]  # a parked car
              for k in range(6)]  # fmt: skip
    assert run(frames) == 1


def test_a_person_standing_still_or_swaying_is_not_activity() -> None:
    frames = [[(100 + (3 if k % 2 else 0), 100, 140, 200, 0, 1)] for k in range(8)]
    assert run(frames) == 0


def test_only_people_and_vehicles_count() -> None:
    kite = NAMES.index("kite")
    frames = [[(50 * k, 50, 50 * k + 30, 80, kite, 7)] for k in range(6)]
    assert run(frames) == 0
    car = NAMES.index("car")
    frames = [[(50 * k, 50, 50 * k + 60, 80, car, 8)] for k in range(6)]
    assert run(frames) == 1


def test_a_walker_who_turned_back_within_the_window_still_moved() -> None:
    xs = [100, 140, 180, 140, 100, 100]
    frames = [[(x, 100, x + 40, 200, 0, 1)] for x in xs]
    assert run(frames) == 1


def test_only_the_last_seconds_count() -> None:
    """A walker who stopped more than the window ago is not moving now."""
    frames = [[(100 + 40 * min(k, 3), 100, 140 + 40 * min(k, 3), 200, 0, 1)] for k in range(14)]
    assert run(frames) == 0
