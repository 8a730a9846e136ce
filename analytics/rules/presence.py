"""Presence rules: how long an object has been in a zone (in a given state).

``intrusion``, ``pedestrian_on_road`` and ``loitering`` measure plain dwell;
``stopped_vehicle`` restarts the clock whenever the vehicle moves more than a
fraction of its size; ``person_down`` counts only while the person's box is
wider than tall and still.

The clock of a presence survives what a tracker does on real footage:

* a short occlusion or a missed detection: absent for less than ``grace_s``;
* an id switch: a *new* track appears within ``grace_s`` close to where a lost
  one was last seen (within half a box height), and no other lost one is that
  close, and inherits its clock (for loitering, only if the two boxes look alike:
  their colour signatures correlate, analytics/appearance.py);
* (loitering) leaving and re-entering within ``reentry_window_s``: the time
  inside keeps adding up.

A presence fires once; it must end before the same object can fire again.
Outside the rule's schedule (``ctx.armed`` False) the clocks keep running but
nothing fires, so a presence that began before the window opens and still
lasts fires on the window's first frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from analytics.appearance import similarity
from analytics.config import (
    IntrusionRule,
    LoiteringRule,
    PedestrianOnRoadRule,
    PersonDownRule,
    StoppedVehicleRule,
)
from analytics.history import TrackHistory
from analytics.pose import BodyPose
from analytics.rules.base import FrameContext, ObjectRule, box_diagonal, make_event
from analytics.sanity import (
    StandingHeights,
    attended_two_wheelers,
    own_upright_height,
    peer_heights,
    riders,
)
from analytics.types import Detections, Event, class_name
from analytics.zones import Zone

PresenceConfig = (
    IntrusionRule | PedestrianOnRoadRule | LoiteringRule | StoppedVehicleRule | PersonDownRule
)


@dataclass
class Presence:
    first_t: float  # start of the current inside interval
    last_t: float
    anchor: np.ndarray
    height: float
    track_ids: list[int] = field(default_factory=list)
    fired: bool = False
    banked: float = 0.0  # dwell of earlier intervals (re-entries)
    ref_anchor: np.ndarray | None = None  # where a stationary object is held

    def dwell(self, t: float) -> float:
        return self.banked + (t - self.first_t)


class PresenceRule(ObjectRule):
    cfg: PresenceConfig
    zone: Zone

    def __init__(self, cfg: PresenceConfig, zone: Zone) -> None:
        super().__init__(cfg, zone)
        self.presences: dict[int, Presence] = {}  # by every track id of its lineage
        self.departed: dict[int, tuple[float, Presence]] = {}  # re-entry candidates
        self.reentry_s = cfg.reentry_window_s if isinstance(cfg, LoiteringRule) else 0.0
        self.heights = StandingHeights() if isinstance(cfg, PersonDownRule) else None

    # -- per-rule conditions ---------------------------------------------------

    def _qualifies(self, det: Detections, tracked: Detections, ctx: FrameContext) -> np.ndarray:
        """Which of the in-zone detections are in the state the rule measures."""
        if isinstance(self.cfg, PersonDownRule):
            wh = det.xyxy[:, 2:] - det.xyxy[:, :2]
            down = wh[:, 0] >= self.cfg.min_aspect * np.maximum(wh[:, 1], 1e-6)
            if self.cfg.max_relative_height > 0 and self.heights is not None and len(det):
                # Curled up or foreshortened: far shorter than a person standing there.
                expected = self._standing_heights(det, tracked, ctx)
                down |= wh[:, 1] <= self.cfg.max_relative_height * expected  # NaN: False
            if ctx.poses:
                down = self._by_pose(det, down, ctx.poses)
            return down
        return np.ones(len(det), dtype=bool)

    def _by_pose(self, det: Detections, down: np.ndarray, poses: dict[int, BodyPose]) -> np.ndarray:
        """The box's verdict corrected by the body's orientation where the pose model is sure
        of a person (analytics/pose.py): its hips->head axis at least ``pose_lying_angle``
        from the vertical is lying, whatever the box (towards the camera, curled at the
        frame's edge); at most ``pose_upright_angle`` is upright (sitting, crouching, two
        people side by side), whatever the box."""
        assert isinstance(self.cfg, PersonDownRule)
        out = down.copy()
        for i, tid in enumerate(det.tracker_id.tolist()):
            pose = poses.get(tid)
            if pose is None or pose.score < self.cfg.pose_min_score:
                continue
            if pose.angle >= self.cfg.pose_lying_angle:
                out[i] = True
            elif pose.angle <= self.cfg.pose_upright_angle:
                out[i] = False
        return out

    def _standing_heights(
        self, det: Detections, tracked: Detections, ctx: FrameContext
    ) -> np.ndarray:
        """How tall a person standing where each box is would be (NaN: unknown): learned
        from the people this camera has seen; before that, from the upright people in view at
        that row; else from the person's own upright boxes before (walked, then went down)."""
        assert self.heights is not None
        learned = self.heights.expected(det.xyxy[:, 3])
        if learned is not None:
            return np.asarray(learned, dtype=np.float64)
        out = np.full(len(det), np.nan)
        for i, tid in enumerate(det.tracker_id.tolist()):
            # The upright people in view beside it (its own tracked box is no peer).
            others = tracked[tracked.tracker_id != tid]
            sub = Detections.merge([det[i : i + 1], others])
            ref = float(peer_heights(sub, ctx.class_names)[0])
            own = own_upright_height(ctx.history, tid)
            out[i] = ref if not np.isnan(ref) else (own if own is not None else np.nan)
        return out

    def _exclude(self, tracked: Detections, ctx: FrameContext) -> np.ndarray:
        """Which of all tracked objects this rule must not count: the riders of bicycles and
        motorcycles are no pedestrians on the road; a two-wheeler someone is on or at is no
        stopped vehicle (class sanity, analytics/sanity.py)."""
        if isinstance(self.cfg, PedestrianOnRoadRule) and self.cfg.ignore_riders:
            return riders(tracked, ctx.class_names)
        if isinstance(self.cfg, StoppedVehicleRule) and self.cfg.ignore_attended_two_wheelers:
            return attended_two_wheelers(tracked, ctx.class_names)
        return np.zeros(len(tracked), dtype=bool)

    def _max_move(self) -> float | None:
        if isinstance(self.cfg, StoppedVehicleRule | PersonDownRule):
            return self.cfg.max_displacement
        return None

    # -- update -----------------------------------------------------------------

    def update(self, tracked: Detections, ctx: FrameContext) -> list[Event]:
        if self.heights is not None:
            self.heights.add(tracked, ctx.class_names)
        here = self.selected(tracked[~self._exclude(tracked, ctx)], ctx)
        if ctx.confirmed is not None and isinstance(self.cfg, IntrusionRule | PedestrianOnRoadRule):
            # Zone rules fire on confirmed objects only: no ghost at night (analytics/sanity).
            here = here[np.isin(here.tracker_id, ctx.confirmed)]
        here = here[self._qualifies(here, tracked, ctx)]
        events: list[Event] = []
        anchors = here.anchors()
        diagonals = box_diagonal(here.xyxy)
        max_move = self._max_move()
        for i, tid in enumerate(here.tracker_id.tolist()):
            height = float(here.xyxy[i, 3] - here.xyxy[i, 1])
            p = self._presence_for(tid, anchors[i], height, ctx.t, ctx.history)
            p.last_t, p.anchor, p.height = ctx.t, anchors[i], height
            if max_move is not None:
                if p.ref_anchor is None:
                    p.ref_anchor = anchors[i]
                elif np.hypot(*(anchors[i] - p.ref_anchor)) > max_move * diagonals[i]:
                    # It moved: the stationary clock starts again from here.
                    p.ref_anchor, p.first_t, p.banked, p.fired = anchors[i], ctx.t, 0.0, False
            dwell = p.dwell(ctx.t)
            if ctx.armed and not p.fired and dwell >= self.cfg.min_duration_s:
                p.fired = True
                events.append(self._event(here[i : i + 1], p, dwell, ctx))
        self._expire(ctx.t)
        return events

    def _presence_for(
        self, tid: int, anchor: np.ndarray, height: float, t: float, history: TrackHistory
    ) -> Presence:
        own = self.presences.get(tid)
        if own is not None and own.last_t < t:
            return own
        if tid in self.departed:  # re-entry of a track that left
            _, p = self.departed.pop(tid)
            p.banked += p.last_t - p.first_t
            p.first_t = t
            for other in p.track_ids:
                self.departed.pop(other, None)
                self.presences[other] = p
            return p
        # An id switch: a new track close to where exactly one recently lost presence was
        # last seen. With several candidates (a crowd) it is a new presence: chaining
        # different people together would invent dwell time.
        radius = 0.5 * height
        candidates = [
            p
            for p in {id(p): p for p in self.presences.values()}.values()
            if p.last_t < t
            and t - p.last_t <= self.cfg.grace_s
            and float(np.hypot(*(anchor - p.anchor))) <= max(radius, 0.5 * p.height)
        ]
        if candidates and isinstance(self.cfg, LoiteringRule):
            # Loitering is about one person's time: only someone who looks the same (the
            # boxes' colours, analytics/appearance.py) continues the clock.
            look = history.look(tid)
            candidates = [
                p
                for p in candidates
                if (sim := similarity(look, history.look(p.track_ids[-1]))) is not None
                and sim >= history.MIN_SIMILARITY
            ]
        if len(candidates) == 1:
            presence = candidates[0]
            presence.track_ids.append(tid)
        else:
            presence = Presence(t, t, anchor, height, [tid])
        self.presences[tid] = presence
        return presence

    def _expire(self, t: float) -> None:
        for tid in [k for k, p in self.presences.items() if t - p.last_t > self.cfg.grace_s]:
            p = self.presences.pop(tid)
            if self.reentry_s > 0:
                self.departed[tid] = (p.last_t, p)
        for tid in [k for k, (at, _) in self.departed.items() if t - at > self.reentry_s]:
            del self.departed[tid]

    def _event(self, det: Detections, p: Presence, dwell: float, ctx: FrameContext) -> Event:
        threshold = self.cfg.min_duration_s
        ids = ", ".join(str(i) for i in p.track_ids)
        # The state measured, before where: "car (track 3) stationary in zone 'lane' ...";
        # plain dwell rules have none: "person (track 6, 11) in zone 'crossing' ...".
        state = {"stopped_vehicle": "stationary ", "person_down": "lying still "}.get(
            self.cfg.type, ""
        )
        cls = class_name(int(det.class_id[0]), ctx.class_names)
        return make_event(
            self, ctx, det=det, track_ids=p.track_ids, measured=dwell, threshold=threshold,
            unit="s", zone_name=self.zone.name, started_t=ctx.t - dwell,
            explanation=(
                f"{cls} (track {ids}) {state}{self.where()} for {dwell:.1f} s ≥ {threshold:g} s"
            ),
        )  # fmt: skip
