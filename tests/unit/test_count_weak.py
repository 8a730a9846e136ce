"""Counting that holds (issue 25): the counting lines' own tracker follows the detector's
weak boxes (scored below its confidence), so vehicles in rain, mist or spray are counted;
no other rule sees them."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.config import DetectConfig, IntrusionRule, LineCrossingRule, MotionConfig
from analytics.pipeline import CameraAnalytics, CameraRulesConfig
from analytics.types import COCO_CLASSES, Detections, Event
from eval.detcache import _from_row, _to_row
from tests.unit.test_rules_catalogue import CAR, FRAME

LINE = LineCrossingRule(
    name="count", type="line_crossing", line=[(0.0, 0.5), (1.0, 0.5)], direction="b_to_a",
    classes=["car", "truck", "bus"], coordinates="normalized",
)  # fmt: skip
ZONE_RULE = IntrusionRule(name="in", type="intrusion", classes=["car"])


def car(x: float, y: float, score: float) -> Detections:
    """A 40x30 px car whose bottom centre is at (x, y)."""
    return Detections(np.array([[x - 20, y - 30, x + 20, y]]), np.array([score]), np.array([CAR]))


def weak_only(d: Detections) -> Detections:
    """What the detector hands over when every box scored below its confidence."""
    out = Detections.empty()
    out.weak = d
    return out


def run(frames: list[Detections], *, count_weak: bool = True) -> list[Event]:
    cfg = CameraRulesConfig("cam", 5.0, [], [LINE, ZONE_RULE], MotionConfig(enabled=False),
                            DetectConfig(count_weak=count_weak))  # fmt: skip
    a = CameraAnalytics(cfg, COCO_CLASSES, use_schedules=False)
    events: list[Event] = []
    for i, d in enumerate(frames):
        t = i / 5
        events += a.process(d, t=t, pts=t, wall_ts=t, source_size=FRAME, frame_size=FRAME)[1]
    return events


def driving_up(score: float) -> list[Detections]:
    """A car driving up the image across the line at y 150, 12 px per frame."""
    return [car(200, 260 - 12 * i, score) for i in range(16)]


def test_split_sets_the_weak_boxes_aside() -> None:
    d = Detections(np.zeros((3, 4)), np.array([0.9, 0.2, 0.35]), np.array([CAR, CAR, 0]))
    s = d.split(0.3)
    assert s.confidence.tolist() == pytest.approx([0.9, 0.35])
    assert s.weak is not None and s.weak.confidence.tolist() == pytest.approx([0.2])
    strong = d[np.array([True, False, True])]
    assert strong.split(0.3) is strong and strong.weak is None
    # Indexing, merging and scaling drop them: the main path never sees weak boxes.
    assert s[:1].weak is None and Detections.merge([s]).weak is None


def test_detection_cache_keeps_the_weak_boxes() -> None:
    d = Detections(np.arange(8).reshape(2, 4), np.array([0.9, 0.2]), np.array([CAR, 7]))
    back = _from_row(_to_row(d.split(0.3)))
    assert back.confidence.tolist() == pytest.approx([0.9]) and back.class_id.tolist() == [CAR]
    assert back.weak is not None and back.weak.class_id.tolist() == [7]
    assert _from_row(_to_row(back.weak)).weak is None  # a strong-only answer stays so


def test_a_weakly_scored_car_is_counted_and_seen_by_no_other_rule() -> None:
    events = run([weak_only(d) for d in driving_up(0.22)])
    assert [e.type for e in events] == ["line_crossing"]
    assert events[0].extra["direction"] == "b_to_a"
    # Without the counting tracker it is lost, as before issue 25.
    assert run([weak_only(d) for d in driving_up(0.22)], count_weak=False) == []


def test_a_strong_car_is_counted_once_either_way() -> None:
    for count_weak in (True, False):
        events = run(driving_up(0.8), count_weak=count_weak)
        assert sorted(e.type for e in events) == ["intrusion", "line_crossing"]


def test_weak_boxes_too_faint_to_start_a_track_or_standing_still_count_nothing() -> None:
    # Below CountTracker.ACTIVATION nothing starts a track.
    assert run([weak_only(d) for d in driving_up(0.15)]) == []
    # A weak box that stays on the line (a gantry, a sign read as a bus) never crosses it.
    assert run([weak_only(car(200, 152, 0.25)) for _ in range(20)]) == []
