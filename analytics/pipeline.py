"""Per-camera analysis: motion gate, tracker, track history, zones and rules."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from zoneinfo import ZoneInfo

import numpy as np

from analytics.config import (
    DetectConfig,
    LineCrossingRule,
    MotionConfig,
    RuleConfig,
    ZoneConfig,
)
from analytics.detectors.base import Detector
from analytics.history import TrackHistory
from analytics.motion import GateResult, MotionGate
from analytics.regions import detect_crops, merge, plan_crops
from analytics.rules import FrameContext, Rule, build_rule
from analytics.sanity import TrackFilter, oversized_persons
from analytics.tracking import Tracker
from analytics.types import Detections, Event
from analytics.zones import Zone
from core.schedule import in_schedule

__all__ = ["CameraAnalytics", "CameraRulesConfig", "in_schedule"]


@dataclass
class CameraRulesConfig:
    camera_id: str
    detect_fps: float
    zones: list[ZoneConfig]
    rules: list[RuleConfig]
    motion: MotionConfig = field(default_factory=MotionConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)


class CameraAnalytics:
    """Tracks objects and runs the rules of one camera, in frame order.

    Geometry (zones, lines, the motion gate's mask) is mapped to the analysed
    frame on the first frame, when the stream's sizes are known, and again if
    the stream changes resolution.

    ``timezone`` is the zone of rule schedules; ``use_schedules=False`` (replay
    without a start time) applies every rule at all times. Outside its schedule a
    rule still sees every frame, unarmed: its clocks keep running but it raises
    nothing, so a situation that began before the window opens and still holds
    fires when it opens.
    """

    def __init__(
        self,
        cfg: CameraRulesConfig,
        class_names: tuple[str, ...],
        *,
        timezone: str = "Asia/Shanghai",
        use_schedules: bool = True,
    ) -> None:
        self.cfg = cfg
        self.class_names = class_names
        self.tracker = Tracker(cfg.detect_fps, lost_s=max(2.0, 2 * cfg.motion.keepalive_s))
        self.history = TrackHistory(self._horizon())
        self.gate = MotionGate(cfg.motion)
        self.filter = TrackFilter(cfg.detect.min_frames, cfg.detect.min_median_score)
        self.gate.want_blobs = cfg.detect.regions
        self.zone_boxes = np.zeros((0, 4))  # watched zones' bounding boxes, analysed pixels
        self.crops_run = 0  # detector runs on crops (region detection), for the bench
        self.rules: list[Rule] = []
        self.tz = ZoneInfo(timezone)
        self.use_schedules = use_schedules
        self.last_tracked = Detections.empty()
        self.last_detections = Detections.empty()
        self._sizes: tuple[tuple[int, int], tuple[int, int]] | None = None

    def _horizon(self) -> float:
        windows = [getattr(r, "window_s", 0.0) for r in self.cfg.rules]
        return max([30.0, *windows]) + 5.0

    def _build(self, source_size: tuple[int, int], frame_size: tuple[int, int]) -> None:
        zones = {z.name: Zone.from_config(z, source_size, frame_size) for z in self.cfg.zones}
        whole = Zone.whole_frame(frame_size)
        active = [r for r in self.cfg.rules if r.enabled]
        self.rules = [
            build_rule(r, zones[r.zone] if r.zone else whole, source_size, frame_size)
            for r in active
        ]
        # Watch the zones that matter; the whole frame if a rule looks at all of it.
        needs_detection = [r for r in active if r.type != "camera_fault"]
        if any(r.zone is None or isinstance(r, LineCrossingRule) for r in needs_detection):
            self.gate.set_watched(None, frame_size)
        else:
            self.gate.set_watched([zones[r.zone].polygon for r in needs_detection], frame_size)  # type: ignore[index]
        watched = {
            r.zone for r in needs_detection if r.zone and not isinstance(r, LineCrossingRule)
        }
        self.zone_boxes = np.array(
            [
                [*zones[z].polygon.min(axis=0), *zones[z].polygon.max(axis=0)]
                for z in sorted(watched)
            ],
            dtype=np.float64,
        ).reshape(-1, 4)
        self._sizes = (source_size, frame_size)

    @property
    def wants_regions(self) -> bool:
        """Whether detection frames also need :meth:`detect_regions` (analytics/regions.py)."""
        return self.cfg.detect.regions or self.cfg.detect.tiles is not None

    def detect_regions(
        self,
        detector: Detector,
        whole: Detections,
        native: Callable[[], np.ndarray],
        gate: GateResult | None,
        source_size: tuple[int, int],
        frame_size: tuple[int, int],
        nms_iou: float = 0.45,
    ) -> Detections:
        """The whole-frame pass ``whole`` merged with detections on native-resolution crops
        around motion, over small watched zones and on the configured tiles.
        ``native`` gives the full-resolution BGR frame (only called when a crop is needed)."""
        d = self.cfg.detect
        if self._sizes != (source_size, frame_size):
            self._build(source_size, frame_size)
        blobs = gate.blobs if gate is not None and gate.blobs is not None else np.zeros((0, 4))
        crops = plan_crops(
            source_size=source_size, frame_size=frame_size, input_size=detector.input_size,
            motion_boxes=blobs if d.regions else np.zeros((0, 4)),
            zone_boxes=self.zone_boxes if d.regions else np.zeros((0, 4)),
            max_regions=d.max_regions, tiles=d.tiles,
        )  # fmt: skip
        self.crops_run += len(crops)
        if not crops:
            return whole
        found, cut = detect_crops(detector, native(), crops, frame_size)
        return merge(whole, found, nms_iou, cut)

    def check_motion(self, image: np.ndarray, t: float, source_size: tuple[int, int]) -> GateResult:
        """Run the motion gate on a frame (call before deciding to detect)."""
        frame_size = (image.shape[1], image.shape[0])
        if self._sizes != (source_size, frame_size):
            self._build(source_size, frame_size)
        return self.gate.check(image, t)

    def process(
        self,
        detections: Detections | None,
        *,
        t: float,
        pts: float,
        wall_ts: float,
        source_size: tuple[int, int],
        frame_size: tuple[int, int],
        gate: GateResult | None = None,
    ) -> tuple[Detections, list[Event]]:
        """Track this frame's detections and return (tracked, events).

        ``detections`` None means detection was skipped (no motion): the last
        detected boxes are used again.
        """
        if self._sizes != (source_size, frame_size):
            self._build(source_size, frame_size)
        if detections is None:
            # Nothing moved: the objects are where they were last detected. Feeding those
            # boxes keeps the tracker's cadence, so tracks stay confirmed and keep their ids.
            detections = self.last_detections
        else:
            self.last_detections = detections
        tracked = self.tracker.update(detections, t)
        self.history.update(tracked, t)
        # What the rules see: tracks long and confident enough, no bus-sized "person".
        keep = self.filter.passed(tracked, self.history)
        if self.cfg.detect.oversized_person_ratio > 0:
            ratio = self.cfg.detect.oversized_person_ratio
            keep &= ~oversized_persons(tracked, self.class_names, ratio)
        tracked = self.last_tracked = tracked[keep]
        ctx = FrameContext(
            self.cfg.camera_id, t, pts, wall_ts, self.class_names, self.history,
            luma=gate.luma if gate else None, change=gate.change if gate else None,
            quality=gate.quality if gate else None,
        )  # fmt: skip
        when = dt.datetime.fromtimestamp(wall_ts, self.tz) if self.use_schedules else None
        events: list[Event] = []
        for rule in self.rules:
            # Dropping the events of a closed rule afterwards would not do: the rule would
            # already have used up its firing on them (a presence fires once).
            armed = when is None or in_schedule(rule.cfg.schedule, when)
            events.extend(rule.update(tracked, replace(ctx, armed=armed)))
        return tracked, events

    def counters(self) -> dict[str, dict[str, int]]:
        """Running counts of counting rules (line crossings per direction), by rule name."""
        return {
            r.cfg.name: dict(r.counts)  # type: ignore[attr-defined]
            for r in self.rules
            if isinstance(r.cfg, LineCrossingRule)
        }

    def faults(self) -> list[str]:
        """The picture faults holding now (video quality diagnosis)."""
        return sorted({k for r in self.rules for k in getattr(r, "active", ())})

    def zones_for_drawing(self) -> dict[str, np.ndarray]:
        """Zone polygon (or line) by rule name, in analysed-frame pixels, for snapshots."""
        out: dict[str, np.ndarray] = {}
        for r in self.rules:
            if isinstance(r.cfg, LineCrossingRule):
                out[r.cfg.name] = r.line  # type: ignore[attr-defined]
            elif r.zone is not None:
                out[r.cfg.name] = r.zone.polygon
        return out
