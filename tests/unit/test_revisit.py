"""Stopped vehicles found between two patrol visits (analytics/revisit.py): plain Python,
no I/O. Each visit is fed frame by frame through a VisitLog, as the patrol runner does."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np

from alerts.labels import explain_zh
from analytics.appearance import SIZE
from analytics.config import ScheduleWindow, StoppedVehicleRule, ZoneConfig
from analytics.revisit import (
    MIN_FRAMES,
    VisitLog,
    VisitSightings,
    compare_visits,
    stopped_event,
    watched_classes,
)
from analytics.types import COCO_CLASSES, Detections

FRAME = (640, 360)
CAR, TRUCK, PERSON, BICYCLE = (COCO_CLASSES.index(c) for c in ("car", "truck", "person",
                                                               "bicycle"))  # fmt: skip
#: A kerb-side lane: the right half of the picture's lower part.
LANE = ZoneConfig(name="lane", points=[(0.5, 0.5), (1.0, 0.5), (1.0, 1.0), (0.5, 1.0)])
RULE = StoppedVehicleRule(name="no-parking", type="stopped_vehicle", zone="lane",
                          min_duration_s=600)  # fmt: skip
PARKED = (400.0, 250.0, 500.0, 320.0)  # a car's box inside the lane (analysed px)


def colour(seed: int) -> np.ndarray:
    """A colour signature: a histogram peaked on a few bins of its own."""
    rng = np.random.default_rng(seed)
    sig = np.full(SIZE, 0.001, dtype=np.float32)
    sig[rng.choice(SIZE, 6, replace=False)] = 1.0
    return sig / sig.sum()


RED, WHITE = colour(1), colour(2)


def visit(
    start: float, objects: list[tuple[tuple[float, float, float, float], int, np.ndarray | None]],
    *, frames: int = 10, step: float = 1.0, move: float = 0.0,
    rules: list[StoppedVehicleRule] | None = None,
) -> VisitSightings:  # fmt: skip
    """A visit of ``frames`` analysed frames ``step`` s apart, each showing ``objects``
    (box, class, colour; track ids 1, 2...), each box moving right ``move`` px a frame."""
    log = VisitLog(watched_classes(rules or [RULE]), start)
    looks = {i + 1: sig for i, (_, _, sig) in enumerate(objects)}
    for k in range(frames):
        xyxy = np.array([box for box, _, _ in objects], dtype=np.float64).reshape(-1, 4)
        xyxy[:, [0, 2]] += move * k
        det = Detections(xyxy, np.full(len(objects), 0.8),
                         np.array([c for _, c, _ in objects], dtype=np.int64),
                         np.arange(1, len(objects) + 1))  # fmt: skip
        log.add(det, COCO_CLASSES, start + k * step, FRAME, (1280, 720), looks.get)
    record = log.sightings(start + frames * step)
    assert record is not None
    return record


def test_the_same_car_at_the_same_place_on_two_visits_is_a_stopped_vehicle() -> None:
    first = visit(0.0, [(PARKED, CAR, RED)])
    second = visit(1800.0, [((402.0, 251.0, 501.0, 321.0), CAR, RED)])  # detector jitter
    found = compare_visits(first, second, [RULE], {"lane": LANE})
    assert len(found) == 1
    f = found[0]
    assert f.rule is RULE and f.stopped_s == 1809.0 and f.since == 0.0
    assert f.similarity is not None and f.similarity > 0.99
    event = stopped_event(f, "cam-1", FRAME, pts=42.0)
    assert event.type == "stopped_vehicle" and event.rule == "no-parking"
    assert event.zone == "lane" and event.object_class == "car"
    assert event.measured == 1809.0 and event.threshold == 600.0
    assert event.box == (402.0, 251.0, 501.0, 321.0)
    assert event.started_pts == 42.0 - 1809.0  # the alert starts at the earlier sighting
    assert event.extra["earlier_visit_at"] == 9.0 and event.extra["earlier_box"] == list(PARKED)
    assert "at least 1809 s ≥ 600 s" in event.explanation
    assert "patrol visit of 1970-01-01 00:00:09" in event.explanation
    zh = explain_zh(event.type, event.object_class, event.track_ids, event.zone, event.measured,
                    event.threshold, event.unit, event.extra)  # fmt: skip
    assert zh == "轿车在区域「lane」停留至少 1809 秒 ≥ 600 秒（轮巡比对：上次巡检时已停在同一位置）"


def test_a_car_that_moved_between_visits_is_none() -> None:
    first = visit(0.0, [(PARKED, CAR, RED)])
    second = visit(1800.0, [((440.0, 250.0, 540.0, 320.0), CAR, RED)])  # 40 px on: 1/3 box
    assert compare_visits(first, second, [RULE], {"lane": LANE}) == []


def test_a_car_driving_through_during_a_visit_is_none() -> None:
    first = visit(0.0, [(PARKED, CAR, RED)], move=8.0)  # drives on during the first look
    second = visit(1800.0, [(PARKED, CAR, RED)])
    assert compare_visits(first, second, [RULE], {"lane": LANE}) == []


def test_a_car_seen_on_one_visit_only_is_none() -> None:
    first = visit(0.0, [])
    second = visit(1800.0, [(PARKED, CAR, RED)])
    assert compare_visits(first, second, [RULE], {"lane": LANE}) == []
    assert compare_visits(None, second, [RULE], {"lane": LANE}) == []  # no earlier visit
    days_later = visit(7 * 86400.0, [(PARKED, CAR, RED)])  # the patrol was off for a week
    assert compare_visits(second, days_later, [RULE], {"lane": LANE}, max_gap_s=5400) == []
    third = visit(3600.0, [])  # gone again
    assert compare_visits(second, third, [RULE], {"lane": LANE}) == []


def test_another_car_parked_at_the_same_place_is_none() -> None:
    first = visit(0.0, [(PARKED, CAR, RED)])
    second = visit(1800.0, [(PARKED, CAR, WHITE)])  # the red one left, a white one came
    assert compare_visits(first, second, [RULE], {"lane": LANE}) == []


def test_a_car_parked_outside_the_rules_zone_is_none() -> None:
    bay = (60.0, 250.0, 160.0, 320.0)  # the parking bays on the left, outside the lane
    first = visit(0.0, [(bay, CAR, RED)])
    second = visit(1800.0, [(bay, CAR, RED)])
    assert compare_visits(first, second, [RULE], {"lane": LANE}) == []
    # the same car under a rule over the whole picture
    anywhere = RULE.model_copy(update={"zone": None})
    assert len(compare_visits(first, second, [anywhere], {})) == 1


def test_visits_closer_than_the_rules_duration_are_none() -> None:
    first = visit(0.0, [(PARKED, CAR, RED)])
    second = visit(300.0, [(PARKED, CAR, RED)])  # 309 s < 600 s
    assert compare_visits(first, second, [RULE], {"lane": LANE}) == []
    # ...but the clock runs from the first sighting: the third visit finds 609 s
    third = visit(600.0, [(PARKED, CAR, RED)])
    found = compare_visits(second, third, [RULE], {"lane": LANE})
    assert [f.stopped_s for f in found] == [609.0] and found[0].since == 0.0
    event = stopped_event(found[0], "cam-1", FRAME, pts=0.0)
    assert "visit of 1970-01-01 00:05:09 (there since 1970-01-01 00:00:00)" in event.explanation


def test_a_car_still_there_on_a_third_visit_is_not_alerted_again() -> None:
    v1 = visit(0.0, [(PARKED, CAR, RED)])
    v2 = visit(1800.0, [(PARKED, CAR, RED)])
    v3 = visit(3600.0, [(PARKED, CAR, RED)])
    assert len(compare_visits(v1, v2, [RULE], {"lane": LANE})) == 1
    assert compare_visits(v2, v3, [RULE], {"lane": LANE}) == []
    # missed by one visit (a bus in front), then seen again: still the same car
    v4 = visit(5400.0, [])
    v5 = visit(7200.0, [(PARKED, CAR, RED)])
    assert compare_visits(v3, v4, [RULE], {"lane": LANE}) == []
    assert compare_visits(v4, v5, [RULE], {"lane": LANE}) == []
    assert v5.objects[0].since["no-parking"] == 0.0 and v5.objects[0].alerted == {"no-parking"}
    # ...and the memory survives the record's JSON (a patrol restart)
    stored = VisitSightings.from_json(json.loads(json.dumps(v5.to_json())))
    v6 = visit(9000.0, [(PARKED, CAR, RED)])
    assert compare_visits(stored, v6, [RULE], {"lane": LANE}) == []
    # a new car at that place after the first one left is a new vehicle: alerted
    v7 = visit(10800.0, [(PARKED, CAR, WHITE)])
    v8 = visit(12600.0, [(PARKED, CAR, WHITE)])
    assert compare_visits(v6, v7, [RULE], {"lane": LANE}) == []
    assert len(compare_visits(v7, v8, [RULE], {"lane": LANE})) == 1


def test_two_cars_side_by_side_pair_one_to_one_and_a_truck_matches_a_car() -> None:
    beside = (505.0, 250.0, 605.0, 320.0)
    first = visit(0.0, [(PARKED, CAR, RED), (beside, CAR, WHITE)])
    second = visit(1800.0, [(PARKED, TRUCK, RED), (beside, CAR, WHITE)])  # a van: car or truck
    found = compare_visits(first, second, [RULE], {"lane": LANE})
    assert sorted(f.current.box[0] for f in found) == [400 / 640, 505 / 640]


def test_what_a_visit_keeps_only_still_objects_of_the_rules_classes_seen_long_enough() -> None:
    brief = visit(0.0, [(PARKED, CAR, RED)], frames=MIN_FRAMES - 1)
    assert brief.objects == []  # a glimpse is no sighting
    people = visit(0.0, [(PARKED, PERSON, RED)])
    assert people.objects == []  # not a class of the rule
    first = visit(0.0, [(PARKED, BICYCLE, RED), ((420.0, 230.0, 470.0, 320.0), PERSON, WHITE)],
                  rules=[RULE.model_copy(update={"classes": ["bicycle"]})])  # fmt: skip
    assert first.objects[0].attended  # someone at the bicycle: no stopped vehicle
    bikes = RULE.model_copy(update={"classes": ["bicycle"]})
    second = visit(1800.0, [(PARKED, BICYCLE, RED)], rules=[bikes])
    assert compare_visits(first, second, [bikes], {"lane": LANE}) == []


def test_outside_the_rules_schedule_nothing_is_raised_until_the_window_opens() -> None:
    nights = RULE.model_copy(update={"schedule": [ScheduleWindow(start="22:00", end="06:00")]})
    v1 = visit(0.0, [(PARKED, CAR, RED)])
    v2 = visit(1800.0, [(PARKED, CAR, RED)])
    noon = dt.datetime(2026, 12, 7, 12, 0)
    assert compare_visits(v1, v2, [nights], {"lane": LANE}, when=noon) == []
    v3 = visit(3600.0, [(PARKED, CAR, RED)])
    found = compare_visits(v2, v3, [nights], {"lane": LANE}, when=noon.replace(hour=23))
    assert [f.stopped_s for f in found] == [3609.0]


def test_a_disabled_rule_or_a_rule_without_its_zone_finds_nothing() -> None:
    v1 = visit(0.0, [(PARKED, CAR, RED)])
    v2 = visit(1800.0, [(PARKED, CAR, RED)])
    off = RULE.model_copy(update={"enabled": False})
    assert compare_visits(v1, v2, [off], {"lane": LANE}) == []
    assert compare_visits(v1, v2, [RULE], {}) == []
