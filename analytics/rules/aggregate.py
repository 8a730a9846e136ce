"""Rules about a zone as a whole: ``crowd``, ``congestion``, and ``camera_fault``."""

from __future__ import annotations

import math

import numpy as np

from analytics.config import CameraFaultRule, CongestionRule, CrowdRule
from analytics.history import T, X, Y
from analytics.rules.base import FrameContext, ObjectRule, box_diagonal, make_event, union_box
from analytics.types import Detections, Event
from analytics.vqd import RECENT_S, QualityBaseline, QualityLimits
from analytics.zones import Zone


class Sustained:
    """A condition that must hold for ``hold_s`` to fire, with hysteresis on release.

    ``state(on, keep)``: ``on`` starts (and sustains) the onset; while onset or
    active, ``keep`` is enough to continue. After firing, the condition is
    released (re-armed) once ``keep`` has been false for ``release_s``.

    Unarmed (outside the rule's schedule) the onset keeps its clock but does not
    fire: the episode is not used up, and the first armed update fires if the
    condition still holds.
    """

    def __init__(self, hold_s: float, release_s: float) -> None:
        self.hold_s = hold_s
        self.release_s = release_s
        self.since: float | None = None
        self.active = False
        self.off_since: float | None = None

    def update(self, t: float, on: bool, keep: bool, armed: bool = True) -> bool:
        """True once, when the condition has held for ``hold_s`` and ``armed``."""
        if self.active:
            if keep:
                self.off_since = None
            elif self.off_since is None:
                self.off_since = t
            elif t - self.off_since >= self.release_s:
                self.active, self.since, self.off_since = False, None, None
            return False
        if self.since is None:
            if not on:
                return False
            self.since = t
        elif not keep:
            self.since = None
            return False
        if armed and t - self.since >= self.hold_s:
            self.active, self.off_since = True, None
            return True
        return False

    def held(self, t: float) -> float:
        """How long the current onset or episode has held at ``t`` (0 when it has not begun)."""
        return 0.0 if self.since is None else t - self.since


def plural(name: str) -> str:
    """The plural of a COCO class name, for explanations ("12 people ≥ 10 ...")."""
    return {"person": "people", "bus": "buses"}.get(name, name + "s")


def detected_count(rule: ObjectRule, ctx: FrameContext, min_score: float) -> int:
    """How many of the frame's detections (before tracking; and of the last tiled pass)
    of the rule's classes, scored at least ``min_score``, are in its zone: the most of
    the two."""
    n = 0
    for det in (ctx.detections, ctx.dense):
        if det is None or not len(det):
            continue
        raw = Detections(det.xyxy, det.confidence, det.class_id, np.zeros(len(det), np.int64))
        mask = rule.filter.mask(raw, ctx.class_names)
        mask &= raw.confidence >= max(min_score, rule.cfg.min_confidence)
        n = max(n, int(mask.sum()))
    return n


class Crowd(ObjectRule):
    cfg: CrowdRule
    zone: Zone

    def __init__(self, cfg: CrowdRule, zone: Zone) -> None:
        super().__init__(cfg, zone)
        release = cfg.release_count
        self.release_count = (
            release if release is not None else int(math.floor(0.8 * cfg.min_count))
        )
        self.state = Sustained(cfg.min_duration_s, cfg.release_s)
        self.episode = 0

    #: Detections below this score are not counted (the tracker starts tracks at 0.45; a
    #: packed crowd's partly hidden people score 0.3-0.45 and never get a track).
    MIN_SCORE = 0.3

    def count(self, tracked: Detections, ctx: FrameContext) -> tuple[Detections, int]:
        """The tracked objects in the zone, and how many objects are there: the tracks, or
        what the detector sees this frame or saw in the last tiled pass if that is more
        (tracks lag behind a packed crowd: people hidden in turn, low scores)."""
        here = self.selected(tracked, ctx)
        return here, max(len(here), detected_count(self, ctx, self.MIN_SCORE))

    def update(self, tracked: Detections, ctx: FrameContext) -> list[Event]:
        here, n = self.count(tracked, ctx)
        on, keep = n >= self.cfg.min_count, n >= self.release_count
        if not self.state.update(ctx.t, on, keep, ctx.armed):
            return []
        self.episode += 1
        held = self.state.held(ctx.t)
        what = plural(self.cfg.classes[0]) if len(self.cfg.classes) == 1 else "objects"
        return [make_event(
            self, ctx, det=union_box(here), track_ids=here.tracker_id.tolist(), measured=n,
            threshold=self.cfg.min_count, unit="objects", zone_name=self.zone.name,
            started_t=self.state.since, object_class=",".join(self.cfg.classes),
            key=f"episode-{self.episode}",
            explanation=(
                f"{n} {what} ≥ {self.cfg.min_count} {self.where()} for {held:.0f} s "
                f"≥ {self.cfg.min_duration_s:g} s"
            ),
        )]  # fmt: skip


class Congestion(ObjectRule):
    cfg: CongestionRule
    zone: Zone

    SPEED_WINDOW_S = 2.0

    def __init__(self, cfg: CongestionRule, zone: Zone) -> None:
        super().__init__(cfg, zone)
        self.state = Sustained(cfg.min_duration_s, cfg.release_s)
        self.episode = 0

    def update(self, tracked: Detections, ctx: FrameContext) -> list[Event]:
        here = self.selected(tracked, ctx)
        speeds = self._speeds(here, ctx)
        median = float(np.median(speeds)) if len(speeds) else math.inf
        slow = median <= self.cfg.max_median_speed
        # The vehicles there: the tracks, or the detections where those are more (a queue's
        # far cars scored 0.3-0.45 never get a track); the speed is the tracks'.
        n = max(len(here), detected_count(self, ctx, Crowd.MIN_SCORE))
        on = n >= self.cfg.min_vehicles and slow
        # Hysteresis, as for crowds: a queue whose far cars the detector misses in a frame
        # or two (80 % of min_vehicles still there, still slow) keeps its clock.
        keep = n >= max(1, math.floor(0.8 * self.cfg.min_vehicles)) and slow
        if not self.state.update(ctx.t, on, keep, ctx.armed):
            return []
        self.episode += 1
        held = self.state.held(ctx.t)
        return [make_event(
            self, ctx, det=union_box(here), track_ids=here.tracker_id.tolist(),
            measured=median, threshold=self.cfg.max_median_speed, unit="box lengths/s",
            zone_name=self.zone.name, started_t=self.state.since,
            object_class=",".join(self.cfg.classes), key=f"episode-{self.episode}",
            explanation=(
                f"{n} vehicles ≥ {self.cfg.min_vehicles} {self.where()} with median "
                f"speed {median:.2f} ≤ {self.cfg.max_median_speed:g} box lengths/s for "
                f"{held:.0f} s ≥ {self.cfg.min_duration_s:g} s"
            ),
        )]  # fmt: skip

    def _speeds(self, here: Detections, ctx: FrameContext) -> np.ndarray:
        out = []
        diagonals = box_diagonal(here.xyxy)
        for i, tid in enumerate(here.tracker_id.tolist()):
            s = ctx.history.samples(tid, since=ctx.t - self.SPEED_WINDOW_S)
            span = s[-1, T] - s[0, T] if len(s) else 0.0
            if span < 0.5:
                continue  # too new to know its speed
            dist = float(np.hypot(*(s[-1, [X, Y]] - s[0, [X, Y]])))
            out.append(dist / span / max(float(diagonals[i]), 1.0))
        return np.asarray(out)


#: The kind an alert names when several fire together, most telling first.
FAULT_PRIORITY = (
    "black", "overexposed", "occlusion", "frozen", "colour_cast", "scene_change", "blur", "noise",
)  # fmt: skip

FAULT_WORDS = {
    "black": "black", "overexposed": "over-exposed", "frozen": "frozen", "blur": "blurred",
    "occlusion": "covered", "colour_cast": "colour-cast", "scene_change": "turned away from "
    "its view", "noise": "noisy",
}  # fmt: skip


class CameraFault:
    """A faulty picture for ``min_duration_s``: black or frozen from the motion gate's grey
    image alone; with the gate's quality measures, every kind of analytics/vqd.py."""

    RELEASE_S = 3.0

    def __init__(self, cfg: CameraFaultRule) -> None:
        self.cfg = cfg
        self.zone = None
        self.black = Sustained(cfg.min_duration_s, self.RELEASE_S)
        self.frozen = Sustained(cfg.min_duration_s, self.RELEASE_S)
        self.episode = 0
        self.baseline = QualityBaseline(
            QualityLimits(
                black_level=cfg.black_level, black_contrast=cfg.black_contrast,
                overexposed_share=cfg.overexposed_share, frozen_level=cfg.frozen_level,
                blur_ratio=cfg.blur_ratio, occlusion_share=cfg.occlusion_share,
                cast_level=cfg.cast_level, scene_similarity=cfg.scene_similarity,
                noise_ratio=cfg.noise_ratio,
            ),
            tuple(cfg.checks),
        )  # fmt: skip
        # A scene change is judged on a few seconds' average picture (analytics/vqd.py):
        # that averaging is part of its hold.
        hold = {"scene_change": max(1.0, cfg.min_duration_s - 2 * RECENT_S)}
        self.states = {k: Sustained(hold.get(k, cfg.min_duration_s), self.RELEASE_S)
                       for k in cfg.checks}  # fmt: skip
        self.active: set[str] = set()  # the faults holding now (camera health)
        self._judged: object | None = None  # the last quality measures judged
        self._other_t: float | None = None  # when a fault other than scene_change was last seen

    def _diagnose(self, ctx: FrameContext) -> list[Event]:
        assert ctx.quality is not None
        found = self.baseline.assess(ctx.quality, ctx.t)
        if any(
            st.active or st.held(ctx.t) >= 2.0
            for k, st in self.states.items()
            if k in ("black", "overexposed", "occlusion", "colour_cast", "frozen")
        ):  # a picture fault that holds (not one frame of a duplicated frame)
            self._other_t = ctx.t
        if self._other_t is not None and ctx.t - self._other_t < 2 * RECENT_S + 1:
            # The view is judged on a few seconds' average picture: a covered, dark, tinted
            # or frozen picture, and the seconds after it, are not a turned camera.
            found.pop("scene_change", None)
        ongoing = {k for k, st in self.states.items() if st.active}  # an alert already out
        fired = []
        for kind, state in self.states.items():
            on = kind in found
            if state.update(ctx.t, on, on, ctx.armed):
                fired.append(kind)
            if state.active or state.held(ctx.t) >= state.hold_s:
                self.active.add(kind)
            else:
                self.active.discard(kind)
        if not fired or ongoing:
            # One alert per situation: a covered lens is also blurred, a black one also
            # uniform; a kind that joins a fault already reported is in the camera's status.
            return []
        kind = min(fired, key=FAULT_PRIORITY.index)
        self.episode += 1
        value, limit = found[kind]
        state = self.states[kind]
        held = state.held(ctx.t)
        if kind == "scene_change":
            # Judged on the average picture of the last 2 × RECENT_S: those seconds are part
            # of how long the view has been turned (its hold is shorter by as much), so the
            # explanation states a duration that meets the threshold ("for 2 s ≥ 8 s" did not).
            held += 2 * RECENT_S
        extra: dict[str, object] = {"fault": kind}
        if len(fired) > 1:
            extra["faults"] = sorted(fired, key=FAULT_PRIORITY.index)
        events = [make_event(
            self, ctx, det=None, track_ids=[], measured=held, threshold=self.cfg.min_duration_s,
            unit="s", zone_name="frame", started_t=state.since, object_class="",
            key=f"{kind}-{self.episode}",
            explanation=(
                f"picture {FAULT_WORDS[kind]} for {held:.0f} s ≥ {self.cfg.min_duration_s:g} s "
                f"({kind} measure {value:.3g}, limit {limit:.3g})"
            ),
            extra=extra,
        )]  # fmt: skip
        return events

    @property
    def type(self) -> str:
        return self.cfg.type

    def update(self, tracked: Detections, ctx: FrameContext) -> list[Event]:
        if ctx.quality is not None:
            if ctx.quality is self._judged:
                return []  # the gate measures a few times a second: judge each measure once
            self._judged = ctx.quality
            return self._diagnose(ctx)
        if ctx.luma is None:
            return []
        is_black = ctx.luma <= self.cfg.black_level
        # A black picture is also unchanging: report it as black, not frozen.
        is_frozen = ctx.change is not None and ctx.change <= self.cfg.frozen_level and not is_black
        events = []
        for kind, state, on, value, limit in (
            ("black", self.black, is_black, ctx.luma, self.cfg.black_level),
            ("frozen", self.frozen, is_frozen, ctx.change or 0.0, self.cfg.frozen_level),
        ):
            if not state.update(ctx.t, on, on, ctx.armed):
                continue
            self.episode += 1
            held = state.held(ctx.t)
            # Grey levels read well with one decimal; frame changes are hundredths or less.
            if kind == "black":
                measure = f"mean grey level {value:.1f}"
            else:
                measure = f"mean frame change {value:.3g}"
            events.append(make_event(
                self, ctx, det=None, track_ids=[], measured=held, threshold=self.cfg.min_duration_s,
                unit="s", zone_name="frame", started_t=state.since, object_class="",
                key=f"{kind}-{self.episode}",
                explanation=(
                    f"picture {kind} for {held:.0f} s ≥ {self.cfg.min_duration_s:g} s "
                    f"({measure} ≤ {limit:g})"
                ),
                extra={"fault": kind},
            ))  # fmt: skip
        return events
