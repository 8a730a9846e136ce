"""Per-camera analysis: tracker, zones and rules on a camera's detections."""

from __future__ import annotations

from dataclasses import dataclass

from analytics.config import RuleConfig, ZoneConfig
from analytics.rules import DwellRule, FrameContext, build_rule
from analytics.tracking import Tracker
from analytics.types import Detections, Event
from analytics.zones import Zone


@dataclass
class CameraRulesConfig:
    camera_id: str
    detect_fps: float
    zones: list[ZoneConfig]
    rules: list[RuleConfig]


class CameraAnalytics:
    """Tracks objects and runs the rules of one camera, in frame order.

    Zones are mapped to the analysed frame on the first frame, when the stream's
    sizes are known (and again if the stream changes resolution).
    """

    def __init__(self, cfg: CameraRulesConfig, class_names: tuple[str, ...]) -> None:
        self.cfg = cfg
        self.class_names = class_names
        self.tracker = Tracker(cfg.detect_fps)
        self.rules: list[DwellRule] = []
        self._sizes: tuple[tuple[int, int], tuple[int, int]] | None = None

    def _build_rules(self, source_size: tuple[int, int], frame_size: tuple[int, int]) -> None:
        zones = {z.name: Zone.from_config(z, source_size, frame_size) for z in self.cfg.zones}
        whole = Zone.whole_frame(frame_size)
        self.rules = [
            build_rule(r, zones[r.zone] if r.zone else whole) for r in self.cfg.rules if r.enabled
        ]
        self._sizes = (source_size, frame_size)

    def process(
        self,
        detections: Detections,
        *,
        t: float,
        pts: float,
        wall_ts: float,
        source_size: tuple[int, int],
        frame_size: tuple[int, int],
    ) -> tuple[Detections, list[Event]]:
        """Track this frame's detections and return (tracked, events)."""
        if self._sizes != (source_size, frame_size):
            self._build_rules(source_size, frame_size)
        tracked = self.tracker.update(detections, t)
        ctx = FrameContext(self.cfg.camera_id, t, pts, wall_ts, self.class_names)
        events: list[Event] = []
        for rule in self.rules:
            events.extend(rule.update(tracked, ctx))
        return tracked, events

    def zones_for_drawing(self) -> dict[str, object]:
        """Zone polygons by rule name, in analysed-frame pixels (for annotated snapshots)."""
        return {r.cfg.name: r.zone.polygon for r in self.rules}
