"""Ultralytics backend: whatever ``ultralytics.YOLO`` loads (.pt, .yaml, exports).

Needs the optional extra ``pip install .[ultralytics]`` (torch). Set
``YOLO_OFFLINE=1`` on networks without internet.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from analytics.detectors.base import DetectorError, merge_class_group
from analytics.types import COCO_CLASSES, Detections


class UltralyticsDetector:
    def __init__(
        self,
        model: str,
        *,
        confidence: float = 0.3,
        weak_confidence: float | None = None,
        nms_iou: float = 0.45,
        input_size: tuple[int, int] | None = None,
        device: str = "cpu",
    ) -> None:
        os.environ.setdefault("YOLO_OFFLINE", "1")
        try:
            from ultralytics import YOLO
        except ImportError as exc:
            raise DetectorError(
                "detector.backend 'ultralytics' needs the optional extra: "
                "pip install 'shaobing[ultralytics]'"
            ) from exc
        try:
            self.model = YOLO(model)
        except Exception as exc:  # ultralytics raises many types
            raise DetectorError(f"ultralytics cannot load model {model!r}: {exc}") from exc
        self.input_size = input_size or (640, 640)
        self.confidence = confidence
        self.floor = min(confidence, weak_confidence if weak_confidence else confidence)
        self.nms_iou = nms_iou
        self.device = device
        names = getattr(self.model, "names", None)
        listed = tuple(names[i] for i in sorted(names)) if isinstance(names, dict) else ()
        # A model built from an architecture file names its classes '0'..'79': with 80
        # classes it is a COCO model, so rules can use the COCO names.
        if not listed or (len(listed) == len(COCO_CLASSES) and all(n.isdigit() for n in listed)):
            listed = COCO_CLASSES
        self.class_names = listed
        self.name = f"ultralytics:{os.path.basename(model)}"

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        if not images:
            return []
        results = self.model.predict(
            images,
            imgsz=max(self.input_size),
            conf=self.floor,
            iou=self.nms_iou,
            device=self.device,
            verbose=False,
        )
        out = []
        for res in results:
            boxes: Any = res.boxes  # type: ignore[union-attr]
            det = Detections(
                boxes.xyxy.cpu().numpy(),
                boxes.conf.cpu().numpy(),
                boxes.cls.cpu().numpy().astype(np.int64),
            )
            coco = self.class_names == COCO_CLASSES
            out.append((merge_class_group(det) if coco else det).split(self.confidence))
        return out
