"""Rules about how objects move: ``wandering``, ``line_crossing``, ``wrong_way``.

Outside a rule's schedule (``ctx.armed`` False) wandering and wrong way judge
nothing (they read the shared track history, which keeps running, so a person
still pacing when the window opens fires then); line crossing keeps counting
but raises nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analytics.config import LineCrossingRule, WanderingRule, WrongWayRule
from analytics.history import H, T, X, Y
from analytics.rules.base import FrameContext, ObjectRule, box_diagonal, make_event
from analytics.sanity import TWO_WHEELERS, people_near
from analytics.types import Detections, Event, class_name
from analytics.zones import Zone


class Wandering(ObjectRule):
    """Pacing back and forth: path length / net displacement over ``window_s``.

    Positions are resampled at 1 s and steps shorter than 15 % of the body
    height are ignored, so a person standing still (box jitter) never walks.
    """

    cfg: WanderingRule
    zone: Zone

    STEP_S = 1.0
    DEADBAND = 0.15

    def __init__(self, cfg: WanderingRule, zone: Zone) -> None:
        super().__init__(cfg, zone)
        self.fired: dict[int, float] = {}

    def update(self, tracked: Detections, ctx: FrameContext) -> list[Event]:
        here = self.selected(tracked, ctx)
        events: list[Event] = []
        min_span = min(self.cfg.window_s, 10.0)
        for i, tid in enumerate(here.tracker_id.tolist()):
            obj = ctx.history.root(tid)  # the object, across id switches
            if obj in self.fired or not ctx.armed:
                continue
            if here.xyxy[i, 1] <= 3.0:
                # Cut by the top of the picture: its body height (the unit of the path) is
                # not known, and its box jitters as more or less of it shows.
                continue
            samples = ctx.history.samples(tid, since=ctx.t - self.cfg.window_s)
            if len(samples) < 3 or samples[-1, T] - samples[0, T] < min_span:
                continue
            ratio, path_heights = path_ratio(samples, self.STEP_S, self.DEADBAND)
            if path_heights < self.cfg.min_path_heights or ratio < self.cfg.min_path_ratio:
                continue
            turned = turn_times(samples, self.STEP_S, self.DEADBAND)
            turns = len(turned)
            if turns < self.cfg.min_turns:
                continue
            if any(ctx.history.swapped_at(tid, at, d) for at, d in turned):
                # Someone else was right there when the path turned back, and walked on the
                # way this one had been going: a tracker's id swap, not one person pacing.
                continue
            alike = ctx.history.same_look(tid, float(samples[0, T]))
            if alike is not None and alike < ctx.history.MIN_SIMILARITY:
                # The box looked like someone else at the end of the path than at its start:
                # in a crowd the tracker hands one id from person to person. Not one walker.
                continue
            self.fired[obj] = ctx.t
            cls = class_name(int(here.class_id[i]), ctx.class_names)
            span = samples[-1, T] - samples[0, T]
            height = float(np.median(samples[:, H])) or 1.0
            ids = ctx.history.lineage(tid)
            tracks = f"track {tid}" if len(ids) == 1 else "tracks " + ", ".join(map(str, ids))
            events.append(make_event(
                self, ctx, det=here[i : i + 1], track_ids=ids,
                measured=ratio, key=f"object-{obj}",
                threshold=self.cfg.min_path_ratio, unit="path/displacement",
                zone_name=self.zone.name, started_t=samples[0, T],
                explanation=(
                    f"{cls} ({tracks}) paced back and forth {self.where()}: walked "
                    f"{path_heights:.1f} body heights ({path_heights * height:.0f} px) in "
                    f"{span:.0f} s with {turns} turn(s), path/displacement {ratio:.1f} ≥ "
                    f"{self.cfg.min_path_ratio:g}"
                ),
                extra={
                    "path_heights": round(path_heights, 2),
                    "path_px": round(path_heights * height, 1),
                    "turns": turns, "span_s": round(float(span), 1),
                    "since_pts": round(ctx.pts - (ctx.t - float(samples[0, T])), 2),
                    "track_ids": ids,
                },
            ))  # fmt: skip
        horizon = ctx.t - self.cfg.window_s
        self.fired = {k: v for k, v in self.fired.items() if v >= horizon or k in ctx.history}
        return events


def path_ratio(samples: np.ndarray, step_s: float, deadband: float) -> tuple[float, float]:
    """(path length / net displacement, path length in median body heights)."""
    times = np.arange(samples[0, T], samples[-1, T] + 1e-9, step_s)
    xs = np.interp(times, samples[:, T], samples[:, X])
    ys = np.interp(times, samples[:, T], samples[:, Y])
    height = float(np.median(samples[:, H])) or 1.0
    steps = np.hypot(np.diff(xs), np.diff(ys))
    path = float(steps[steps >= deadband * height].sum())
    net = float(np.hypot(xs[-1] - xs[0], ys[-1] - ys[0]))
    return path / max(net, 0.5 * height), path / height


def count_turns(samples: np.ndarray, step_s: float, deadband: float) -> int:
    """How many times the path turns back (see :func:`turn_times`)."""
    return len(turn_times(samples, step_s, deadband))


def turn_times(
    samples: np.ndarray, step_s: float, deadband: float
) -> list[tuple[float, np.ndarray]]:
    """When the path turns back: the heading of a step (resampled at ``step_s``, steps
    shorter than ``deadband`` body heights ignored) more than 120° off the heading after the
    last turn (pacing to and fro: one per reversal; walking a circle: three per round). Each
    turn as (the start of the step that turned, the unit heading it turned back from)."""
    times = np.arange(samples[0, T], samples[-1, T] + 1e-9, step_s)
    xs = np.interp(times, samples[:, T], samples[:, X])
    ys = np.interp(times, samples[:, T], samples[:, Y])
    height = float(np.median(samples[:, H])) or 1.0
    steps = np.stack([np.diff(xs), np.diff(ys)], axis=1)
    length = np.hypot(steps[:, 0], steps[:, 1])
    moving = np.flatnonzero(length >= deadband * height)
    out: list[tuple[float, np.ndarray]] = []
    ref = None
    for k in moving.tolist():
        d = steps[k] / length[k]
        if ref is None:
            ref = d
        elif float(np.dot(d, ref)) < -0.5:
            out.append((float(times[k]), ref))
            ref = d
    return out


@dataclass
class LineSide:
    """A track's side of a line, and a change of side waiting to be confirmed."""

    side: int  # -1: side A, +1: side B; the side it was last counted on (or first seen)
    anchor: np.ndarray  # its last anchor on that side
    pending: int = 0  # consecutive frames seen on the other side since
    through: bool = False  # the move to the other side went through the segment


class LineCrossing(ObjectRule):
    """Counts crossings of a line segment per direction; fires on the configured ones.

    Box jitter must not count as people crossing back and forth: an anchor within
    ``DEADBAND`` box heights of the line is on neither side, and a crossing counts
    only once the object has been seen on the new side for ``min_crossing_frames``
    consecutive frames (as supervision's ``LineZone(minimum_crossing_threshold=...)``).
    The alert key is the track and direction, so the alert cooldown holds back a
    track crossing the same way again; the counts still count every crossing.
    """

    cfg: LineCrossingRule

    DEADBAND = 0.05  # of the box height: about 2 px for a 40 px person

    def __init__(self, cfg: LineCrossingRule, line: np.ndarray) -> None:
        super().__init__(cfg, None)
        self.line = line  # (2, 2) analysed-frame pixels
        self.sides: dict[int, LineSide] = {}
        self.counts = {"a_to_b": 0, "b_to_a": 0}

    def update(self, tracked: Detections, ctx: FrameContext) -> list[Event]:
        here = self.selected(tracked, ctx)
        anchors = here.anchors()
        heights = here.xyxy[:, 3] - here.xyxy[:, 1]
        events: list[Event] = []
        seen = set()
        for i, tid in enumerate(here.tracker_id.tolist()):
            obj = ctx.history.root(tid)  # the object, across id switches
            seen.add(obj)
            direction = self._step(obj, anchors[i], float(heights[i]))
            if direction is None:
                continue
            self.counts[direction] += 1
            if ctx.armed and self.cfg.direction in ("both", direction):
                events.append(self._event(here[i : i + 1], tid, obj, direction, ctx))
        for obj in [k for k in self.sides if k not in seen and k not in ctx.history]:
            del self.sides[obj]
        return events

    def _step(self, tid: int, anchor: np.ndarray, height: float) -> str | None:
        """Follow an object's side of the line; the direction of a confirmed crossing, or None."""
        now = side_of(self.line, anchor, self.DEADBAND * height)
        state = self.sides.get(tid)
        if now == 0:
            return None  # on the line: evidence for neither side
        if state is None:
            self.sides[tid] = LineSide(now, anchor)
            return None
        if now == state.side:
            state.anchor, state.pending = anchor, 0  # still (or back) on its side
            return None
        if state.pending == 0:
            state.through = through_segment(self.line, state.anchor, anchor)
        state.pending += 1
        if state.pending < self.cfg.min_crossing_frames:
            return None
        # Settled on the new side. A move past the end of the segment changes the side
        # (of the infinite line) without crossing.
        self.sides[tid] = LineSide(now, anchor)
        if not state.through:
            return None
        return "a_to_b" if state.side < 0 else "b_to_a"

    def _event(
        self, det: Detections, tid: int, obj: int, direction: str, ctx: FrameContext
    ) -> Event:
        cls = class_name(int(det.class_id[0]), ctx.class_names)
        arrow = "A→B" if direction == "a_to_b" else "B→A"
        return make_event(
            self, ctx, det=det, track_ids=ctx.history.lineage(tid),
            measured=self.counts[direction], threshold=1,
            unit="crossings", zone_name=self.cfg.name, key=f"{obj}:{direction}",
            explanation=(
                f"{cls} (track {tid}) crossed line '{self.cfg.name}' {arrow}; counts "
                f"A→B {self.counts['a_to_b']}, B→A {self.counts['b_to_a']}"
            ),
            extra={"direction": direction, "counts": dict(self.counts)},
        )  # fmt: skip


def side(line: np.ndarray, p: np.ndarray) -> float:
    """< 0 on side A (left walking from the first point to the second, y down), > 0 on B."""
    d = line[1] - line[0]
    r = p - line[0]
    return float(d[0] * r[1] - d[1] * r[0])


def side_of(line: np.ndarray, p: np.ndarray, band: float) -> int:
    """-1 on side A, +1 on side B, 0 within ``band`` pixels of the (infinite) line."""
    distance = side(line, p) / max(float(np.hypot(*(line[1] - line[0]))), 1e-9)
    if abs(distance) <= band:
        return 0
    return -1 if distance < 0 else 1


def through_segment(line: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> bool:
    """Whether the move p0 → p1, from one side of the line to the other, passes through the
    segment itself rather than past one of its ends."""
    m = p1 - p0
    q0, q1 = line[0] - p0, line[1] - p0
    c0 = m[0] * q0[1] - m[1] * q0[0]
    c1 = m[0] * q1[1] - m[1] * q1[0]
    return (c0 < 0) != (c1 < 0) or c0 == 0 or c1 == 0


class WrongWay(ObjectRule):
    """A vehicle whose recent movement points against the zone's direction of travel."""

    cfg: WrongWayRule
    zone: Zone

    def __init__(self, cfg: WrongWayRule, zone: Zone) -> None:
        super().__init__(cfg, zone)
        d = np.asarray(cfg.direction, dtype=np.float64)
        self.direction = d / np.hypot(*d)
        self.fired: dict[int, float] = {}
        self.window_s = max(3.0 * cfg.min_duration_s, 3.0)

    def update(self, tracked: Detections, ctx: FrameContext) -> list[Event]:
        here = self.selected(tracked, ctx)
        events: list[Event] = []
        diagonals = box_diagonal(here.xyxy)
        for i, tid in enumerate(here.tracker_id.tolist()):
            obj = ctx.history.root(tid)  # the object, across id switches
            if obj in self.fired or not ctx.armed:
                continue
            samples = ctx.history.samples(tid, since=ctx.t - self.window_s)
            if len(samples) < 2:
                continue
            span = samples[-1, T] - samples[0, T]
            move = samples[-1, [X, Y]] - samples[0, [X, Y]]
            dist = float(np.hypot(*move))
            if span < self.cfg.min_duration_s or dist < self.cfg.min_distance_boxes * diagonals[i]:
                continue
            cos = float(np.clip(np.dot(move / dist, self.direction), -1.0, 1.0))
            angle = math.degrees(math.acos(cos))
            if angle < self.cfg.min_angle_deg:
                continue
            if self._pedestrian_like(here, i, samples, tracked, ctx):
                continue
            self.fired[obj] = ctx.t
            cls = class_name(int(here.class_id[i]), ctx.class_names)
            events.append(make_event(
                self, ctx, det=here[i : i + 1], track_ids=ctx.history.lineage(tid),
                measured=angle, key=f"object-{obj}",
                threshold=self.cfg.min_angle_deg, unit="°", zone_name=self.zone.name,
                started_t=samples[0, T],
                explanation=(
                    f"{cls} (track {tid}) moving the wrong way {self.where()}: {angle:.0f}° "
                    f"≥ {self.cfg.min_angle_deg:g}° off the direction of travel, "
                    f"{dist / diagonals[i]:.1f} box lengths in {span:.1f} s"
                ),
            ))  # fmt: skip
        self.fired = {k: v for k, v in self.fired.items() if k in ctx.history}
        return events

    def _pedestrian_like(
        self,
        here: Detections,
        i: int,
        samples: np.ndarray,
        tracked: Detections,
        ctx: FrameContext,
    ) -> bool:
        """A two-wheeler moving at walking pace with people beside it: a pushchair, a
        wheelchair, a cart or a pushed bicycle that the detector calls a bicycle or a
        motorcycle, walking among pedestrians (class sanity; ``walking_pace`` 0: off)."""
        if self.cfg.walking_pace <= 0:
            return False
        if class_name(int(here.class_id[i]), ctx.class_names) not in TWO_WHEELERS:
            return False
        span = samples[-1, T] - samples[0, T]
        height = float(np.median(samples[:, H])) or 1.0
        speed = float(np.hypot(*(samples[-1, [X, Y]] - samples[0, [X, Y]]))) / span / height
        if speed > self.cfg.walking_pace:
            return False
        return bool(people_near(tracked, here.xyxy[i], ctx.class_names).any())
