"""The detector interface every backend implements."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from analytics.types import Detections


class DetectorError(RuntimeError):
    """A detector that cannot be loaded or run (missing model, bad format...)."""


class Detector(Protocol):
    """Finds objects in BGR uint8 images.

    ``input_size`` is the (width, height) the model wants; callers should hand in
    frames already scaled to fit inside it (ingest scales in FFmpeg), so the
    detector only pads. Returned boxes are in the pixels of the image given.
    """

    name: str
    input_size: tuple[int, int]
    class_names: tuple[str, ...]

    def detect(self, images: list[np.ndarray]) -> list[Detections]: ...


def fit_size(src_w: int, src_h: int, box_w: int, box_h: int) -> tuple[int, int]:
    """The largest (w, h) with the source's aspect ratio that fits in the box (even sizes)."""
    scale = min(box_w / src_w, box_h / src_h)
    w = max(2, int(round(src_w * scale / 2)) * 2)
    h = max(2, int(round(src_h * scale / 2)) * 2)
    return min(w, box_w), min(h, box_h)


# COCO car, bus, truck: one vehicle is often scored as two of these (a van as car and
# truck); each box would get its own track and be counted twice. Person and
# bicycle/motorcycle are left apart: a rider's boxes overlap by nature.
VEHICLE_GROUP = (2, 5, 7)


def merge_class_group(
    det: Detections, group: tuple[int, ...] = VEHICLE_GROUP, iou: float = 0.6
) -> Detections:
    """Suppress overlapping boxes across the classes of ``group`` (best score wins)."""
    in_group = np.isin(det.class_id, group)
    if in_group.sum() < 2:
        return det
    nms_class = np.where(in_group, group[0], det.class_id)
    keep = nms_per_class(det.xyxy, det.confidence, nms_class, iou)
    return det[np.sort(keep)]


def nms_per_class(
    boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou: float
) -> np.ndarray:
    """Class-aware non-maximum suppression; returns kept indices (best first)."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    # Offset boxes per class so that one NMS call never suppresses across classes.
    offset = class_ids.astype(np.float32)[:, None] * (float(boxes.max()) + 1.0)
    shifted = boxes + offset
    xywh = np.concatenate([shifted[:, :2], shifted[:, 2:] - shifted[:, :2]], axis=1)
    import cv2

    keep = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), 0.0, iou)
    return np.asarray(keep, dtype=np.int64).reshape(-1)
