"""The Ultralytics backend (the optional extra the test command installs).

No Ultralytics weights can be downloaded here: the model is built from the
architecture file inside the package (random weights), so this checks the
plumbing into the common Detections type, not accuracy.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from analytics.config import DetectorConfig
from analytics.detectors import create_detector
from analytics.types import Detections


def test_ultralytics_backend_returns_common_detections(tmp_path: Path) -> None:
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ.setdefault("YOLO_CONFIG_DIR", str(tmp_path))
    det = create_detector(
        DetectorConfig(backend="ultralytics", model="yolo11n.yaml", input_size=(320, 320),
                       confidence=0.01), tmp_path, None)  # fmt: skip
    assert det.name == "ultralytics:yolo11n.yaml"
    assert det.class_names[0] == "person" and len(det.class_names) == 80
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (234, 416, 3), dtype=np.uint8) for _ in range(3)]
    results = det.detect(images)
    assert len(results) == 3 and all(isinstance(r, Detections) for r in results)
    for r in results:
        assert r.xyxy.shape[1] == 4 and len(r.confidence) == len(r.class_id) == len(r)
        if len(r):
            assert r.xyxy[:, [0, 2]].max() <= 416 and r.xyxy[:, [1, 3]].max() <= 234
