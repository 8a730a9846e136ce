"""Zones and dwell rules on synthetic tracks (pure logic, no video)."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.config import IntrusionRule, LoiteringRule, ZoneConfig
from analytics.rules.base import FrameContext
from analytics.rules.presence import PresenceRule as DwellRule
from analytics.types import COCO_CLASSES, Detections
from analytics.zones import Zone

FRAME = (400, 300)


def dets(*boxes: tuple[int, float, float, int]) -> Detections:
    """(track id, x centre, y bottom, class id) → 20x40 boxes."""
    xyxy = [[x - 10, y - 40, x + 10, y] for _, x, y, _ in boxes]
    return Detections(
        np.array(xyxy, dtype=np.float32).reshape(-1, 4),
        np.full(len(boxes), 0.9),
        np.array([c for *_, c in boxes]),
        np.array([t for t, *_ in boxes]),
    )


def ctx(t: float) -> FrameContext:
    return FrameContext("cam", t, t, 1000 + t, COCO_CLASSES)


def square_zone() -> Zone:
    cfg = ZoneConfig(name="z", points=[(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75)])
    return Zone.from_config(cfg, (1920, 1080), FRAME)


def run(
    rule: DwellRule, frames: list[tuple[float, Detections]]
) -> list[tuple[float, list[int], float]]:
    out = []
    for t, d in frames:
        out += [(t, e.track_ids, e.measured) for e in rule.update(d, ctx(t))]
    return out


def test_zone_normalised_and_pixel_coordinates_agree() -> None:
    norm = square_zone()
    pix = Zone.from_config(
        ZoneConfig(name="z", points=[(480, 270), (1440, 270), (1440, 810), (480, 810)]),
        (1920, 1080),
        FRAME,
    )
    assert np.allclose(norm.polygon, pix.polygon)
    inside = norm.contains(np.array([[200, 150], [50, 150], [100, 75.5], [301, 150]]))
    assert inside.tolist() == [True, False, True, False]


def test_normalised_point_out_of_range_is_rejected() -> None:
    with pytest.raises(ValueError, match="outside 0..1"):
        ZoneConfig(name="z", points=[(0, 0), (1.5, 0), (1, 1)], coordinates="normalized")


def test_loitering_fires_once_after_threshold() -> None:
    rule = DwellRule(LoiteringRule(name="l", type="loitering", min_duration_s=10), square_zone())
    frames = [(t * 0.2, dets((1, 200, 200, 0))) for t in range(0, 100)]  # 20 s inside
    events = run(rule, frames)
    assert len(events) == 1
    t, ids, measured = events[0]
    assert ids == [1] and measured >= 10 and t == pytest.approx(10.0)


def test_loitering_ignores_other_classes_and_outside_positions() -> None:
    rule = DwellRule(LoiteringRule(name="l", type="loitering", min_duration_s=2), square_zone())
    frames = [(t * 0.2, dets((1, 200, 200, 2), (2, 20, 20, 0))) for t in range(50)]
    assert run(rule, frames) == []


def test_short_occlusion_keeps_the_clock() -> None:
    rule = DwellRule(LoiteringRule(name="l", type="loitering", min_duration_s=10, grace_s=3),
                     square_zone())  # fmt: skip
    frames = [(t * 0.2, dets((1, 200, 200, 0))) for t in range(30)]  # 0..5.8 s
    frames += [(t * 0.2, Detections.empty()) for t in range(30, 40)]  # 2 s occluded
    frames += [(t * 0.2, dets((1, 200, 200, 0))) for t in range(40, 60)]  # back until 11.8 s
    events = run(rule, frames)
    assert len(events) == 1 and events[0][0] == pytest.approx(10.0)


def test_id_switch_nearby_inherits_the_clock() -> None:
    rule = DwellRule(LoiteringRule(name="l", type="loitering", min_duration_s=10, grace_s=3),
                     square_zone())  # fmt: skip
    frames = [(t * 0.2, dets((1, 200, 200, 0))) for t in range(30)]
    frames += [(t * 0.2, dets((7, 205, 202, 0))) for t in range(31, 60)]  # new id, same spot
    events = run(rule, frames)
    assert len(events) == 1
    assert events[0][1] == [1, 7]


def test_absence_longer_than_grace_resets_the_clock() -> None:
    rule = DwellRule(LoiteringRule(name="l", type="loitering", min_duration_s=10, grace_s=3),
                     square_zone())  # fmt: skip
    frames = [(t * 0.2, dets((1, 200, 200, 0))) for t in range(30)]  # 6 s
    frames += [(t * 0.2, Detections.empty()) for t in range(30, 55)]  # 5 s gone
    frames += [(t * 0.2, dets((1, 200, 200, 0))) for t in range(55, 90)]  # 7 s back
    assert run(rule, frames) == []


def test_intrusion_fires_for_each_object_of_the_classes() -> None:
    rule = DwellRule(
        IntrusionRule(name="i", type="intrusion", classes=["person", "car"], min_duration_s=1),
        square_zone(),
    )
    frames = [(t * 0.2, dets((1, 200, 200, 0), (2, 150, 180, 2), (3, 160, 190, 16)))
              for t in range(10)]  # fmt: skip
    events = run(rule, frames)
    assert sorted(e[1][0] for e in events) == [1, 2]


def test_unknown_class_in_rule_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown class"):
        IntrusionRule(name="i", type="intrusion", classes=["persn"])


def test_zone_drawn_to_the_frame_edge_contains_clipped_feet() -> None:
    # A person cut by the bottom of the picture: the clipped box's anchor is on the edge.
    zone = Zone.from_config(
        ZoneConfig(name="road", points=[(0, 0.7), (1, 0.7), (1, 1), (0, 1)]), (640, 360), FRAME
    )
    assert zone.contains(np.array([[200.0, 300.0], [400.0, 250.0]])).tolist() == [True, True]
    assert Zone.whole_frame(FRAME).contains(np.array([[0.0, 300.0], [400.0, 0.0]])).all()


def test_id_switch_is_not_inherited_in_a_crowd() -> None:
    rule = DwellRule(
        LoiteringRule(name="l", type="loitering", min_duration_s=10, grace_s=3), square_zone()
    )
    # Two people lost at nearly the same spot; a new id appears between them: ambiguous.
    frames = [(t * 0.2, dets((1, 200, 200, 0), (2, 210, 200, 0))) for t in range(30)]
    frames += [(t * 0.2, dets((9, 205, 201, 0))) for t in range(31, 60)]
    assert run(rule, frames) == []
