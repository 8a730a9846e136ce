"""What every rule gets each frame, and helpers they share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from analytics.history import TrackHistory
from analytics.pose import BodyPose
from analytics.types import Detections, Event, class_name
from analytics.vqd import QualityMeasures
from analytics.zones import Zone


@dataclass
class FrameContext:
    """What a rule sees of a frame besides its tracked detections.

    ``armed`` is False outside the rule's schedule: the rule keeps its state (clocks,
    counts, tracks) but neither raises nor consumes its firing, so a condition that
    still holds when the window opens fires then.
    """

    camera_id: str
    t: float  # rule clock, seconds
    pts: float
    wall_ts: float
    class_names: tuple[str, ...]
    history: TrackHistory = field(default_factory=TrackHistory)
    luma: float | None = None  # mean grey level of the frame (0-255)
    change: float | None = None  # mean absolute grey difference to the previous frame
    quality: QualityMeasures | None = None  # the picture's quality measures (analytics/vqd)
    armed: bool = True  # inside the rule's schedule: it may fire
    # The frame's detections before tracking (what the detector saw; the last detection
    # frame's on a gated one), and the last tiled pass's while fresh (None: no such pass).
    detections: Detections | None = None
    dense: Detections | None = None
    # The track ids of confirmed objects (analytics/sanity.Confirmation); None: all are.
    confirmed: np.ndarray | None = None
    # Body poses of person tracks by track id (analytics/pose.py); None: no pose model.
    poses: dict[int, BodyPose] | None = None


class Rule(Protocol):
    @property
    def cfg(self) -> Any: ...

    @property
    def zone(self) -> Zone | None: ...

    @property
    def type(self) -> str: ...

    def update(self, tracked: Detections, ctx: FrameContext) -> list[Event]:
        """This frame's events; none while ``ctx.armed`` is False."""
        ...


class ClassFilter:
    """Selects the tracked detections a rule cares about (classes, confidence, zone)."""

    def __init__(self, classes: list[str], min_confidence: float, zone: Zone | None) -> None:
        self.classes = classes
        self.min_confidence = min_confidence
        self.zone = zone
        self._names: tuple[str, ...] | None = None
        self._ids = np.zeros(0, dtype=np.int64)

    def mask(self, d: Detections, names: tuple[str, ...], *, in_zone: bool = True) -> np.ndarray:
        if names is not self._names:
            self._names = names
            self._ids = np.array([i for i, n in enumerate(names) if n in self.classes], np.int64)
        mask = np.isin(d.class_id, self._ids)
        mask &= d.confidence >= self.min_confidence
        mask &= d.tracker_id >= 0
        if in_zone and self.zone is not None and mask.any():
            inside = np.zeros(len(d), dtype=bool)
            inside[mask] = self.zone.contains(d.anchors()[mask])
            mask &= inside
        return mask


class ObjectRule:
    """Shared plumbing of the rules about detected objects: the config, the zone (None:
    the whole frame, or a line) and the class / confidence / zone filter."""

    def __init__(self, cfg: Any, zone: Zone | None) -> None:
        self.cfg = cfg
        self.zone = zone
        self.filter = ClassFilter(cfg.classes, cfg.min_confidence, zone)

    @property
    def type(self) -> str:
        return str(self.cfg.type)

    def selected(self, tracked: Detections, ctx: FrameContext) -> Detections:
        """The tracked objects of the rule's classes and confidence, inside its zone."""
        return tracked[self.filter.mask(tracked, ctx.class_names)]

    def where(self) -> str:
        """Where the rule looks, for explanations: "in zone 'name'", or "in view" when it
        looks at the whole frame (whose internal zone name means nothing to an operator)."""
        return f"in zone '{self.zone.name}'" if self.cfg.zone and self.zone else "in view"


def box_diagonal(xyxy: np.ndarray) -> np.ndarray:
    wh = xyxy[..., 2:] - xyxy[..., :2]
    return np.hypot(wh[..., 0], wh[..., 1])


def make_event(
    rule: Any,
    ctx: FrameContext,
    *,
    det: Detections | None,
    track_ids: list[int],
    measured: float,
    threshold: float,
    unit: str,
    explanation: str,
    zone_name: str,
    started_t: float | None = None,
    object_class: str | None = None,
    key: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Event:
    """An event with its trace; ``det`` is the (one-row) detection to box in the snapshot."""
    cls = object_class
    if cls is None and det is not None and len(det):
        cls = class_name(int(det.class_id[0]), ctx.class_names)
    return Event(
        camera_id=ctx.camera_id,
        rule=rule.cfg.name,
        type=rule.cfg.type,
        ts=ctx.wall_ts,
        pts=ctx.pts,
        track_ids=list(track_ids),
        object_class=cls or "",
        zone=zone_name,
        severity=rule.cfg.severity,
        measured=round(float(measured), 2),
        threshold=float(threshold),
        unit=unit,
        explanation=explanation,
        confidence=float(det.confidence[0]) if det is not None and len(det) else 1.0,
        box=tuple(float(v) for v in det.xyxy[0]) if det is not None and len(det) else None,  # type: ignore[arg-type]
        started_pts=None if started_t is None else ctx.pts - (ctx.t - started_t),
        cooldown_s=rule.cfg.cooldown_s,
        key=key,
        extra=extra or {},
    )


def union_box(det: Detections) -> Detections:
    """One detection boxing all of ``det`` (for group events such as a crowd)."""
    if len(det) == 0:
        return det
    x1, y1 = det.xyxy[:, 0].min(), det.xyxy[:, 1].min()
    x2, y2 = det.xyxy[:, 2].max(), det.xyxy[:, 3].max()
    return Detections(
        np.array([[x1, y1, x2, y2]]),
        np.array([float(det.confidence.mean())]),
        det.class_id[:1],
        np.array([-1]),
    )
