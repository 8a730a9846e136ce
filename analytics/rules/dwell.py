"""Dwell rules: ``intrusion`` and ``loitering``.

Both measure how long an object of given classes stays inside a zone, on the
stream's own clock. The clock of a presence survives two things a tracker does
on real footage:

* a short occlusion: the track is missing for less than ``grace_s``;
* an id switch: a *new* track appears within ``grace_s`` close to where a lost
  one was last seen (within one box height), and inherits its clock.

A presence fires once; it must end (absent for longer than ``grace_s``) before
the same object can fire again. Cooldown across presences is the alert
service's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from analytics.config import IntrusionRule, LoiteringRule
from analytics.types import Detections, Event, class_name
from analytics.zones import Zone


@dataclass
class Presence:
    first_t: float
    last_t: float
    anchor: np.ndarray
    height: float
    track_ids: list[int] = field(default_factory=list)
    fired: bool = False


@dataclass
class FrameContext:
    camera_id: str
    t: float  # rule clock, seconds
    pts: float
    wall_ts: float
    class_names: tuple[str, ...]


class DwellRule:
    """Fires when an object stays in the zone for at least ``min_duration_s``."""

    def __init__(self, cfg: IntrusionRule | LoiteringRule, zone: Zone) -> None:
        self.cfg = cfg
        self.zone = zone
        self._class_names: tuple[str, ...] | None = None
        self._class_ids: np.ndarray | None = None
        self.presences: dict[int, Presence] = {}  # by every track id of its lineage

    @property
    def type(self) -> str:
        return self.cfg.type

    def _wanted(self, detections: Detections, names: tuple[str, ...]) -> np.ndarray:
        if self._class_ids is None or self._class_names is not names:
            self._class_names = names
            self._class_ids = np.array(
                [i for i, n in enumerate(names) if n in self.cfg.classes], dtype=np.int64
            )
        mask = np.isin(detections.class_id, self._class_ids)
        mask &= detections.confidence >= self.cfg.min_confidence
        mask &= detections.tracker_id >= 0
        return mask

    def update(self, detections: Detections, ctx: FrameContext) -> list[Event]:
        mask = self._wanted(detections, ctx.class_names)
        inside = np.zeros(len(detections), dtype=bool)
        inside[mask] = self.zone.contains(detections.anchors()[mask])
        here = detections[inside]
        events: list[Event] = []
        anchors = here.anchors()
        for i, tid in enumerate(here.tracker_id.tolist()):
            height = float(here.xyxy[i, 3] - here.xyxy[i, 1])
            presence = self._presence_for(tid, anchors[i], height, ctx.t)
            presence.last_t = ctx.t
            presence.anchor = anchors[i]
            presence.height = height
            dwell = ctx.t - presence.first_t
            if not presence.fired and dwell >= self.cfg.min_duration_s:
                presence.fired = True
                events.append(self._event(here[i : i + 1], presence, dwell, ctx))
        self._expire(ctx.t)
        return events

    def _presence_for(self, tid: int, anchor: np.ndarray, height: float, t: float) -> Presence:
        """The presence a track continues: its own (also after it was lost and found
        again), a recently lost one nearby (an id switch), or a new one."""
        own = self.presences.get(tid)
        if own is not None and own.last_t < t:
            return own
        best: tuple[float, Presence] | None = None
        for p in self._live():
            if p.last_t >= t or t - p.last_t > self.cfg.grace_s:
                continue  # still visible this frame, or lost too long ago
            dist = float(np.hypot(*(anchor - p.anchor)))
            if dist <= max(height, p.height) and (best is None or dist < best[0]):
                best = (dist, p)
        if best is not None:
            presence = best[1]
            presence.track_ids.append(tid)
        else:
            presence = Presence(t, t, anchor, height, [tid])
        self.presences[tid] = presence
        return presence

    def _live(self) -> list[Presence]:
        unique: dict[int, Presence] = {}
        for p in self.presences.values():
            unique[id(p)] = p
        return list(unique.values())

    def _expire(self, t: float) -> None:
        for tid in [k for k, p in self.presences.items() if t - p.last_t > self.cfg.grace_s]:
            del self.presences[tid]

    def _event(self, det: Detections, p: Presence, dwell: float, ctx: FrameContext) -> Event:
        cls = class_name(int(det.class_id[0]), ctx.class_names)
        threshold = self.cfg.min_duration_s
        ids = ", ".join(str(i) for i in p.track_ids)
        return Event(
            camera_id=ctx.camera_id,
            rule=self.cfg.name,
            type=self.cfg.type,
            ts=ctx.wall_ts,
            pts=ctx.pts,
            track_ids=list(p.track_ids),
            object_class=cls,
            zone=self.zone.name,
            severity=self.cfg.severity,
            measured=round(dwell, 2),
            threshold=threshold,
            unit="s",
            explanation=(
                f"{cls} (track {ids}) in zone '{self.zone.name}' for {dwell:.1f} s "
                f"≥ {threshold:g} s"
            ),
            confidence=float(det.confidence[0]),
            box=tuple(float(v) for v in det.xyxy[0]),  # type: ignore[arg-type]
            started_pts=ctx.pts - dwell,
            cooldown_s=self.cfg.cooldown_s,
        )
