"""The data types every analytics stage speaks: one frame's detections, and events.

Detector adapters convert their model's output into :class:`Detections` at the
edge; the tracker fills ``tracker_id``; zones and rules only ever see this type.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.vocabulary import ALERT_TYPES, SEVERITIES, AlertType, Severity

COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
)  # fmt: skip


@dataclass
class Detections:
    """Boxes of one frame, as parallel numpy arrays (the ``supervision`` shape).

    ``xyxy`` is float32 (N, 4) in pixels of the analysed frame; ``tracker_id`` is
    -1 where the tracker has not (yet) assigned an id. ``weak``: a detector's boxes scored
    below its confidence but at least its ``weak_confidence``, set aside for the counting
    lines' own tracker (analytics/pipeline.py); no other rule sees them. Indexing, merging
    and scaling drop it.
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    tracker_id: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    weak: Detections | None = None

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(n, 4)
        self.confidence = np.asarray(self.confidence, dtype=np.float32).reshape(n)
        self.class_id = np.asarray(self.class_id, dtype=np.int64).reshape(n)
        if len(self.tracker_id) != n:
            self.tracker_id = np.full(n, -1, dtype=np.int64)
        else:
            self.tracker_id = np.asarray(self.tracker_id, dtype=np.int64)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0))

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: Any) -> Detections:
        return Detections(
            self.xyxy[index], self.confidence[index], self.class_id[index], self.tracker_id[index]
        )

    @classmethod
    def merge(cls, parts: list[Detections]) -> Detections:
        """The boxes of several sets as one (tracker ids kept)."""
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.xyxy for p in parts]),
            np.concatenate([p.confidence for p in parts]),
            np.concatenate([p.class_id for p in parts]),
            np.concatenate([p.tracker_id for p in parts]),
        )

    def anchors(self) -> np.ndarray:
        """Bottom-centre point of each box (where a person stands, a car touches the road)."""
        return np.stack([(self.xyxy[:, 0] + self.xyxy[:, 2]) / 2, self.xyxy[:, 3]], axis=1)

    def split(self, confidence: float) -> Detections:
        """The boxes scored at least ``confidence``, those below set aside as ``weak``."""
        strong = self.confidence >= confidence
        if strong.all():
            return self
        out = self[strong]
        out.weak = self[~strong]
        return out

    def scaled(self, sx: float, sy: float) -> Detections:
        """The same boxes in another frame size."""
        scale = np.array([sx, sy, sx, sy], dtype=np.float32)
        return Detections(self.xyxy * scale, self.confidence, self.class_id, self.tracker_id)


def class_name(class_id: int, names: tuple[str, ...] | list[str] = COCO_CLASSES) -> str:
    return names[class_id] if 0 <= class_id < len(names) else str(class_id)


def class_ids(names: Sequence[str], wanted: Collection[str]) -> np.ndarray:
    """The ids of the classes named in ``wanted`` (for ``np.isin`` on ``class_id``)."""
    return np.array([i for i, n in enumerate(names) if n in wanted], dtype=np.int64)


@dataclass
class Event:
    """Something a rule noticed, with the evidence of why it fired.

    ``measured`` and ``threshold`` carry the trace an operator reads in the alert
    ("dwell 312 s ≥ 300 s"); ``box`` is the object's box in analysed-frame pixels.
    """

    camera_id: str
    rule: str  # the rule's configured name
    type: AlertType  # loitering, intrusion, ...
    ts: float  # wall-clock epoch seconds of the frame that triggered it
    pts: float  # stream time of that frame, seconds
    track_ids: list[int]
    object_class: str
    zone: str
    severity: Severity
    measured: float
    threshold: float
    unit: str
    explanation: str
    confidence: float
    box: tuple[float, float, float, float] | None = None
    started_pts: float | None = None
    cooldown_s: float | None = None  # the rule's own cooldown, if set
    key: str | None = None  # cooldown key when not per track (crowd, camera fault)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Validated on construction: a rule cannot emit a word the rest does not know."""
        if self.type not in ALERT_TYPES:
            raise ValueError(f"event of rule {self.rule!r}: unknown alert type {self.type!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"event of rule {self.rule!r}: unknown severity {self.severity!r}")
        if not self.camera_id:
            raise ValueError(f"event of rule {self.rule!r}: no camera")
        if not math.isfinite(self.ts):
            raise ValueError(f"event of rule {self.rule!r}: time {self.ts!r} is not a number")
