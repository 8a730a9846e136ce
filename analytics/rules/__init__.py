"""Rules turn tracked detections into events. One class per family:

* presence (dwell in a state): intrusion, pedestrian_on_road, loitering,
  stopped_vehicle, person_down — :mod:`analytics.rules.presence`
* movement: wandering, line_crossing, wrong_way — :mod:`analytics.rules.movement`
* zone as a whole: crowd, congestion; the picture itself: camera_fault —
  :mod:`analytics.rules.aggregate`
"""

from __future__ import annotations

import numpy as np

from analytics.config import (
    CameraFaultRule,
    CongestionRule,
    CrowdRule,
    LineCrossingRule,
    RuleConfig,
    WanderingRule,
    WrongWayRule,
)
from analytics.rules.aggregate import CameraFault, Congestion, Crowd
from analytics.rules.base import FrameContext, Rule
from analytics.rules.movement import LineCrossing, Wandering, WrongWay
from analytics.rules.presence import PresenceRule
from analytics.zones import Zone, map_points

__all__ = ["FrameContext", "Rule", "build_rule"]


def build_rule(
    cfg: RuleConfig,
    zone: Zone,
    source_size: tuple[int, int],
    frame_size: tuple[int, int],
) -> Rule:
    """The rule object for a rule config, its geometry mapped to the analysed frame."""
    if isinstance(cfg, CameraFaultRule):
        return CameraFault(cfg)
    if isinstance(cfg, LineCrossingRule):
        line = map_points(cfg.line, cfg.coordinates, source_size, frame_size).astype(np.float64)
        return LineCrossing(cfg, line)
    if isinstance(cfg, WanderingRule):
        return Wandering(cfg, zone)
    if isinstance(cfg, WrongWayRule):
        return WrongWay(cfg, zone)
    if isinstance(cfg, CrowdRule):
        return Crowd(cfg, zone)
    if isinstance(cfg, CongestionRule):
        return Congestion(cfg, zone)
    return PresenceRule(cfg, zone)
