"""Per-camera analysis: motion gate, tracker, track history, zones and rules."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from zoneinfo import ZoneInfo

import numpy as np

from analytics.appearance import signatures
from analytics.config import (
    SMALL_OBJECT_RULES,
    CrowdRule,
    DetectConfig,
    LineCrossingRule,
    MotionConfig,
    RuleConfig,
    ZoneConfig,
)
from analytics.detectors.base import Detector
from analytics.history import TrackHistory
from analytics.motion import GateResult, MotionGate
from analytics.pose import BodyPose, PoseCheck, PoseModel
from analytics.regions import (
    Rect,
    auto_tiles,
    detect_crops,
    explained,
    merge,
    plan_crops,
    scan_grid,
)
from analytics.rules import FrameContext, Rule, build_rule
from analytics.sanity import Confirmation, TrackFilter, oversized_persons, own_upright_height
from analytics.tracking import CountTracker, Tracker
from analytics.types import Detections, Event
from analytics.vqd import QualityBaseline
from analytics.zones import Zone
from core.schedule import in_schedule

__all__ = ["CameraAnalytics", "CameraRulesConfig", "in_schedule"]

#: Objects shorter than this (analysed pixels) are what native-resolution crops are for: the
#: whole-frame pass sees them badly or not at all (a far car, a packed crowd, a person lying).
SMALL_PX = 32.0
#: How often crops around small tracked objects run again; in between, their last boxes are
#: held (a stopped car, a queue, a person lying still do not move; moving ones make motion).
TRACK_REFRESH_S = 1.0
#: How long a small object not seen any more still gets its crop (the tracker's lost time).
TRACK_MEMORY_S = 4.0


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
        detect_objects: bool = True,
        pose: PoseModel | None = None,
        quality_baseline: QualityBaseline | None = None,
    ) -> None:
        """``detect_objects=False``: run the detector only for rules that need objects (a
        patrol visit of a camera with video-quality rules only detects nothing). ``pose``:
        the body-orientation model person_down confirms and finds lying people with
        (analytics/pose.py); None: by the box alone. Used only with a person_down rule.
        ``quality_baseline``: the camera's learned normal picture from an earlier look (the
        previous patrol visit), so that a view turned between two visits is found."""
        self.cfg = cfg
        self.carried_baseline = quality_baseline
        self.detect_objects = detect_objects
        self.class_names = class_names
        self.tracker = Tracker(cfg.detect_fps, lost_s=max(2.0, 2 * cfg.motion.keepalive_s))
        self.history = TrackHistory(self._horizon())
        self.gate = MotionGate(cfg.motion)
        self.filter = TrackFilter(cfg.detect.min_frames, cfg.detect.min_median_score)
        self.confirm = Confirmation(
            cfg.detect.confirm_frames, cfg.detect.confirm_score, cfg.detect_fps
        )
        self.zone_boxes = np.zeros((0, 4))  # watched zones' bounding boxes, analysed pixels
        self.crops_run = 0  # detector runs on crops (region detection), for the bench
        self.rules: list[Rule] = []
        self.tz = ZoneInfo(timezone)
        self.use_schedules = use_schedules
        self.last_tracked = Detections.empty()
        self.last_detections = Detections.empty()
        self._sizes: tuple[tuple[int, int], tuple[int, int]] | None = None
        self._t = 0.0  # the frame being analysed (set by check_motion)
        self._small: dict[int, tuple[float, np.ndarray]] = {}  # track id -> (seen, box)
        self._held = Detections.empty()  # the last track crops' detections, held between runs
        self._track_crops_t: float | None = None
        self._track_turn = 0  # which groups of small objects get the next crops
        self._tiles_t: float | None = None
        self._scan_t: float | None = None
        self._scan_i = -1  # windows of the scan done (the first sweep: every detection frame)
        self._scan_n = 1 << 30  # windows in one sweep (known on the first scan)
        self.dense: tuple[float, Detections] | None = None  # the last tiled pass (crowd count)
        self.has_crowd = any(isinstance(r, CrowdRule) and r.enabled for r in cfg.rules)
        wants_pose = any(r.enabled and r.type == "person_down" for r in cfg.rules)
        self.pose = PoseCheck(pose) if pose is not None and wants_pose else None
        self.gate.want_blobs = self.regions_on
        self.count = self._count_tracker()

    def _count_tracker(self) -> CountTracker | None:
        """The counting lines' own tracker (analytics/tracking.py), for a camera with an
        enabled line_crossing rule and ``detect.count_weak`` on; None otherwise."""
        lines = [r for r in self.cfg.rules if isinstance(r, LineCrossingRule) and r.enabled]
        if not lines or not self.cfg.detect.count_weak:
            return None
        wanted = {c for r in lines for c in r.classes}
        ids = [i for i, n in enumerate(self.class_names) if n in wanted]
        return CountTracker(
            self.cfg.detect_fps, lost_s=max(2.0, 2 * self.cfg.motion.keepalive_s),
            class_ids=ids, min_frames=self.cfg.detect.min_frames,
        )  # fmt: skip

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
        if self.carried_baseline is not None:
            for rule in self.rules:
                if isinstance(getattr(rule, "baseline", None), QualityBaseline):
                    rule.baseline = self.carried_baseline  # type: ignore[attr-defined]
        # Watch the zones that matter; the whole frame if a rule looks at all of it.
        needs_detection = [r for r in active if r.type != "camera_fault"]
        self.gate.detector_needed = self.detect_objects or bool(needs_detection)
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
        self.gate.want_blobs = self.regions_on

    @property
    def regions_on(self) -> bool:
        """Whether region detection runs: ``detect.regions`` true, or ``auto`` (the default)
        with a rule about small or packed objects and a native frame larger than the analysed
        one (before the first frame, when the sizes are not known yet: the rules decide)."""
        mode = self.cfg.detect.regions
        if mode != "auto":
            return bool(mode)
        if not any(r.enabled and r.type in SMALL_OBJECT_RULES for r in self.cfg.rules):
            return False
        if self._sizes is None:
            return True
        source, frame = self._sizes
        return source[0] >= 1.2 * frame[0]

    @property
    def wants_regions(self) -> bool:
        """Whether detection frames also need :meth:`detect_regions` (analytics/regions.py)."""
        return self.regions_on or self.cfg.detect.tiles is not None

    def _tiles(
        self, source_size: tuple[int, int], input_size: tuple[int, int]
    ) -> tuple[int, int] | None:
        d = self.cfg.detect
        if d.tiles is not None:
            return d.tiles
        if not (self.has_crowd and self.regions_on and d.crowd_tiles_s > 0):
            return None
        if self._tiles_t is not None and self._t - self._tiles_t < d.crowd_tiles_s - 1e-6:
            return None
        self._tiles_t = self._t
        return auto_tiles(source_size, input_size)

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
        around small tracked objects, around motion the whole-frame pass does not explain,
        over small watched zones, on one tile of the slow scan and on tiles. ``native``
        gives the full-resolution BGR frame (only called when a crop is needed)."""
        d = self.cfg.detect
        if self._sizes != (source_size, frame_size):
            self._build(source_size, frame_size)
        on = self.regions_on
        none = np.zeros((0, 4))
        blobs = gate.blobs if gate is not None and gate.blobs is not None else none
        if on and len(blobs):
            blobs = blobs[~explained(blobs, whole.xyxy, SMALL_PX)]
        tracks = none
        refresh = self._track_crops_t is None or self._t - self._track_crops_t >= TRACK_REFRESH_S
        if on and self._small and refresh:
            tracks = np.array([box for _, box in self._small.values()], dtype=np.float64)
        tiles = self._tiles(source_size, detector.input_size)
        crops = plan_crops(
            source_size=source_size, frame_size=frame_size, input_size=detector.input_size,
            motion_boxes=blobs if on else none, zone_boxes=self.zone_boxes if on else none,
            max_regions=d.max_regions, tiles=tiles, track_boxes=tracks,
            track_offset=self._track_turn,
        )  # fmt: skip
        if on and tiles is None and d.scan_s > 0 and source_size[0] >= 1.2 * frame_size[0]:
            # The first sweep on every detection frame, then one window every scan_s.
            due = self._t - (self._scan_t or 0.0) >= d.scan_s - 1e-6
            if self._scan_i + 1 < self._scan_n or due:
                area = self._watched_rect(source_size, frame_size)
                grid = scan_grid(source_size, detector.input_size, area)
                self._scan_n = len(grid)
                crops.append(grid[(self._scan_i + 1) % len(grid)])
                self._scan_i += 1
                self._scan_t = self._t
        self.crops_run += len(crops)
        if any(c.kind == "track" for c in crops):
            self._track_crops_t = self._t
            self._track_turn += sum(c.kind == "track" for c in crops)
        if crops:
            found, cut = detect_crops(detector, native(), crops, frame_size)
        else:
            found, cut = Detections.empty(), np.zeros(0, dtype=bool)
        if on:
            # What the 2x zoomed crops (track, scan) found of small objects is held until one
            # of them looks there again, where nothing moves (a stopped car, a queue, a
            # person lying still): the frames in between see them where they were last seen.
            # Under motion nothing is held (a walker's old box would be a ghost): motion crops
            # and the whole-frame pass see what moves.
            zoomed = np.array([c.kind in ("track", "scan") for c in crops], dtype=bool)
            ran = [c.rect for c, z in zip(crops, zoomed, strict=True) if z]
            scale = source_size[0] / frame_size[0]
            held = _outside(self._held, ran, scale)
            if len(found) and zoomed.any():
                from_zoomed = _inside(found, ran, scale) & ~cut
                held = Detections.merge([held, self._small_ones(found[from_zoomed])])
            all_blobs = gate.blobs if gate is not None and gate.blobs is not None else none
            self._held = held = _still(held, all_blobs)
            if len(held):
                found = Detections.merge([found, held])
                cut = np.concatenate([cut, np.zeros(len(held), dtype=bool)])
        merged = merge(whole, found, nms_iou, cut) if len(found) else whole
        merged.weak = whole.weak  # the counting lines' weak boxes (whole-frame pass only)
        if tiles is not None and self.has_crowd:
            self.dense = (self._t, merged)
        return merged

    def _watched_rect(
        self, source_size: tuple[int, int], frame_size: tuple[int, int]
    ) -> Rect | None:
        """The bounding box (native px) of the zones the rules watch; None: the whole frame
        (a rule without a zone, or a line)."""
        if self.gate.mask is None or self.gate.mask.all() or not len(self.zone_boxes):
            return None
        s = source_size[0] / frame_size[0]
        b = self.zone_boxes
        x1, y1 = max(0.0, b[:, 0].min() * s), max(0.0, b[:, 1].min() * s)
        x2 = min(float(source_size[0]), b[:, 2].max() * s)
        y2 = min(float(source_size[1]), b[:, 3].max() * s)
        return int(x1), int(y1), int(np.ceil(x2)), int(np.ceil(y2))

    def _small_ones(self, det: Detections) -> Detections:
        h = det.xyxy[:, 3] - det.xyxy[:, 1] if len(det) else np.zeros(0)
        return det[h < SMALL_PX]

    def _remember_small(self, tracked: Detections, t: float) -> None:
        """The small objects the tracker follows (all of its tracks, confirmed or not), for
        the crops of the next frames; forgotten after ``TRACK_MEMORY_S`` unseen."""
        h = tracked.xyxy[:, 3] - tracked.xyxy[:, 1]
        for i in np.flatnonzero(h < SMALL_PX).tolist():
            self._small[int(tracked.tracker_id[i])] = (t, tracked.xyxy[i].astype(np.float64))
        for tid in [k for k, (seen, _) in self._small.items() if t - seen > TRACK_MEMORY_S]:
            del self._small[tid]

    def check_motion(self, image: np.ndarray, t: float, source_size: tuple[int, int]) -> GateResult:
        """Run the motion gate on a frame (call before deciding to detect)."""
        frame_size = (image.shape[1], image.shape[0])
        if self._sizes != (source_size, frame_size):
            self._build(source_size, frame_size)
        self._t = t
        result = self.gate.check(image, t)
        if not result.detect and self.regions_on and self._scan_i + 1 < self._scan_n:
            # The scan's first sweep runs on every frame, motion or not: what is parked far
            # away when the camera starts is found within seconds, not minutes.
            result.detect = True
            self.gate.gated -= 1
            self.gate.last_detect_t = t
        return result

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
        image: np.ndarray | None = None,
    ) -> tuple[Detections, list[Event]]:
        """Track this frame's detections and return (tracked, events).

        ``detections`` None means detection was skipped (no motion): the last
        detected boxes are used again. ``image`` is the analysed BGR frame: the colour of
        each tracked box, which the track history needs to bridge an id switch (without
        it, no id switch is bridged).
        """
        if self._sizes != (source_size, frame_size):
            self._build(source_size, frame_size)
        if detections is None:
            # Nothing moved: the objects are where they were last detected. Feeding those
            # boxes keeps the tracker's cadence, so tracks stay confirmed and keep their ids.
            detections = self.last_detections
        else:
            self.last_detections = detections
        counted = self.count.update(detections, t) if self.count is not None else None
        tracked = self.tracker.update(detections, t)
        looks = signatures(image, tracked.xyxy) if image is not None else None
        self.history.update(tracked, t, looks)
        if self.regions_on:
            self._remember_small(tracked, t)
        # What the rules see: tracks long and confident enough, no bus-sized "person".
        keep = self.filter.passed(tracked, self.history)
        if self.cfg.detect.oversized_person_ratio > 0:
            ratio = self.cfg.detect.oversized_person_ratio
            keep &= ~oversized_persons(tracked, self.class_names, ratio)
        tracked = self.last_tracked = tracked[keep]
        poses = self._poses(tracked, image, t)
        ctx = FrameContext(
            self.cfg.camera_id, t, pts, wall_ts, self.class_names, self.history,
            luma=gate.luma if gate else None, change=gate.change if gate else None,
            quality=gate.quality if gate else None, detections=detections,
            dense=self._dense(t), confirmed=self.confirm.confirmed(tracked, self.history),
            poses=poses,
        )  # fmt: skip
        when = dt.datetime.fromtimestamp(wall_ts, self.tz) if self.use_schedules else None
        events: list[Event] = []
        for rule in self.rules:
            # Dropping the events of a closed rule afterwards would not do: the rule would
            # already have used up its firing on them (a presence fires once).
            armed = when is None or in_schedule(rule.cfg.schedule, when)
            count = self.count
            if count is not None and counted is not None and isinstance(rule.cfg, LineCrossingRule):
                seen = replace(ctx, armed=armed, history=count.history, confirmed=None)
                events.extend(rule.update(counted, seen))
                continue
            events.extend(rule.update(tracked, replace(ctx, armed=armed)))
        return tracked, events

    def _poses(
        self, tracked: Detections, image: np.ndarray | None, t: float
    ) -> dict[int, BodyPose] | None:
        """The body poses of the people person_down should look at (analytics/pose.py);
        None without a pose model (or a frame to crop from)."""
        if self.pose is None or image is None:
            return None
        people = tracked[np.isin(tracked.class_id, self._person_ids())]
        own = [own_upright_height(self.history, tid) for tid in people.tracker_id.tolist()]
        return self.pose.update(image, people, own, t)

    def _person_ids(self) -> list[int]:
        return [i for i, n in enumerate(self.class_names) if n == "person"]

    def _dense(self, t: float) -> Detections | None:
        """The last tiled pass's detections while fresh (the crowd rule counts them)."""
        if self.dense is None:
            return None
        at, det = self.dense
        hold = 2.5 * max(self.cfg.detect.crowd_tiles_s, 1.0 / max(self.cfg.detect_fps, 0.1))
        return det if t - at <= hold else None

    def quality_baseline(self) -> QualityBaseline | None:
        """The learned normal picture of the camera (its video-quality rule's), to hand
        to the next look at it (None: no such rule, or no frame analysed yet)."""
        for rule in self.rules:
            baseline = getattr(rule, "baseline", None)
            if isinstance(baseline, QualityBaseline) and baseline.reference is not None:
                return baseline
        return None

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


def _inside(det: Detections, rects: list[Rect], scale: float) -> np.ndarray:
    """Which boxes (analysed px) have their centre in one of ``rects`` (native px)."""
    inside = np.zeros(len(det), dtype=bool)
    if not len(det):
        return inside
    cx = (det.xyxy[:, 0] + det.xyxy[:, 2]) / 2 * scale
    cy = (det.xyxy[:, 1] + det.xyxy[:, 3]) / 2 * scale
    for x1, y1, x2, y2 in rects:
        inside |= (cx >= x1) & (cx <= x2) & (cy >= y1) & (cy <= y2)
    return inside


def _outside(det: Detections, rects: list[Rect], scale: float) -> Detections:
    """The boxes (analysed px) whose centre lies in none of ``rects`` (native px)."""
    return det[~_inside(det, rects, scale)] if rects else det


def _still(det: Detections, blobs: np.ndarray) -> Detections:
    """The boxes no motion blob (analysed px) overlaps."""
    if not len(det) or not len(blobs):
        return det
    a, b = det.xyxy[:, None, :], blobs[None, :, :]
    overlap = (
        (np.minimum(a[..., 2], b[..., 2]) > np.maximum(a[..., 0], b[..., 0]))
        & (np.minimum(a[..., 3], b[..., 3]) > np.maximum(a[..., 1], b[..., 1]))
    ).any(axis=1)
    return det[~overlap]
