"""Detector backends on real footage and known output layouts."""

from __future__ import annotations

import hashlib
from pathlib import Path

import av
import numpy as np
import pytest

from analytics.config import DetectorConfig
from analytics.detectors import DetectorError, create_detector
from analytics.detectors.onnx import OnnxDetector
from analytics.models import resolve_model


def first_frame(path: Path, size: tuple[int, int]) -> np.ndarray:
    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i == 100:
                return frame.to_ndarray(width=size[0], height=size[1], format="bgr24")
    raise AssertionError("clip too short")


def test_yolox_finds_people_on_the_crossing(models_dir: Path, videos_dir: Path) -> None:
    det = OnnxDetector(models_dir / "yolox_nano.onnx", confidence=0.35)
    assert det.format == "yolox" and det.input_size == (416, 416)
    image = first_frame(videos_dir / "crosswalk_people.mp4", (416, 234))
    (found,) = det.detect([image])
    people = found[found.class_id == 0]
    assert len(people) >= 4
    # Boxes are in the given image's pixels.
    assert people.xyxy[:, [0, 2]].max() <= 416 and people.xyxy[:, [1, 3]].max() <= 234
    assert (people.xyxy[:, 2] > people.xyxy[:, 0]).all()


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` with every box of ``b`` (xyxy)."""
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return np.asarray(inter / (area(a)[:, None] + area(b)[None, :] - inter))


def test_rectangular_inference_finds_what_the_square_finds(
    models_dir: Path, videos_dir: Path
) -> None:
    """A 16:9 frame letterboxed to 416x256 instead of 416x416: the same objects (the
    padding carries nothing), for about 40 % less inference."""
    rect = OnnxDetector(models_dir / "yolox_nano.onnx", confidence=0.35)
    square = OnnxDetector(models_dir / "yolox_nano.onnx", confidence=0.35, rect=False)
    assert rect.rect and not square.rect and rect.input_size == square.input_size == (416, 416)
    assert rect._preprocess(np.zeros((234, 416, 3), np.uint8))[0].shape == (1, 3, 256, 416)
    assert rect._preprocess(np.zeros((416, 234, 3), np.uint8))[0].shape == (1, 3, 416, 256)
    # A size given by the operator is kept as it is.
    fixed = OnnxDetector(models_dir / "yolox_nano.onnx", input_size=(416, 416))
    assert not fixed.rect
    total = same = 0
    with av.open(str(videos_dir / "crosswalk_people.mp4")) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i % 50:
                continue
            image = frame.to_ndarray(width=416, height=234, format="bgr24")
            (a,), (b,) = square.detect([image]), rect.detect([image])
            total += len(a)
            if len(a) and len(b):
                iou = box_iou(a.xyxy, b.xyxy)
                best = iou.argmax(axis=1)
                same += int(((iou.max(axis=1) > 0.9) & (a.class_id == b.class_id[best])).sum())
            # portrait: the same frame turned, boxes back in its own pixels
            (p,) = rect.detect([np.ascontiguousarray(np.rot90(image))])
            assert p.xyxy[:, [0, 2]].max(initial=0) <= 234
            assert p.xyxy[:, [1, 3]].max(initial=0) <= 416
    assert total >= 60
    assert same >= 0.93 * total, (same, total)


def test_ultralytics_onnx_layout_is_decoded(models_dir: Path) -> None:
    det = OnnxDetector(models_dir / "yolox_nano.onnx", confidence=0.5)
    det.format = "ultralytics"  # decode a hand-made YOLOv8-layout output
    out = np.zeros((84, 3), dtype=np.float32)
    out[:4, 0] = [208, 167, 40, 80]  # cx, cy, w, h in input pixels (centred padding)
    out[4 + 2, 0] = 0.9  # a car
    out[:4, 1] = [210, 168, 42, 82]  # an overlapping duplicate, lower score: NMS drops it
    out[4 + 2, 1] = 0.7
    out[:4, 2] = [100, 100, 10, 10]
    out[4 + 0, 2] = 0.2  # below confidence
    found = det._postprocess(out, 1.0, (0.0, 91.0), 416, 234)
    assert found.class_id.tolist() == [2]
    assert np.allclose(found.xyxy[0], [188, 36, 228, 116])


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    cfg = DetectorConfig(model=str(tmp_path / "nope.onnx"))
    with pytest.raises(DetectorError, match="nope.onnx.*not found"):
        create_detector(cfg, tmp_path / "models", None)


def test_model_from_mirror_is_verified_and_copied(tmp_path: Path, models_dir: Path) -> None:
    path = resolve_model("yolox_nano.onnx", tmp_path / "models", mirror_dir=models_dir,
                         allow_download=False)  # fmt: skip
    assert path == tmp_path / "models" / "yolox_nano.onnx"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == "e8af074932d4ed7e232278e3055cefcdea3edf178874a3694ae292649fb464dd"


def test_corrupt_model_file_fails_its_checksum(tmp_path: Path) -> None:
    bad = tmp_path / "models" / "yolox_nano.onnx"
    bad.parent.mkdir()
    bad.write_bytes(b"not a model")
    with pytest.raises(DetectorError, match="SHA-256"):
        resolve_model("yolox_nano.onnx", tmp_path / "models", allow_download=False)


def test_a_van_scored_as_car_and_truck_is_one_vehicle() -> None:
    from analytics.detectors.base import merge_class_group
    from analytics.types import Detections

    det = Detections(
        np.array([[10, 10, 110, 60], [12, 11, 111, 62], [200, 10, 260, 50], [30, 5, 60, 60]]),
        np.array([0.8, 0.6, 0.7, 0.9]),
        np.array([2, 7, 7, 0]),  # car, truck (same van), another truck, a person over it
    )
    merged = merge_class_group(det)
    assert merged.class_id.tolist() == [2, 7, 0]
    assert np.allclose(merged.xyxy[0], [10, 10, 110, 60])
