"""Rules about how objects move: ``wandering``, ``line_crossing``, ``wrong_way``."""

from __future__ import annotations

import math

import numpy as np

from analytics.config import LineCrossingRule, WanderingRule, WrongWayRule
from analytics.history import H, T, X, Y
from analytics.rules.base import FrameContext, ObjectRule, box_diagonal, make_event
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
            if tid in self.fired:
                continue
            samples = ctx.history.samples(tid, since=ctx.t - self.cfg.window_s)
            if len(samples) < 3 or samples[-1, T] - samples[0, T] < min_span:
                continue
            ratio, path_heights = path_ratio(samples, self.STEP_S, self.DEADBAND)
            if path_heights >= self.cfg.min_path_heights and ratio >= self.cfg.min_path_ratio:
                self.fired[tid] = ctx.t
                cls = class_name(int(here.class_id[i]), ctx.class_names)
                span = samples[-1, T] - samples[0, T]
                events.append(make_event(
                    self, ctx, det=here[i : i + 1], track_ids=[tid], measured=ratio,
                    threshold=self.cfg.min_path_ratio, unit="path/displacement",
                    zone_name=self.zone.name, started_t=samples[0, T],
                    explanation=(
                        f"{cls} (track {tid}) walked {path_heights:.1f} body heights in "
                        f"{span:.0f} s, path/displacement {ratio:.1f} ≥ {self.cfg.min_path_ratio:g}"
                    ),
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


class LineCrossing(ObjectRule):
    """Counts crossings of a line segment per direction; fires on the configured ones."""

    cfg: LineCrossingRule

    def __init__(self, cfg: LineCrossingRule, line: np.ndarray) -> None:
        super().__init__(cfg, None)
        self.line = line  # (2, 2) analysed-frame pixels
        self.last: dict[int, np.ndarray] = {}
        self.counts = {"a_to_b": 0, "b_to_a": 0}

    def update(self, tracked: Detections, ctx: FrameContext) -> list[Event]:
        here = self.selected(tracked, ctx)
        anchors = here.anchors()
        events: list[Event] = []
        seen = set()
        for i, tid in enumerate(here.tracker_id.tolist()):
            seen.add(tid)
            prev = self.last.get(tid)
            self.last[tid] = anchors[i]
            if prev is None:
                continue
            direction = crossing(self.line, prev, anchors[i])
            if direction is None:
                continue
            self.counts[direction] += 1
            if self.cfg.direction not in ("both", direction):
                continue
            cls = class_name(int(here.class_id[i]), ctx.class_names)
            arrow = "A→B" if direction == "a_to_b" else "B→A"
            events.append(make_event(
                self, ctx, det=here[i : i + 1], track_ids=[tid],
                measured=self.counts[direction], threshold=1, unit="crossings",
                zone_name=self.cfg.name, key=f"{tid}:{direction}:{self.counts[direction]}",
                explanation=(
                    f"{cls} (track {tid}) crossed line '{self.cfg.name}' {arrow}; counts "
                    f"A→B {self.counts['a_to_b']}, B→A {self.counts['b_to_a']}"
                ),
                extra={"direction": direction, "counts": dict(self.counts)},
            ))  # fmt: skip
        for tid in [k for k in self.last if k not in seen and k not in ctx.history]:
            del self.last[tid]
        return events


def side(line: np.ndarray, p: np.ndarray) -> float:
    """< 0 on side A (left walking from the first point to the second, y down), > 0 on B."""
    d = line[1] - line[0]
    r = p - line[0]
    return float(d[0] * r[1] - d[1] * r[0])


def crossing(line: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> str | None:
    """The direction in which the move p0 → p1 crosses the segment, or None."""
    s0, s1 = side(line, p0), side(line, p1)
    if s0 == 0 or s1 == 0 or (s0 < 0) == (s1 < 0):
        return None
    # The move crosses the infinite line; check it does so within the segment.
    m = p1 - p0
    q0, q1 = line[0] - p0, line[1] - p0
    c0 = m[0] * q0[1] - m[1] * q0[0]
    c1 = m[0] * q1[1] - m[1] * q1[0]
    if (c0 < 0) == (c1 < 0) and c0 != 0 and c1 != 0:
        return None
    return "a_to_b" if s0 < 0 else "b_to_a"


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
            if tid in self.fired:
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
            self.fired[tid] = ctx.t
            cls = class_name(int(here.class_id[i]), ctx.class_names)
            events.append(make_event(
                self, ctx, det=here[i : i + 1], track_ids=[tid], measured=angle,
                threshold=self.cfg.min_angle_deg, unit="°", zone_name=self.zone.name,
                started_t=samples[0, T],
                explanation=(
                    f"{cls} (track {tid}) moving at {angle:.0f}° ≥ {self.cfg.min_angle_deg:g}° "
                    f"to the direction of travel in zone '{self.zone.name}' over {span:.1f} s "
                    f"({dist / diagonals[i]:.1f} box lengths)"
                ),
            ))  # fmt: skip
        self.fired = {k: v for k, v in self.fired.items() if k in ctx.history}
        return events
