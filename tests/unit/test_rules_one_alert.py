"""One alert per situation: id switches bridged by the movement rules, false-positive
filters before the rules, and class sanity (riders, pushchairs, a bus-sized person)."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.config import (
    DetectConfig,
    LineCrossingRule,
    MotionConfig,
    PedestrianOnRoadRule,
    WanderingRule,
    WrongWayRule,
)
from analytics.history import TrackHistory
from analytics.pipeline import CameraAnalytics, CameraRulesConfig
from analytics.sanity import TrackFilter, oversized_persons, people_near, riders
from analytics.types import COCO_CLASSES, Detections, Event
from tests.unit.test_rules_catalogue import CAR, FRAME, PERSON, Runner, box, dets, times

MOTORCYCLE, BICYCLE, BUS = 3, 1, 5


def test_history_links_a_new_id_where_the_lost_one_was_heading() -> None:
    h = TrackHistory()
    for t in times(2):
        h.update(dets(box(1, 50 + 40 * t, 200)), t)  # 40 px/s to the right
    # Lost for 1.2 s, then id 7 appears where 1 would be by now (122 + 1.2 * 40 px).
    h.update(dets(box(7, 168, 200)), 3.0)
    assert h.root(7) == 1 and h.lineage(7) == [1, 7]
    assert 7 in h and len(h.samples(7)) == 11
    # Somewhere else entirely: a new object.
    h.update(dets(box(7, 176, 200), box(8, 350, 120)), 3.2)
    assert h.root(8) == 8


def test_history_does_not_chain_when_two_lost_tracks_are_close() -> None:
    h = TrackHistory()
    for t in times(1):
        h.update(dets(box(1, 100, 200), box(2, 110, 200)), t)
    h.update(dets(box(5, 105, 200)), 1.5)
    assert h.root(5) == 5


def switching_ids(path, every_s: float, seconds: float = 30, gap_s: float = 0.6):
    """Frames of one object along ``path(t)`` whose track id changes every ``every_s``, with
    a short gap (a missed detection) at each switch."""
    frames = []
    for t in times(seconds):
        n = int(t // every_s)
        if t - n * every_s < gap_s and n > 0:
            frames.append((t, Detections.empty()))
            continue
        frames.append((t, dets(path(t, 1 + n))))
    return frames


def test_wandering_fires_once_for_a_person_whose_id_keeps_switching() -> None:
    cfg = WanderingRule(name="w", type="wandering", window_s=20, min_path_ratio=3,
                        min_path_heights=4)  # fmt: skip

    def pacing(t: float, tid: int):
        phase = t % 10
        return box(tid, 100 + 30 * (phase if phase < 5 else 10 - phase), 200)

    events = Runner(cfg).run(switching_ids(pacing, 7.0))
    assert len(events) == 1
    assert len(events[0].track_ids) >= 2 and events[0].key == f"object-{events[0].track_ids[0]}"


def test_wrong_way_fires_once_for_a_car_whose_id_switches() -> None:
    cfg = WrongWayRule(name="ww", type="wrong_way", direction=(1, 0))
    frames = switching_ids(lambda t, tid: box(tid, 380 - 40 * t, 150, CAR, 40, 30), 2.5, 8)
    events = Runner(cfg).run(frames)
    assert len(events) == 1 and events[0].object_class == "car"


def test_line_crossing_after_an_id_switch_is_one_crossing() -> None:
    cfg = LineCrossingRule(name="gate", type="line_crossing", line=((0.1, 0.5), (0.9, 0.5)))
    r = Runner(cfg)
    events: list[Event] = []
    # Walks down through the line at y=150; its id switches just before the line.
    for t in times(10):
        y = 80 + 15 * t
        tid = 1 if t < 3.8 else 2
        if 3.8 <= t < 4.2:
            events += r.frame(t, Detections.empty())
            continue
        events += r.frame(t, dets(box(tid, 200, y)))
    assert len(events) == 1 and events[0].extra["direction"] == "a_to_b"
    assert events[0].track_ids == [1, 2] and events[0].key == "1:a_to_b"


def test_pushchair_seen_as_motorcycle_among_pedestrians_is_not_wrong_way() -> None:
    cfg = WrongWayRule(name="ww", type="wrong_way", direction=(1, 0))
    # A "motorcycle" 30x30 px at 30 px/s (1 box height/s) with its pusher beside it.
    frames = [(t, dets(box(1, 300 - 30 * t, 200, MOTORCYCLE, 30, 30),
                       box(2, 325 - 30 * t, 200, PERSON, 20, 50))) for t in times(6)]  # fmt: skip
    assert Runner(cfg).run(frames) == []
    # The same "motorcycle" alone is still a motorcycle going the wrong way.
    alone = [(t, dets(box(1, 300 - 30 * t, 200, MOTORCYCLE, 30, 30))) for t in times(6)]
    assert len(Runner(cfg).run(alone)) == 1
    # A real motorcycle (fast) among people still fires, and walking_pace 0 turns it off.
    fast = [(t, dets(box(1, 390 - 120 * t, 200, MOTORCYCLE, 30, 30),
                     box(2, 390 - 120 * t, 170, PERSON, 20, 50))) for t in times(3)]  # fmt: skip
    assert len(Runner(cfg).run(fast)) == 1
    off = WrongWayRule(name="ww", type="wrong_way", direction=(1, 0), walking_pace=0)
    assert len(Runner(off).run(frames)) == 1


def test_riders_are_not_pedestrians_on_the_road() -> None:
    cfg = PedestrianOnRoadRule(name="road", type="pedestrian_on_road")
    # A rider: the person's box sits on the motorcycle's (head above, lower half covered).
    rider = dets((1, 200, 200, PERSON, 24, 50), (2, 200, 215, MOTORCYCLE, 30, 35))
    assert riders(rider, COCO_CLASSES).tolist() == [True, False]
    assert Runner(cfg).run([(t, rider) for t in times(3)]) == []
    # A pedestrian walking beside a parked motorcycle is not covered by it.
    beside = dets((1, 150, 200, PERSON, 24, 50), (2, 200, 215, MOTORCYCLE, 30, 35))
    assert riders(beside, COCO_CLASSES).tolist() == [False, False]
    assert len(Runner(cfg).run([(t, beside) for t in times(3)])) == 1
    keep = PedestrianOnRoadRule(name="road", type="pedestrian_on_road", ignore_riders=False)
    assert len(Runner(keep).run([(t, rider) for t in times(3)])) == 1


def test_bus_sized_person_is_dropped_but_a_lone_near_person_is_not() -> None:
    people = [(i, 60 + 60 * i, 150 + 20 * i, PERSON, 12, 30 + 4 * i) for i in range(4)]
    big = (9, 200, 290, PERSON, 160, 200)  # expected ~44 px at that row
    d = dets(*people, big)
    assert oversized_persons(d, COCO_CLASSES).tolist() == [False] * 4 + [True]
    assert not oversized_persons(dets(big), COCO_CLASSES).any()
    assert not oversized_persons(dets(*people[:2], big), COCO_CLASSES).any()
    assert people_near(d, d.xyxy[1], COCO_CLASSES).tolist() == [True, True, True, False, False]


def test_track_filter_needs_frames_and_a_median_score() -> None:
    h, f = TrackHistory(), TrackFilter(min_frames=3, min_median_score=0.5)

    def frame(t: float, *scored: tuple[int, float]) -> list[bool]:
        d = dets(*[box(tid, 50 + 80 * tid, 200) for tid, _ in scored])
        d.confidence = np.array([s for _, s in scored], dtype=np.float32)
        h.update(d, t)
        return f.passed(d, h).tolist()

    assert frame(0.0, (1, 0.9), (2, 0.35)) == [False, False]
    assert frame(0.2, (1, 0.9), (2, 0.35)) == [False, False]
    assert frame(0.4, (1, 0.3), (2, 0.9)) == [True, False]  # median 0.9 / 0.35
    assert frame(0.6, (1, 0.3), (2, 0.9)) == [True, True]  # 1 stays; 2: median 0.625


@pytest.mark.parametrize(("min_median", "expected"), [(0.4, 1), (0.6, 0)])
def test_camera_analytics_applies_the_detect_filter(min_median: float, expected: int) -> None:
    rule = PedestrianOnRoadRule(name="road", type="pedestrian_on_road", min_duration_s=1)
    cfg = CameraRulesConfig("cam", 5.0, [], [rule], MotionConfig(enabled=False),
                            DetectConfig(min_median_score=min_median))  # fmt: skip
    a = CameraAnalytics(cfg, COCO_CLASSES, use_schedules=False)
    events: list[Event] = []
    for t in times(4):
        d = dets(box(0, 200, 200))
        d.confidence = np.array([0.5], dtype=np.float32)
        events += a.process(d, t=t, pts=t, wall_ts=t, source_size=FRAME, frame_size=FRAME)[1]
    assert len(events) == expected


def test_detect_config_validates_tiles() -> None:
    assert DetectConfig(tiles=(2, 1)).tiles == (2, 1)
    with pytest.raises(ValueError, match="tiles"):
        DetectConfig(tiles=(0, 2))
    assert BICYCLE == COCO_CLASSES.index("bicycle") and BUS == COCO_CLASSES.index("bus")


def test_person_down_sees_a_curled_person_among_standing_people() -> None:
    from analytics.config import PersonDownRule

    cfg = PersonDownRule(name="down", type="person_down", min_duration_s=5)
    r = Runner(cfg)
    events: list[Event] = []
    # People walk past at rows 150-290 (about 0.4 px taller per row), long enough to learn.
    for i, t in enumerate(times(20)):
        walkers = [box(10 + k, (37 * i + 90 * k) % 380 + 10, 150 + 35 * k, PERSON,
                       20, 40 + 14 * k) for k in range(4)]  # fmt: skip
        # From 8 s: a curled person (34x43 px, taller than wide) lies still at row 280, where
        # a standing person is about 93 px tall.
        lying = [box(1, 300, 280, PERSON, 34, 43)] if t >= 8 else []
        events += r.frame(t, dets(*walkers, *lying))
    down = [e for e in events if e.track_ids == [1]]
    assert len(down) == 1 and down[0].measured == pytest.approx(5, abs=0.3)
    assert all(e.track_ids == [1] for e in events)  # the walkers never
    # Without the learned heights (max_relative_height 0) the box shape alone misses it.
    off = PersonDownRule(name="down", type="person_down", min_duration_s=5, max_relative_height=0)
    r2 = Runner(off)
    quiet: list[Event] = []
    for i, t in enumerate(times(20)):
        walkers = [box(10 + k, (37 * i + 90 * k) % 380 + 10, 150 + 35 * k, PERSON,
                       20, 40 + 14 * k) for k in range(4)]  # fmt: skip
        quiet += r2.frame(
            t, dets(*walkers, *([box(1, 300, 280, PERSON, 34, 43)] if t >= 8 else []))
        )
    assert quiet == []
