"""Region detection on by default where it matters (``detect.regions: auto``), crops around
small tracked objects and the slow scan, small objects held between crops; the crowd count
beyond the tracks, congestion hysteresis, person_down without learned heights (issue 14).
Pure logic with a fake detector: no model, no video."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.config import (
    CongestionRule,
    CrowdRule,
    DetectConfig,
    LoiteringRule,
    MotionConfig,
    PersonDownRule,
    StoppedVehicleRule,
)
from analytics.pipeline import CameraAnalytics, CameraRulesConfig
from analytics.regions import auto_tiles, explained, plan_crops, scan_grid
from analytics.types import COCO_CLASSES, Detections, Event
from tests.unit.test_rules_catalogue import CAR, PERSON, Runner, box, dets, times

NATIVE, FRAME, INPUT = (1280, 720), (416, 234), (416, 416)
NONE = np.zeros((0, 4))


def test_regions_config_accepts_auto_true_and_false() -> None:
    assert DetectConfig().regions == "auto"
    assert DetectConfig(regions=True).regions is True
    assert DetectConfig(regions=False).regions is False
    with pytest.raises(ValueError):
        DetectConfig(regions="yes")  # type: ignore[arg-type]


def analytics(rules: list, detect: DetectConfig | None = None) -> CameraAnalytics:
    cfg = CameraRulesConfig("c", 5.0, [], rules, MotionConfig(enabled=False),
                            detect or DetectConfig())  # fmt: skip
    return CameraAnalytics(cfg, COCO_CLASSES, use_schedules=False)


def test_auto_turns_regions_on_for_small_object_rules_on_a_larger_native_frame() -> None:
    sv = StoppedVehicleRule(name="sv", type="stopped_vehicle")
    loiter = LoiteringRule(name="l", type="loitering")
    img = np.zeros((FRAME[1], FRAME[0], 3), np.uint8)
    a = analytics([sv])
    assert a.wants_regions  # before the first frame: the rules decide
    a.check_motion(img, 0.0, NATIVE)
    assert a.regions_on and a.gate.want_blobs
    same = analytics([sv])
    same.check_motion(img, 0.0, FRAME)  # native = analysed: crops would see nothing new
    assert not same.wants_regions
    plain = analytics([loiter])
    plain.check_motion(img, 0.0, NATIVE)
    assert not plain.wants_regions and not plain.gate.want_blobs
    off = analytics([sv], DetectConfig(regions=False))
    off.check_motion(img, 0.0, NATIVE)
    assert not off.wants_regions
    forced = analytics([loiter], DetectConfig(regions=True))
    forced.check_motion(img, 0.0, NATIVE)
    assert forced.wants_regions


def test_tile_grids() -> None:
    assert auto_tiles((640, 360), INPUT) == (2, 1)
    assert auto_tiles((360, 640), INPUT) == (1, 2)
    assert auto_tiles((1920, 1080), INPUT) == (2, 2)
    assert auto_tiles((416, 234), INPUT) == (1, 1)
    # The scan: windows of half the input (zoomed in 2x), overlapping by 15 %.
    assert len(scan_grid((640, 360), INPUT)) == 8
    grid = scan_grid((1920, 1080), INPUT)
    assert len(grid) == 66 and grid[-1].rect == (1712, 872, 1920, 1080)
    assert {c.rect[2] - c.rect[0] for c in grid} == {208}
    # Only over the watched zones' extent where every rule has a zone.
    assert [c.rect for c in scan_grid((640, 360), INPUT, (100, 50, 300, 150))] == [
        (100, 50, 308, 258)
    ]


def test_track_crops_come_before_motion_and_share_the_budget() -> None:
    tracks = np.array([[10, 100, 16, 104], [20, 100, 26, 104], [300, 50, 306, 54]], np.float64)
    motion = np.array([[200, 150, 210, 170]], np.float64)
    crops = plan_crops(source_size=NATIVE, frame_size=FRAME, input_size=INPUT,
                       motion_boxes=motion, zone_boxes=NONE, max_regions=2, tiles=None,
                       track_boxes=tracks)  # fmt: skip
    assert [c.kind for c in crops] == ["track", "track"]
    # Zoomed in on tiny objects: a window of half the model's input (upscaled 2x).
    assert all(c.rect[2] - c.rect[0] == 208 for c in crops)
    crops = plan_crops(source_size=NATIVE, frame_size=FRAME, input_size=INPUT,
                       motion_boxes=motion, zone_boxes=NONE, max_regions=3, tiles=None,
                       track_boxes=tracks)  # fmt: skip
    assert [c.kind for c in crops] == ["track", "track", "motion"]


def test_motion_the_whole_frame_pass_explains_gets_no_crop() -> None:
    blobs = np.array([[100, 100, 140, 150], [300, 30, 306, 36]], np.float64)
    whole = np.array([[98, 95, 142, 152]], np.float32)  # a 57 px tall car over the first blob
    assert explained(blobs, whole, 32).tolist() == [True, False]
    assert explained(blobs, np.zeros((0, 4), np.float32), 32).tolist() == [False, False]


class WhiteBlobs:
    """A fake detector: every white rectangle at least 6 px tall in the image it is given is
    a car (so a car 12 px tall at native resolution is seen on a native crop, not on the
    frame scaled down 3x)."""

    name = "fake"
    input_size = INPUT
    class_names = COCO_CLASSES

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        import cv2

        out = []
        for img in images:
            self.calls.append((img.shape[1], img.shape[0]))
            mask = (img[:, :, 0] > 200).astype(np.uint8)
            n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
            boxes = [(x, y, x + w, y + h) for x, y, w, h, _ in stats[1:n] if h >= 6]
            out.append(Detections(np.array(boxes, np.float32).reshape(-1, 4),
                                  np.full(len(boxes), 0.8), np.full(len(boxes), CAR)))  # fmt: skip
        return out


def test_a_far_car_that_never_moves_is_found_by_the_scan_and_kept() -> None:
    """A stopped_vehicle camera with defaults: a car 24x12 native px (8x4 in the analysed
    frame) parked from the start, in a whole-frame rule. The whole-frame pass never sees it;
    the slow scan finds it, track crops refresh it once a second, and in between its box is
    held, so the tracker follows it in every frame and the rule fires."""
    native = np.zeros((NATIVE[1], NATIVE[0], 3), np.uint8)
    native[600:612, 1200:1224] = 255
    import cv2

    small = cv2.resize(native, FRAME, interpolation=cv2.INTER_AREA)
    rule = StoppedVehicleRule(name="sv", type="stopped_vehicle", min_duration_s=10)
    a = analytics([rule])
    det = WhiteBlobs()
    events: list[Event] = []
    seen = []
    for t in times(25):
        gate = a.check_motion(small, t, NATIVE)
        whole = det.detect([small])[0]
        assert len(whole) == 0
        found = a.detect_regions(det, whole, lambda: native, gate, NATIVE, FRAME)
        seen.append(len(found))
        events += a.process(found, t=t, pts=t, wall_ts=t, source_size=NATIVE, frame_size=FRAME,
                            gate=gate)[1]  # fmt: skip
    first = seen.index(1)
    assert first <= 32 and all(n == 1 for n in seen[first:])  # found in the first sweep
    assert len(events) == 1 and events[0].type == "stopped_vehicle"
    # After the first sweep (32 windows, one per frame), about two crops a second (a scan
    # window, a track refresh), not one per frame.
    assert a.crops_run <= 32 + 2 * 25 + 4


def test_crowd_counts_detections_when_tracks_lag() -> None:
    cfg = CrowdRule(name="c", type="crowd", min_count=10, min_duration_s=2)
    r = Runner(cfg)
    people = dets(*(box(i, 20 + 25 * i, 200) for i in range(14)))
    tracked = people[:4]  # the tracker confirmed only four of them
    events: list[Event] = []
    for t in times(3):
        events += r.frame(t, tracked, detections=people)
    assert len(events) == 1 and events[0].measured == 14
    low = Detections(people.xyxy, np.full(14, 0.2), people.class_id)  # below 0.3: not counted
    assert Runner(cfg).run([(t, tracked) for t in times(3)]) == []
    r2 = Runner(cfg)
    assert sum(len(r2.frame(t, tracked, detections=low)) for t in times(3)) == 0
    # The last tiled pass counts too (held between tiled frames).
    r3 = Runner(cfg)
    assert sum(len(r3.frame(t, tracked, dense=people)) for t in times(3)) == 1


def test_congestion_keeps_its_clock_when_a_car_of_the_queue_is_missed() -> None:
    cfg = CongestionRule(name="q", type="congestion", min_vehicles=6, min_duration_s=5)
    queue = [box(i, 30 + 45 * i, 200, CAR, 40, 25) for i in range(6)]
    frames = [(t, dets(*(queue[:5] if i % 4 == 3 else queue))) for i, t in enumerate(times(8))]
    events = Runner(cfg).run(frames)
    assert len(events) == 1
    # Four of six (below 80 %) is no queue.
    assert Runner(cfg).run([(t, dets(*queue[:4])) for t in times(8)]) == []


def test_person_down_curled_among_bystanders_without_learned_heights() -> None:
    """A woman curled up at the roadside (34x43 px) with two people standing beside her
    (about 90 px tall at her row) from the start: no learned heights yet, the bystanders
    say how tall a standing person is there. A person sitting there (60 px) is not down."""
    cfg = PersonDownRule(name="down", type="person_down", min_duration_s=5)
    bystanders = [box(10, 200, 275, PERSON, 30, 90), box(11, 300, 282, PERSON, 30, 92)]
    curled = [(t, dets(box(1, 250, 280, PERSON, 34, 43), *bystanders)) for t in times(7)]
    events = Runner(cfg).run(curled)
    assert [e.track_ids for e in events] == [[1]]
    sitting = [(t, dets(box(2, 250, 280, PERSON, 40, 60), *bystanders)) for t in times(7)]
    assert Runner(cfg).run(sitting) == []
    alone = [(t, dets(box(3, 250, 280, PERSON, 34, 43))) for t in times(7)]
    assert Runner(cfg).run(alone) == []  # nothing to judge its height by: shape only


def test_person_down_when_the_same_person_walked_then_went_down() -> None:
    cfg = PersonDownRule(name="down", type="person_down", min_duration_s=5)
    walk = [(t, dets(box(1, 100 + 20 * t, 250, PERSON, 30, 90))) for t in times(3)]
    down = [(t, dets(box(1, 160, 250, PERSON, 36, 40))) for t in times(7, 3)]
    events = Runner(cfg).run(walk + down)
    assert len(events) == 1 and events[0].pts >= 8
    crouch = [(t, dets(box(1, 160, 250, PERSON, 36, 58))) for t in times(7, 3)]
    assert Runner(cfg).run(walk + crouch) == []
