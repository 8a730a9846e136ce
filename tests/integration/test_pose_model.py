"""The real BlazePose detector (analytics/pose.py) on real footage: the people of the shared
crossing clip read upright; the same people turned a quarter (a real person made to lie)
read lying; and a person_down camera with the model finds the turned person the box calls
upright. Needs the optional extra ``pose`` (ai-edge-litert) and the model file, which
``scripts/test.sh`` puts into ``eval/.cache/models`` (``shaobing models pose``)."""

from __future__ import annotations

import os
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from analytics import pose
from analytics.detectors.onnx import OnnxDetector

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pose_model() -> pose.BlazePoseDetector:
    env = os.environ.get(pose.POSE_MODEL_ENV)
    path = Path(env) if env and env != "off" else ROOT / "eval/.cache/models" / pose.POSE_MODEL
    if not path.is_file():
        pytest.fail(
            f"no pose model at {path}: run `python -m shaobing.cli models pose -o "
            f"{path.parent}` (scripts/test.sh does), or set ${pose.POSE_MODEL_ENV}"
        )
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        pytest.fail("the optional extra 'pose' (ai-edge-litert) is not installed")
    return pose.BlazePoseDetector(path, Interpreter)


@pytest.fixture(scope="module")
def people(videos_dir: Path, models_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """A frame of the crossing clip and its big, confident people (native pixels)."""
    with av.open(str(videos_dir / "crosswalk_people.mp4")) as c:
        frame = next(f for i, f in enumerate(c.decode(video=0)) if i == 48).to_ndarray(
            format="bgr24"
        )
    det = OnnxDetector(models_dir / "yolox_nano.onnx", confidence=0.5)
    d = det.detect([frame])[0]
    h = d.xyxy[:, 3] - d.xyxy[:, 1]
    keep = (d.class_id == 0) & (h >= 80)
    assert keep.sum() >= 2, "the clip's frame 48 has at least two big people"
    return frame, d.xyxy[keep]


def _turned(frame: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The frame turned 90° clockwise, and the box in it."""
    h = frame.shape[0]
    x1, y1, x2, y2 = box
    return cv2.rotate(frame, cv2.ROTATE_90_CLOCKWISE), np.array([h - y2, x1, h - y1, x2])


def test_upright_people_read_upright_and_turned_ones_lying(pose_model, people) -> None:
    frame, boxes = people
    upright = [pose_model.estimate(frame, b) for b in boxes]
    lying = [pose_model.estimate(*_turned(frame, b)) for b in boxes]
    sure_up = [p for p in upright if p.score >= 0.5]
    sure_down = [p for p in lying if p.score >= 0.5]
    assert len(sure_up) >= 2 and all(p.angle <= 30 for p in sure_up), upright
    assert len(sure_down) >= 2 and all(p.angle >= 60 for p in sure_down), lying
    assert pose_model.runs == 2 * len(boxes)
