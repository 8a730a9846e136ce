"""Ghost filtering (issue 25): the zone rules (intrusion, pedestrian_on_road) fire only on
confirmed objects: a score median over several frames above a threshold, persisted and
moving like a real object (Frigate's threshold and its stationary/motion checks)."""

from __future__ import annotations

import numpy as np

from analytics.config import (
    DetectConfig,
    IntrusionRule,
    MotionConfig,
    PedestrianOnRoadRule,
)
from analytics.pipeline import CameraAnalytics, CameraRulesConfig
from analytics.sanity import Confirmation
from analytics.types import COCO_CLASSES, Detections, Event
from analytics.zones import Zone
from tests.unit.test_rules_catalogue import FRAME, Runner, box, dets, same_look, times

ROAD = Zone("road", np.array([[0, 150], [400, 150], [400, 300], [0, 300]], np.float32))


def scored(score: float, *boxes: tuple) -> Detections:
    d = dets(*boxes)
    d.confidence[:] = score
    return d


def run_confirmed(cfg, frames, confirm: Confirmation) -> list[Event]:
    r = Runner(cfg, ROAD)
    out: list[Event] = []
    for t, d in frames:
        r.history.update(d, t, same_look(len(d)))
        out += r.rule.update(d, r.ctx(t, confirmed=confirm.confirmed(d, r.history)))
    return out


def ghost_frames(seconds: float = 10) -> list[tuple[float, Detections]]:
    """A headlight's glare taken for a person: missed every third frame, its box 36 or 52 px
    tall from one frame to the next, scored 0.46-0.52 (median 0.49)."""
    frames = []
    for i, t in enumerate(times(seconds)):
        if i % 3 == 2:
            frames.append((t, Detections.empty()))
            continue
        h = 36 + 16 * (i % 2)
        frames.append((t, scored(0.46 + 0.03 * (i % 3) + 0.03 * (i % 2), box(0, 200, 220, h=h))))
    return frames


def test_a_ghost_raises_no_intrusion_a_real_person_does() -> None:
    cfg = IntrusionRule(name="i", type="intrusion", zone="road", min_duration_s=1)
    confirm = Confirmation(frames=3, score=0.5, fps=5)
    assert run_confirmed(cfg, ghost_frames(), confirm) == []
    assert confirm.refused  # it was looked at, and refused
    person = [(t, scored(0.72, box(1, 100 + 10 * t, 220))) for t in times(5)]
    (event,) = run_confirmed(cfg, person, Confirmation(frames=3, score=0.5, fps=5))
    # Confirmed after 3 frames (0.4 s), then 1 s inside.
    assert 1.3 <= event.pts <= 1.6
    # Without confirmation (the ctx carries none), the ghost fires: the check is what stops it.
    assert len(Runner(cfg, ROAD).run(ghost_frames())) == 1


def test_confirmation_reasons() -> None:
    c = Confirmation(frames=3, score=0.5, fps=5)
    steady = np.array([[t, 100 + 8 * t, 200, 20, 40, 0.7] for t in times(1)])
    assert c.check(steady) is None
    assert c.check(steady[:2]) == "too few frames"
    low = steady.copy()
    low[:, 5] = 0.45
    assert c.check(low) == "score"
    gappy = steady[[0, 4]]
    gappy = np.vstack([gappy, [[2.0, 116, 200, 20, 40, 0.7]]])
    assert c.check(gappy) == "intermittent"
    grow = steady.copy()
    grow[-1, 4] = 90
    assert c.check(grow) == "size"
    jump = steady.copy()
    jump[-1, 1] += 60  # 1.5 box heights in 0.2 s: 7.5 heights per second
    assert c.check(jump) == "jump"
    assert Confirmation(frames=0, score=0.9, fps=5).confirmed(
        scored(0.1, box(1, 10, 10)), Runner(PedestrianOnRoadRule(
            name="p", type="pedestrian_on_road", zone="road"), ROAD).history
    ).tolist() == [1]  # fmt: skip


def test_pipeline_confirms_before_the_zone_rules_and_not_before_the_others() -> None:
    """Through CameraAnalytics: the ghost reaches neither rule of the zone; a real person
    on the road fires pedestrian_on_road once."""
    zone = {"name": "road", "points": [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]}
    from analytics.config import ZoneConfig

    rules = [
        PedestrianOnRoadRule(name="ped", type="pedestrian_on_road", zone="road"),
        IntrusionRule(name="in", type="intrusion", zone="road", min_duration_s=1),
    ]
    cfg = CameraRulesConfig("cam", 5.0, [ZoneConfig(**zone)], rules,  # type: ignore[arg-type]
                            MotionConfig(enabled=False), DetectConfig(regions=False))  # fmt: skip
    image = np.full((FRAME[1], FRAME[0], 3), 60, np.uint8)

    def replay(frames: list[tuple[float, Detections]], confirm: int = 3) -> list[Event]:
        cfg.detect = DetectConfig(regions=False, confirm_frames=confirm)
        a = CameraAnalytics(cfg, COCO_CLASSES, use_schedules=False)
        out: list[Event] = []
        for t, d in frames:
            _, ev = a.process(d, t=t, pts=t, wall_ts=t, source_size=FRAME, frame_size=FRAME,
                              image=image)  # fmt: skip
            out += ev
        return out

    assert replay(ghost_frames()) == []
    # With confirmation off the tracker and the track filter let the ghost through.
    off = replay(ghost_frames(), confirm=0)
    assert {e.type for e in off} == {"intrusion", "pedestrian_on_road"}
    person = [(t, scored(0.72, box(0, 100 + 10 * t, 220))) for t in times(5)]
    events = replay([(t, Detections(d.xyxy, d.confidence, d.class_id)) for t, d in person])
    assert sorted(e.type for e in events) == ["intrusion", "pedestrian_on_road"]
