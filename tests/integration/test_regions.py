"""Region detection: native-resolution crops around motion, over small zones and on tiles,
merged with the whole-frame pass (analytics/regions.py), on the shared clips and model."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from analytics.config import DetectConfig, MotionConfig, StoppedVehicleRule, ZoneConfig
from analytics.detectors.onnx import OnnxDetector
from analytics.motion import MotionGate, changed_boxes
from analytics.pipeline import CameraAnalytics, CameraRulesConfig
from analytics.regions import Crop, cut_by_crop, detect_crops, drop_cut, merge, plan_crops
from analytics.types import COCO_CLASSES, Detections
from core.assets import assets_dir

ASSETS = assets_dir()
SOURCE, FRAME, INPUT = (640, 360), (416, 234), (416, 416)
NONE = np.zeros((0, 4))


def frame_of(clip: str, index: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(ASSETS / "videos" / clip))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, img = cap.read()
    cap.release()
    assert ok
    return img


@pytest.fixture(scope="module")
def detector() -> OnnxDetector:
    return OnnxDetector(ASSETS / "models" / "yolox_nano.onnx", confidence=0.3)


def test_tiles_cover_the_frame_with_overlap() -> None:
    crops = plan_crops(source_size=SOURCE, frame_size=FRAME, input_size=INPUT,
                       motion_boxes=NONE, zone_boxes=NONE, max_regions=2, tiles=(2, 1))  # fmt: skip
    assert [c.rect for c in crops] == [(0, 0, 356, 360), (284, 0, 640, 360)]
    assert {c.kind for c in crops} == {"tile"}


def test_motion_and_zone_crops_at_native_resolution() -> None:
    motion = np.array([[10, 10, 30, 50], [300, 150, 330, 200], [20, 15, 25, 40]], np.float64)
    zone = np.array([[380, 20, 410, 60]], np.float64)  # a small far zone
    crops = plan_crops(source_size=SOURCE, frame_size=FRAME, input_size=INPUT,
                       motion_boxes=motion, zone_boxes=zone, max_regions=2, tiles=None)  # fmt: skip
    # The zone's crop is small (zoomed); both blobs get a crop, the third lies in the second's.
    assert [c.kind for c in crops] == ["zone", "motion", "motion"]
    zone_rect = crops[0].rect
    # Zoomed in: a 208 px window (half the input) the detector upscales 2x.
    assert zone_rect[2] - zone_rect[0] == 208 and zone_rect[3] - zone_rect[1] == 208
    assert zone_rect[2] == 640  # shifted inside the frame
    # Three small zones side by side share one crop.
    zones = np.array([[10, 60, 60, 100], [70, 60, 120, 100], [130, 60, 180, 100]], np.float64)
    shared = plan_crops(source_size=SOURCE, frame_size=FRAME, input_size=INPUT,
                        motion_boxes=NONE, zone_boxes=zones, max_regions=2, tiles=None)  # fmt: skip
    assert len(shared) == 1 and shared[0].rect[0] == 0 and shared[0].rect[2] >= 180 * 640 / 416
    # Native no larger than the analysed frame: no crop sees anything new.
    same = plan_crops(source_size=FRAME, frame_size=FRAME, input_size=INPUT,
                      motion_boxes=motion, zone_boxes=zone, max_regions=2, tiles=None)  # fmt: skip
    assert same == []


def test_boxes_cut_by_an_inner_crop_edge() -> None:
    boxes = np.array([[0, 10, 20, 40], [330, 10, 356, 40], [100, 100, 120, 140]], np.float32)
    assert cut_by_crop(boxes, (0, 0, 356, 360), SOURCE).tolist() == [False, True, False]


def test_a_cut_box_is_dropped_only_where_a_whole_box_sees_the_object() -> None:
    whole = Detections(np.array([[10, 10, 50, 40]]), np.array([0.5]), np.array([2]))
    # A truck's half at a crop edge, covered by the car's whole box; a cut person nothing sees.
    crops = Detections(np.array([[30, 10, 50, 40], [200, 10, 210, 60]]), np.array([0.9, 0.4]),
                       np.array([7, 0]))  # fmt: skip
    out = merge(whole, crops, 0.45, np.array([True, True]))
    assert sorted(out.class_id.tolist()) == [0, 2]
    assert merge(whole, crops, 0.45).class_id.tolist().count(7) == 1  # NMS alone keeps it
    assert len(drop_cut(crops, np.array([True, True]))) == 2


def test_merge_keeps_the_best_box_per_object() -> None:
    whole = Detections(np.array([[10, 10, 30, 60]]), np.array([0.5]), np.array([0]))
    crops = Detections(np.array([[11, 10, 31, 61], [200, 10, 220, 60]]), np.array([0.8, 0.6]),
                       np.array([0, 0]))  # fmt: skip
    out = merge(whole, crops, 0.45)
    assert len(out) == 2 and sorted(out.confidence.tolist()) == pytest.approx([0.6, 0.8])


def test_motion_gate_reports_changed_areas() -> None:
    mask = np.zeros((90, 160), bool)
    mask[10:20, 10:14] = True
    mask[50:70, 100:110] = True
    boxes = changed_boxes(mask, 2.0)
    assert len(boxes) == 2
    gate = MotionGate(MotionConfig())
    gate.want_blobs = True
    gate.set_watched(None, FRAME)
    a, b = frame_of("plaza_topdown.mp4", 100), frame_of("plaza_topdown.mp4", 104)
    small_a, small_b = (cv2.resize(x, FRAME, interpolation=cv2.INTER_AREA) for x in (a, b))
    gate.check(small_a, 0.0)
    result = gate.check(small_b, 0.2)
    assert result.motion and result.blobs is not None and len(result.blobs) >= 3
    assert (result.blobs[:, 2] <= FRAME[0] + 1).all()


def test_tiles_find_more_people_on_the_plaza(detector: OnnxDetector) -> None:
    """The plaza (people 10-25 px tall at native resolution): tiles at native resolution
    see people the 416-px whole-frame pass misses (counted by looking at frame 150: about
    30 people in view)."""
    img = frame_of("plaza_topdown.mp4", 150)
    small = cv2.resize(img, FRAME, interpolation=cv2.INTER_AREA)
    whole = detector.detect([small])[0]
    crops = plan_crops(source_size=SOURCE, frame_size=FRAME, input_size=detector.input_size,
                       motion_boxes=NONE, zone_boxes=NONE, max_regions=2, tiles=(2, 1))  # fmt: skip
    found, cut = detect_crops(detector, img, crops, FRAME)
    merged = merge(whole, found, 0.45, cut)
    n_whole, n_merged = int((whole.class_id == 0).sum()), int((merged.class_id == 0).sum())
    assert n_merged >= n_whole + 6
    assert n_merged <= 36  # not one box per person per pass
    assert (merged.xyxy[:, 2] <= FRAME[0] + 0.5).all() and (
        merged.xyxy[:, 3] <= FRAME[1] + 0.5
    ).all()


def test_camera_analytics_region_detection_on_a_small_zone(detector: OnnxDetector) -> None:
    """The street clip's far parked cars (left kerb, about 25x15 px at native resolution):
    a small zone over them gets a native crop even on keep-alive frames (no motion)."""
    img = frame_of("street_parked_cars.mp4", 200)
    small = cv2.resize(img, FRAME, interpolation=cv2.INTER_AREA)
    zone = ZoneConfig(name="far", points=[(0.0, 0.15), (0.45, 0.15), (0.45, 0.55), (0.0, 0.55)])
    rule = StoppedVehicleRule(name="sv", type="stopped_vehicle", zone="far")
    plain = CameraAnalytics(
        CameraRulesConfig("c", 5.0, [zone], [rule], MotionConfig(), DetectConfig(regions=False)),
        COCO_CLASSES,
    )
    regions = CameraAnalytics(
        CameraRulesConfig("c", 5.0, [zone], [rule], MotionConfig(), DetectConfig(regions=True)),
        COCO_CLASSES,
    )
    # The default (auto) is on for a stopped_vehicle camera.
    default = CameraAnalytics(CameraRulesConfig("c", 5.0, [zone], [rule]), COCO_CLASSES)
    assert not plain.wants_regions and regions.wants_regions and default.wants_regions
    gate = regions.check_motion(small, 0.0, SOURCE)
    whole = detector.detect([small])[0]
    calls: list[int] = []

    def native() -> np.ndarray:
        calls.append(1)
        return img

    out = regions.detect_regions(detector, whole, native, gate, SOURCE, FRAME)
    assert calls == [1] and regions.crops_run >= 1
    cars = lambda d: int(np.isin(d.class_id, [2, 5, 7]).sum())  # noqa: E731
    assert cars(out) >= cars(whole)
    assert Crop((0, 0, 1, 1), "tile").kind == "tile"
