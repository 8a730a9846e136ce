"""The rule catalogue on synthetic tracks: each fires on its situation, stays silent otherwise."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from analytics.config import (
    CameraFaultRule,
    CongestionRule,
    CrowdRule,
    LineCrossingRule,
    LoiteringRule,
    PersonDownRule,
    ScheduleWindow,
    StoppedVehicleRule,
    WanderingRule,
    WrongWayRule,
)
from analytics.history import TrackHistory
from analytics.pipeline import in_schedule
from analytics.rules import build_rule
from analytics.rules.base import FrameContext
from analytics.types import COCO_CLASSES, Detections, Event
from analytics.zones import Zone

FRAME = (400, 300)
PERSON, CAR = 0, 2


def box(tid: int, x: float, y: float, cls: int = PERSON, w: float = 20, h: float = 40):
    """(track id, anchor x, anchor y, class, width, height)."""
    return (tid, x, y, cls, w, h)


def dets(*boxes: tuple) -> Detections:
    xyxy = [[x - w / 2, y - h, x + w / 2, y] for _, x, y, _, w, h in boxes]
    return Detections(
        np.array(xyxy, dtype=np.float32).reshape(-1, 4),
        np.full(len(boxes), 0.9),
        np.array([b[3] for b in boxes]),
        np.array([b[0] for b in boxes]),
    )


class Runner:
    """Feeds frames at 5 fps through one rule with a real track history."""

    def __init__(self, cfg, zone: Zone | None = None) -> None:
        self.rule = build_rule(cfg, zone or Zone.whole_frame(FRAME), FRAME, FRAME)
        self.history = TrackHistory()

    def frame(self, t: float, d: Detections, **ctx_kw) -> list[Event]:
        self.history.update(d, t)
        ctx = FrameContext("cam", t, t, 1000 + t, COCO_CLASSES, self.history, **ctx_kw)
        return self.rule.update(d, ctx)

    def run(self, frames) -> list[Event]:
        out: list[Event] = []
        for t, d in frames:
            out += self.frame(t, d)
        return out


def times(seconds: float, start: float = 0.0, fps: float = 5.0):
    return [start + i / fps for i in range(int(seconds * fps))]


def test_loitering_counts_reentries_within_the_window() -> None:
    cfg = LoiteringRule(name="l", type="loitering", min_duration_s=10, grace_s=1,
                        reentry_window_s=30)  # fmt: skip
    zone = Zone("z", np.array([[100, 100], [300, 100], [300, 250], [100, 250]], np.float32))
    r = Runner(cfg, zone)
    inside, outside = dets(box(1, 200, 200)), dets(box(1, 50, 50))
    frames = [(t, inside) for t in times(6)]  # 6 s inside
    frames += [(t, outside) for t in times(5, 6)]  # 5 s outside, still tracked
    frames += [(t, inside) for t in times(6, 11)]  # back: 6 + 6 = 12 s ≥ 10
    events = r.run(frames)
    assert len(events) == 1 and events[0].measured == pytest.approx(10.0, abs=0.3)
    # Without the re-entry window, neither stay reaches 10 s.
    cfg0 = LoiteringRule(name="l", type="loitering", min_duration_s=10, grace_s=1)
    assert Runner(cfg0, zone).run(frames) == []


def test_wandering_back_and_forth_fires_walking_through_does_not() -> None:
    cfg = WanderingRule(name="w", type="wandering", window_s=40, min_path_ratio=3,
                        min_path_heights=4)  # fmt: skip
    pacing = []
    for i, t in enumerate(times(30)):
        phase = (i / 5.0) % 10  # 10 s period: 5 s right, 5 s back
        x = 100 + 30 * (phase if phase < 5 else 10 - phase)
        pacing.append((t, dets(box(1, x, 200))))
    events = Runner(cfg).run(pacing)
    assert len(events) == 1 and events[0].type == "wandering"
    assert events[0].measured >= 3
    straight = [(t, dets(box(2, 20 + 10 * t, 200))) for t in times(30)]
    assert Runner(cfg).run(straight) == []
    standing = [(t, dets(box(3, 200 + (i % 3), 200 + (i % 2))))
                for i, t in enumerate(times(30))]  # jitter only  # fmt: skip
    assert Runner(cfg).run(standing) == []


def test_line_crossing_direction_and_counts() -> None:
    # Horizontal line from left to right: A (left of travel) is above, B below.
    cfg = LineCrossingRule(name="gate", type="line_crossing", line=((0.1, 0.5), (0.9, 0.5)),
                           direction="a_to_b")  # fmt: skip
    r = Runner(cfg)
    down = [(t, dets(box(1, 200, 100 + 20 * t))) for t in times(5)]  # 100 → 200: A → B
    up = [(t, dets(box(2, 250, 220 - 20 * (t - 5)))) for t in times(5, 5)]  # B → A
    events = r.run(down + up)
    assert [e.extra["direction"] for e in events] == ["a_to_b"]
    assert r.rule.counts == {"a_to_b": 1, "b_to_a": 1}
    # Crossing the infinite line outside the segment does not count.
    r2 = Runner(cfg)
    assert r2.run([(t, dets(box(3, 395, 100 + 20 * t))) for t in times(5)]) == []


def test_wrong_way_against_the_flow_only() -> None:
    cfg = WrongWayRule(name="ww", type="wrong_way", direction=(0, 1), min_duration_s=1,
                       min_distance_boxes=1)  # fmt: skip
    against = [(t, dets(box(1, 200, 280 - 40 * t, CAR, 40, 30))) for t in times(4)]
    events = Runner(cfg).run(against)
    assert len(events) == 1 and events[0].measured > 170
    with_flow = [(t, dets(box(2, 200, 50 + 40 * t, CAR, 40, 30))) for t in times(4)]
    assert Runner(cfg).run(with_flow) == []
    crossing = [(t, dets(box(3, 50 + 40 * t, 150, CAR, 40, 30))) for t in times(4)]  # 90°
    assert Runner(cfg).run(crossing) == []


def test_stopped_vehicle_clock_restarts_when_it_moves() -> None:
    cfg = StoppedVehicleRule(name="s", type="stopped_vehicle", min_duration_s=10)
    frames = [(t, dets(box(1, 100 + 15 * t, 150, CAR, 60, 40))) for t in times(5)]  # driving
    frames += [(t, dets(box(1, 175, 150, CAR, 60, 40))) for t in times(12, 5)]  # stopped 12 s
    events = Runner(cfg).run(frames)
    assert len(events) == 1
    # 10 s after it came within max_displacement of where it stopped (it crept the last
    # 12 px at 3 px per frame), not 10 s after it appeared.
    assert 14.0 <= events[0].pts <= 15.3
    moving = [(t, dets(box(2, 20 + 8 * t, 150, CAR, 60, 40))) for t in times(20)]
    assert Runner(cfg).run(moving) == []


def test_person_down_needs_a_wide_still_box() -> None:
    cfg = PersonDownRule(name="d", type="person_down", min_duration_s=5)
    lying = [(t, dets(box(1, 200, 200, PERSON, 60, 25))) for t in times(8)]
    events = Runner(cfg).run(lying)
    assert len(events) == 1 and events[0].type == "person_down"
    standing = [(t, dets(box(2, 200, 200, PERSON, 20, 50))) for t in times(8)]
    assert Runner(cfg).run(standing) == []
    crawling = [(t, dets(box(3, 50 + 30 * t, 200, PERSON, 60, 25))) for t in times(8)]
    assert Runner(cfg).run(crawling) == []


def test_crowd_fires_once_with_hysteresis() -> None:
    cfg = CrowdRule(name="c", type="crowd", min_count=10, min_duration_s=5, release_count=6,
                    release_s=3)  # fmt: skip
    r = Runner(cfg)

    def people(n: int) -> Detections:
        return dets(*(box(i, 20 + 30 * i, 200) for i in range(n)))

    frames = [(t, people(12)) for t in times(6)]  # fires at 5 s
    frames += [(t, people(8)) for t in times(6, 6)]  # dips to 8: still the same episode
    frames += [(t, people(12)) for t in times(6, 12)]
    events = r.run(frames)
    assert len(events) == 1
    assert events[0].measured == 12 and events[0].threshold == 10
    assert "12 people ≥ 10" in events[0].explanation
    frames2 = [(t, people(3)) for t in times(4, 18)]  # released after 3 s below 6
    frames2 += [(t, people(11)) for t in times(6, 22)]  # a new episode
    assert len(r.run(frames2)) == 1


def test_congestion_needs_many_slow_vehicles() -> None:
    cfg = CongestionRule(name="j", type="congestion", min_vehicles=5, max_median_speed=0.3,
                         min_duration_s=5)  # fmt: skip

    def cars(t: float, speed: float) -> Detections:
        return dets(*(box(i, 40 + 70 * i + speed * t, 150, CAR, 50, 35) for i in range(6)))

    slow = [(t, cars(t, 3)) for t in times(8)]  # 3 px/s ≈ 0.05 box lengths/s
    assert len(Runner(cfg).run(slow)) == 1
    fast = [(t, cars(t, 60)) for t in times(8)]
    assert Runner(cfg).run(fast) == []


def test_camera_fault_black_and_frozen() -> None:
    cfg = CameraFaultRule(name="f", type="camera_fault", min_duration_s=5)
    r = Runner(cfg)
    empty = Detections.empty()
    events: list[Event] = []
    for t in times(4):
        events += r.frame(t, empty, luma=120.0, change=6.0)  # normal
    for t in times(7, 4):
        events += r.frame(t, empty, luma=3.0, change=0.0)  # black
    for t in times(4, 11):
        events += r.frame(t, empty, luma=120.0, change=5.0)
    for t in times(7, 15):
        events += r.frame(t, empty, luma=110.0, change=0.0)  # frozen: identical frames
    for t in times(4, 22):
        events += r.frame(t, empty, luma=110.0, change=5.0)
    # A quiet real street dips below frozen_level (0.01) for at most 1.6 s at a time.
    for t in times(20, 26):
        events += r.frame(t, empty, luma=110.0, change=0.005 if (t - 26) % 4 < 1.6 else 0.03)
    assert [e.extra["fault"] for e in events] == ["black", "frozen"]


def test_schedules_weekday_windows_and_overnight() -> None:
    tz = ZoneInfo("Asia/Shanghai")
    night = [ScheduleWindow(days=["mon", "tue", "wed", "thu", "fri"], start="22:00", end="06:00")]
    assert in_schedule(night, dt.datetime(2026, 11, 23, 23, 0, tzinfo=tz))  # Monday 23:00
    assert in_schedule(night, dt.datetime(2026, 11, 24, 5, 59, tzinfo=tz))  # Tuesday 05:59
    assert not in_schedule(night, dt.datetime(2026, 11, 24, 12, 0, tzinfo=tz))
    assert in_schedule(night, dt.datetime(2026, 11, 28, 5, 0, tzinfo=tz))  # Sat after Fri night
    assert not in_schedule(night, dt.datetime(2026, 11, 29, 23, 0, tzinfo=tz))  # Sunday night
    assert in_schedule(None, dt.datetime(2026, 11, 29, 23, 0, tzinfo=tz))
